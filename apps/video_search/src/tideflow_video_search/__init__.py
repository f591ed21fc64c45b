"""Video search, built on Tideflow: videos are ingested (frames, OCR, subtitles, speech,
embeddings) into a Lance table that is searchable seconds after each checkpoint, then
searched by text (BM25 + vectors) or by frame.

>>> from tideflow_video_search import Ingest, IngestConfig, SearchIndex
>>> Ingest("videos/", "index/", config=IngestConfig(fps=0.5)).run()       # doctest: +SKIP
>>> [h.to_dict() for h in SearchIndex("index/").search("when does the ferry leave")]
... # doctest: +SKIP

The names below are imported on first use: importing the package imports no Ray (and
changes no environment), so that ``video-search`` can give Ray its settings before Ray is
imported (``tideflow_video_search.cli``). Each module's own names are in the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideflow.core.lazy import lazy_exports

if TYPE_CHECKING:
    from tideflow_video_search.config import IngestConfig
    from tideflow_video_search.ingest import Ingest, IngestResult
    from tideflow_video_search.search import Hit, QueryError, SearchIndex
    from tideflow_video_search.server import create_app, serve

__all__ = [
    "Ingest",
    "IngestConfig",
    "IngestResult",
    "SearchIndex",
    "Hit",
    "QueryError",
    "create_app",
    "serve",
]

_MODULES = {
    "IngestConfig": "tideflow_video_search.config",
    "Ingest": "tideflow_video_search.ingest",
    "IngestResult": "tideflow_video_search.ingest",
    "SearchIndex": "tideflow_video_search.search",
    "Hit": "tideflow_video_search.search",
    "QueryError": "tideflow_video_search.search",
    "create_app": "tideflow_video_search.server",
    "serve": "tideflow_video_search.server",
}

__getattr__, __dir__ = lazy_exports(__name__, _MODULES, __all__)
