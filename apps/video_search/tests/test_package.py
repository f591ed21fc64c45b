"""The package's own names: imported on first use, so importing it imports no Ray."""

from __future__ import annotations

import subprocess
import sys

import tideflow_video_search


def test_the_main_names_come_from_the_package() -> None:
    from tideflow_video_search import Ingest, IngestConfig, SearchIndex
    from tideflow_video_search.config import IngestConfig as Config
    from tideflow_video_search.ingest import Ingest as IngestClass
    from tideflow_video_search.search import SearchIndex as Index

    assert (Ingest, IngestConfig, SearchIndex) == (IngestClass, Config, Index)
    assert set(tideflow_video_search.__all__) <= set(dir(tideflow_video_search))


def test_importing_the_package_imports_no_ray() -> None:
    code = "import sys, tideflow_video_search; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
