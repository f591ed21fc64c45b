"""``tideflow-broker``: a local Kafka-protocol broker (tansu, in memory) in the foreground.

    uv run python -m tideflow_tools.broker [--port 9092]

Prints the bootstrap address, then runs until Ctrl-C. Data lives in memory only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from tideflow.streaming._broker import BrokerError, kafka_broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tideflow-broker",
        description="Run a local in-memory Kafka-protocol broker (tansu) until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 (default 9092)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with kafka_broker(args.port) as broker:
            print(
                f"Kafka broker listening; bootstrap_servers={broker.bootstrap_servers}", flush=True
            )
            print("(in memory: data is gone when it stops; Ctrl-C to stop)", flush=True)
            while broker.running():
                time.sleep(0.5)
            print(f"the broker exited; its output: {broker.log_path}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        return 0
    except (BrokerError, ImportError) as error:
        print(f"tideflow-broker: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
