"""``video-search serve``: the HTTP API and the web page over a :class:`SearchIndex`.

Routes (all JSON errors are ``{"detail": "<one readable sentence>"}``):

- ``GET /api/search`` — text search; every query parameter is validated, unknown ones are
  refused (422) with the list of allowed ones.
- ``POST /api/search/frame`` — query by frame: a multipart field ``image`` or a raw
  ``image/*`` body of at most :data:`MAX_UPLOAD_BYTES`.
- ``GET /api/thumbnails/{segment_id}`` — a hit's JPEG thumbnail.
- ``GET /api/videos/{video_id}`` — an indexed video, with HTTP range requests; only videos
  the index knows are served (the path is never read from the request).
- ``GET /api/stats``, ``GET /healthz``, ``GET /metrics`` (Prometheus text).
- ``GET /`` — the search page (``static/``).

Search calls block (Lance, the embedder), so their endpoints are plain ``def`` functions that
FastAPI runs in its threadpool: concurrent clients are served in parallel. The index is
refreshed at most once a second, so rows ingested while the server runs become searchable.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from tideflow.core.errors import ConfigError
from tideflow.core.uri import redact
from tideflow_video_search._video_files import file_response, open_video
from tideflow_video_search.search import MAX_K, MAX_QUERY_CHARS, Hit, QueryError, SearchIndex

__all__ = [
    "MAX_UPLOAD_BYTES",
    "REFRESH_INTERVAL_S",
    "AppState",
    "Refresher",
    "check_address",
    "create_app",
    "serve",
]

log = structlog.get_logger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""The largest image accepted by the frame search."""
REFRESH_INTERVAL_S = 1.0
"""The index is refreshed (new rows made visible) at most this often."""
STATIC_DIR = Path(__file__).resolve().parent / "static"

_MULTIPART_OVERHEAD = 64 * 1024


# --- query parameters -------------------------------------------------------------------

Source = Literal["ocr", "subtitle", "speech"]
"""The text channels a search may be limited to (``schema.CHANNELS``)."""


class SearchParams(BaseModel):
    """The query parameters of ``GET /api/search``; anything else is refused."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(description=f"The query: 1 to {MAX_QUERY_CHARS} characters (stripped).")
    k: int = Field(5, ge=1, le=MAX_K, description=f"How many hits: 1 to {MAX_K}.")
    video_id: str | None = Field(None, min_length=1, description="Only this video.")
    source: Source | None = Field(None, description="One channel: ocr, subtitle or speech.")
    language: str | None = Field(
        None, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$", description="e.g. en"
    )
    start_s: float | None = Field(None, ge=0, allow_inf_nan=False, description="From (s).")
    end_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="Until (s).")
    group: bool = Field(False, description="At most one hit per video.")
    mode: Literal["hybrid", "text", "vector"] = Field("hybrid", description="How to rank.")

    @field_validator("q")
    @classmethod
    def _q_is_short_text(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("must not be empty or only whitespace")
        if len(stripped) > MAX_QUERY_CHARS:
            message = f"is {len(stripped)} characters long; at most {MAX_QUERY_CHARS} are allowed"
            raise ValueError(message)
        return stripped

    @model_validator(mode="after")
    def _range_is_ordered(self) -> SearchParams:
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            message = f"end_s ({self.end_s:g}) must be greater than start_s ({self.start_s:g})"
            raise ValueError(message)
        return self


class FrameParams(BaseModel):
    """The query parameters of ``POST /api/search/frame``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(5, ge=1, le=MAX_K, description=f"How many hits: 1 to {MAX_K}.")


def _describe_error(error: MutableMapping[str, Any], allowed: list[str]) -> str:
    """One readable sentence for one pydantic error of a request."""
    loc = [str(part) for part in error.get("loc", ())]
    where, name = (loc[0] if loc else "request"), (loc[-1] if len(loc) > 1 else "")
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown {where} parameter {name!r}; allowed: {', '.join(allowed)}"
    if kind == "missing":
        return f"{where} parameter {name!r} is required"
    message = str(error.get("msg", "is invalid"))
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", message))
    if not name:  # a check across fields (end_s after start_s)
        return message
    seen = error.get("input")
    if isinstance(seen, str) and len(seen) > 40:
        seen = seen[:40] + "…"
    shown = f" (got {seen!r})" if isinstance(seen, str | int | float) else ""
    if kind == "value_error":
        return f"{where} parameter {name!r} {message}{shown}"
    return f"{where} parameter {name!r}: {message}{shown}"


