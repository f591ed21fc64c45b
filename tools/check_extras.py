"""Check tideflow-streaming's connector extras from its wheels, in a clean environment.

1. Build the wheels of tideflow-core and tideflow-streaming (``uv build --wheel``).
2. Install them, without extras, into a new virtual environment (``uv venv``), at the locked
   versions of their dependencies (``uv export`` as constraints).
3. There: ``import tideflow.streaming`` and every connector module work, aiokafka, pyiceberg
   and pylance are absent, and building each connector raises ``MissingDependencyError``
   with the install hint of its extra.
4. Install the ``[kafka,iceberg,lance]`` extras: each connector builds, and the libraries
   import.

A manual check (``make check-extras``; it needs PyPI or a warm uv cache), not part of
``make test``. Usage: ``python tools/check_extras.py [--uv PATH] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("kafka", "iceberg", "lance")

# Run by the clean environment's Python: imports, then each connector built; prints JSON.
_PROBE = r"""
import importlib, importlib.metadata, importlib.util, json, sys, tempfile

result = {"libraries": {}, "imports": [], "builds": []}
for library, distribution in (("aiokafka", "aiokafka"), ("pyiceberg", "pyiceberg"),
                              ("lance", "pylance")):
    found = importlib.util.find_spec(library) is not None
    result["libraries"][library] = importlib.metadata.version(distribution) if found else None

for module in ("tideflow.streaming", "tideflow.streaming.testing",
               "tideflow.streaming.connectors.kafka", "tideflow.streaming.connectors.iceberg",
               "tideflow.streaming.connectors.lance"):
    try:
        importlib.import_module(module)
        result["imports"].append({"module": module, "error": None})
    except Exception as error:
        result["imports"].append({"module": module, "error": f"{type(error).__name__}: {error}"})

from tideflow.core.errors import MissingDependencyError
from tideflow.streaming import connectors

warehouse = tempfile.mkdtemp()
builds = {
    "kafka": [("KafkaSource(topics='events')", lambda: connectors.KafkaSource(topics="events")),
              ("KafkaSink(topic='events')", lambda: connectors.KafkaSink(topic="events"))],
    "iceberg": [("IcebergSource('db.events')", lambda: connectors.IcebergSource("db.events")),
                ("IcebergSink('db.events')", lambda: connectors.IcebergSink("db.events")),
                ("load_catalog(warehouse=<tmp>)",
                 lambda: connectors.load_catalog(warehouse=warehouse))],
    "lance": [("LanceSource('frames.lance')", lambda: connectors.LanceSource("frames.lance")),
              ("LanceSink('frames.lance')", lambda: connectors.LanceSink("frames.lance"))],
}
for extra, uses in builds.items():
    for text, use in uses:
        entry = {"extra": extra, "use": text, "error": None, "missing": False}
        try:
            use()
        except Exception as error:
            entry["error"] = f"{type(error).__name__}: {error}"
            entry["missing"] = isinstance(error, MissingDependencyError)
        result["builds"].append(entry)
print(json.dumps(result))
"""


def _run(command: list[str], *, what: str) -> str:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"check-extras: {what} failed ({' '.join(command)})")
    print(f"  {what} ({time.monotonic() - started:.1f} s)")
    return done.stdout


def _probe(python: Path) -> dict[str, object]:
    out = _run([str(python), "-c", _PROBE], what="probe the environment")
    probed: dict[str, object] = json.loads(out.splitlines()[-1])
    return probed


def _check(probed: dict[str, object], *, with_extras: bool) -> list[str]:
    """The report's lines, each ending in ``ok`` or ``FAILED``."""
    lines = []
    libraries = probed["libraries"]
    assert isinstance(libraries, dict)
    for library, version in libraries.items():
        ok = (version is not None) == with_extras
        shown = version or "not installed"
        lines.append(f"{library}: {shown} {'ok' if ok else 'FAILED'}")
    imports = probed["imports"]
    assert isinstance(imports, list)
    for entry in imports:
        ok = entry["error"] is None
        lines.append(f"import {entry['module']}: {'ok' if ok else entry['error'] + ' FAILED'}")
    builds = probed["builds"]
    assert isinstance(builds, list)
    for entry in builds:
        hint = f'pip install "tideflow-streaming[{entry["extra"]}]"'
        if with_extras:
            ok = entry["error"] is None
            seen = "built" if ok else entry["error"]
        else:
            ok = entry["missing"] and hint in entry["error"]
            seen = entry["error"] or "built, but its library is missing"
        lines.append(f"{entry['use']}: {seen} {'ok' if ok else 'FAILED'}")
    return lines


def _report(title: str, lines: list[str]) -> bool:
    print(f"\n{title}")
    for line in lines:
        print(f"  {line}")
    return all(line.endswith(" ok") for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=os.environ.get("UV") or shutil.which("uv") or "uv")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    uv = args.uv
    with tempfile.TemporaryDirectory(prefix="tideflow-extras-") as temp:
        work = args.keep or Path(temp)
        wheels, venv = work / "wheels", work / "venv"
        python = venv / "bin" / "python"
        constraints = work / "constraints.txt"
        print(f"check-extras in {work}")
        for package in ("tideflow-core", "tideflow-streaming"):
            command = [uv, "build", "--package", package, "--wheel", "-o", str(wheels)]
            _run(command, what=f"build {package}")
        core = next(wheels.glob("tideflow_core-*.whl"))
        streaming = next(wheels.glob("tideflow_streaming-*.whl"))
        export = [uv, "export", "--frozen", "--package", "tideflow-streaming", "--no-dev"]
        export += [f"--extra={extra}" for extra in EXTRAS]
        export += ["--no-emit-workspace", "--no-hashes", "--no-header", "-o", str(constraints)]
        _run(export, what="export the locked versions as constraints")
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        _run([uv, "venv", "--python", version, str(venv)], what=f"create a venv (Python {version})")
        install = [uv, "pip", "install", "--python", str(python), "-c", str(constraints)]
        _run([*install, str(core), str(streaming)], what="install the two wheels, no extras")
        bare = _report("without extras:", _check(_probe(python), with_extras=False))
        extras = ",".join(EXTRAS)
        requirement = f"tideflow-streaming[{extras}] @ {streaming.as_uri()}"
        _run([*install, requirement], what=f"install the [{extras}] extras")
        full = _report(f"with [{extras}]:", _check(_probe(python), with_extras=True))
    print(f"\ncheck-extras: {'passed' if bare and full else 'FAILED'}")
    if not (bare and full):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
