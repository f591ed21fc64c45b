"""Tideflow's benchmarks, demo and local services: the CLIs that own their output.

Ray reads these settings when it is first imported, so they are set here, before anything
imports it. Under `uv run`, Ray 2.60 starts every worker through `uv run` with the
repository as its working_dir, which costs ~2 s more per actor start; the workers share the
driver's venv already. Prestarted workers cost memory for nothing on a small machine.
Libraries never set them: these are the application's choice (setdefault keeps the user's).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_enable_worker_prestart", "0")