_PARAMETERS: dict[str, type[BaseModel]] = {
    "/api/search": SearchParams,
    "/api/search/frame": FrameParams,
}


def _allowed_parameters(request: Request) -> list[str]:
    """The query parameters the request's route takes (for 'unknown parameter' errors)."""
    model = _PARAMETERS.get(getattr(request.scope.get("route"), "path", ""))
    return list(model.model_fields) if model else []


# --- index refresh and metrics ---------------------------------------------------------


class Refresher:
    """Calls ``index.refresh()`` at most once per ``interval_s``; never blocks a request on
    another request's refresh."""

    def __init__(
        self,
        index: SearchIndex,
        *,
        interval_s: float = REFRESH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._index = index
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def maybe_refresh(self) -> bool:
        """Refresh if the last refresh is older than the interval; True when it refreshed."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval_s:
            return False
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._last = now
            self._index.refresh()
        except Exception as exc:  # a failed refresh keeps serving what is already visible
            log.warning("index.refresh_failed", error=redact(str(exc)))
            return False
        finally:
            self._lock.release()
        return True


@dataclass(frozen=True)
class _Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    rows: Gauge

    @classmethod
    def create(cls) -> _Metrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "video_search_http_requests",
                "HTTP requests served, by route template, method and status.",
                ["route", "method", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "video_search_http_request_duration_seconds",
                "Time to serve a request (until its last byte), by route template.",
                ["route", "method"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                registry=registry,
            ),
            rows=Gauge("video_search_index_rows", "Rows in the index.", registry=registry),
        )


_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class _MetricsMiddleware:
    """Counts requests and times them per route template (not per raw path: bounded labels)."""

    def __init__(self, app: _ASGIApp, metrics: _Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_record(message: _Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "<unmatched>")
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


# --- the app ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AppState:
    """What the routes of one app share: its index, refresher and metrics."""

    index: SearchIndex
    refresher: Refresher
    metrics: _Metrics


async def _app_state(request: Request) -> AppState:
    state: AppState = request.app.state.video_search
    return state


State = Annotated[AppState, Depends(_app_state)]
router = APIRouter()


def _hit_json(hit: Hit) -> dict[str, Any]:
    body = hit.to_dict()
    body["thumbnail_url"] = f"/api/thumbnails/{quote(hit.segment_id, safe='')}"
    body["video_url"] = f"/api/videos/{quote(hit.video_id, safe='')}#t={hit.start_s:.3f}"
    return body


def _results(query: str, k: int, started: float, hits: list[Hit]) -> dict[str, Any]:
    took_ms = (time.perf_counter() - started) * 1000
    return {
        "query": query,
        "k": k,
        "took_ms": round(took_ms, 2),
        "hits": [_hit_json(hit) for hit in hits],
    }


def _each_parameter_once(request: Request) -> None:
    """Refuse a query parameter given more than once (which value would count is a guess)."""
    counts: dict[str, int] = {}
    for name, _ in request.query_params.multi_items():
        counts[name] = counts.get(name, 0) + 1
    repeated = [f"{name!r} ({n} times)" for name, n in counts.items() if n > 1]
    if repeated:
        message = f"query parameters given more than once: {', '.join(repeated)}; give each once"
        raise HTTPException(422, message)


Once = Depends(_each_parameter_once)


@router.get("/api/search", dependencies=[Once])
def search(params: Annotated[SearchParams, Query()], state: State) -> dict[str, Any]:
    """Hybrid (BM25 + vector) search over the text segments."""
    state.refresher.maybe_refresh()
    started = time.perf_counter()
    hits = state.index.search(
        params.q,
        k=params.k,
        video_id=params.video_id,
        source=params.source,
        language=params.language,
        start_s=params.start_s,
        end_s=params.end_s,
        mode=params.mode,
        group_by_video=params.group,
    )
    return _results(params.q, params.k, started, hits)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the upload is {int(declared)} bytes; at most {limit} allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the upload is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _uploaded_image(request: Request) -> bytes:
    """The image of a frame search: multipart field ``image`` or a raw ``image/*`` body."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        body = await _read_limited(request, MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD)
        sent = False

        async def replay() -> _Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async with Request(request.scope, replay).form(max_files=1, max_fields=8) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "the multipart form needs a file field named 'image'")
            data = await upload.read()
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        data = await _read_limited(request, MAX_UPLOAD_BYTES)
    else:
        shown = content_type or "none"
        message = (
            "send the image as multipart/form-data (field 'image') or as a raw image/* body; "
            f"got Content-Type {shown}"
        )
        raise HTTPException(422, message)
    if not data:
        raise HTTPException(422, "the image is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the image is {len(data)} bytes; at most {MAX_UPLOAD_BYTES}")
    return data


@router.post("/api/search/frame", dependencies=[Once])
async def search_frame(
    request: Request, params: Annotated[FrameParams, Query()], state: State
) -> dict[str, Any]:
    """Query by frame: the indexed frames that look most like the uploaded image."""
    image = await _uploaded_image(request)
    await run_in_threadpool(state.refresher.maybe_refresh)
    started = time.perf_counter()
    hits = await run_in_threadpool(state.index.search_frame, image, k=params.k)
    return _results("frame", params.k, started, hits)


@router.get("/api/thumbnails/{segment_id:path}")
def thumbnail(segment_id: str, state: State) -> Response:
    """A segment's JPEG thumbnail."""
    data = state.index.thumbnail(segment_id)
    if data is None:
        raise HTTPException(404, f"no thumbnail for segment {segment_id!r}")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


@router.api_route("/api/videos/{video_id:path}", methods=["GET", "HEAD"])
def video(video_id: str, request: Request, state: State) -> Response:
    """An indexed video, with range requests. Only URIs the index holds are opened: the
    request names a video id, never a path."""
    state.refresher.maybe_refresh()
    uri = state.index.video_uri(video_id)
    if uri is None:
        raise HTTPException(404, f"no video {video_id!r} in the index")
    try:
        filesystem, path = open_video(uri)
        info = filesystem.get_file_info(path)
    except (OSError, ValueError) as exc:
        log.warning("video.open_failed", video_id=video_id, error=redact(str(exc)))
        raise HTTPException(404, f"the file of video {video_id!r} cannot be opened") from exc
    if info.type.name != "File":
        raise HTTPException(404, f"the file of video {video_id!r} is missing")
    return file_response(filesystem, path, int(info.size), request)


@router.get("/api/stats")
def stats(state: State) -> dict[str, Any]:
    """What the index holds: rows, videos, per-source counts, version."""
    state.refresher.maybe_refresh()
    return state.index.stats()


@router.get("/healthz")
def healthz(state: State) -> dict[str, Any]:
    """Liveness, with the index's row count and version."""
    state.refresher.maybe_refresh()
    current = state.index.stats()
    return {"status": "ok", "rows": current.get("rows"), "version": current.get("version")}


@router.get("/metrics")
def prometheus_metrics(state: State) -> Response:
    """Prometheus text exposition of this app's registry."""
    rows = state.index.stats().get("rows")
    if isinstance(rows, int | float):
        state.metrics.rows.set(rows)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The search page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


async def _validation_failed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    allowed = _allowed_parameters(request)
    messages = [_describe_error(error, allowed) for error in exc.errors()]
    return JSONResponse({"detail": "; ".join(dict.fromkeys(messages))}, status_code=422)


async def _query_refused(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


def create_app(index: SearchIndex, *, refresh_interval_s: float = REFRESH_INTERVAL_S) -> FastAPI:
    """The FastAPI app serving ``index``: the search API, videos, thumbnails, metrics and
    the web page. Each app has its own metrics registry; the index is refreshed at most
    every ``refresh_interval_s`` seconds (when requests come)."""
    app = FastAPI(
        title="Tideflow video search",
        docs_url=None,  # Swagger UI loads from a CDN; the schema stays at /openapi.json
        redoc_url=None,
        exception_handlers={
            RequestValidationError: _validation_failed,
            QueryError: _query_refused,
        },
    )
    metrics = _Metrics.create()
    app.state.video_search = AppState(
        index=index,
        refresher=Refresher(index, interval_s=refresh_interval_s),
        metrics=metrics,
    )
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def check_address(host: str, port: int) -> None:
    """Raise :class:`ConfigError` when ``host:port`` cannot be listened on (in use, or not
    an address of this machine), so that ``serve`` fails before loading anything."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        reason = error.strerror or str(error)
        message = (
            f"cannot listen on {host}:{port}: {reason}; "
            "choose another --port, or a --host address of this machine"
        )
        raise ConfigError(message) from error


def serve(
    index_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "warning",
) -> None:
    """Open the index under ``index_dir``, load its query model, and serve it with uvicorn
    until interrupted."""
    import uvicorn

    index = SearchIndex(index_dir)
    index.embed_query("warm up")  # load the query model now, not on the first search
    log.info("index.opened", index_dir=str(index_dir), rows=index.stats()["rows"])
    uvicorn.run(create_app(index), host=host, port=port, log_level=log_level)
