"""A driver to be killed with SIGKILL: ``python _ocr_driver.py VIDEOS TMP`` runs the OCR
job of ``test_checkpoint.py`` (job id ``JOB``) into an Iceberg table under ``TMP``."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")

JOB = "ocr-crash"
TABLE = "iceberg://ocr.crash"


def catalog(tmp: str) -> dict[str, str]:
    return {"uri": f"sqlite:///{tmp}/catalog.db", "warehouse": f"{tmp}/warehouse"}


def app(videos: str, tmp: str) -> object:
    from tideflow_ocr import OcrApp, OcrConfig

    return OcrApp(
        videos,
        [TABLE],
        config=OcrConfig(shard_seconds=2.0, fps=1.0, ocr_concurrency=(1, 1)),
        catalog=catalog(tmp),
        state_uri=f"{tmp}/state",
        job_id=JOB,
        checkpoint_interval_s=0.5,
    )


def main(videos: str, tmp: str) -> None:
    import logging

    import ray

    ray.init(
        num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    app(videos, tmp).run(progress=False)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
