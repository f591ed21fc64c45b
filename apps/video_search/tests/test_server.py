"""The HTTP API against a real Lance index of two real videos, through httpx's AsyncClient
on the ASGI app (no socket): search, validation, videos with ranges, thumbnails, query by
frame, health and metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

import httpx
import pytest
from _server_fixtures import (
    Segment,
    TestIndex,
    append_segments,
    build_index,
    frame_at,
    jpeg,
    write_segments_index,
)

from tideflow.core.testing import FakeClock, moto_s3_server
from tideflow_video_search.schema import CHANNELS
from tideflow_video_search.search import MAX_QUERY_CHARS, SearchIndex
from tideflow_video_search.server import (
    MAX_UPLOAD_BYTES,
    Refresher,
    Source,
    create_app,
)


@pytest.fixture(scope="module")
def test_index(tmp_path_factory: pytest.TempPathFactory) -> TestIndex:
    return build_index(tmp_path_factory.mktemp("video-search"))


@pytest.fixture(scope="module")
def index(test_index: TestIndex) -> SearchIndex:
    return test_index.open()


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client(index: SearchIndex) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(create_app(index)) as client:
        yield client


# --- search ----------------------------------------------------------------------------


async def test_search_returns_hits_best_first_with_links(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "lighthouse keeper", "k": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "lighthouse keeper"
    assert body["k"] == 3
    assert body["took_ms"] >= 0
    hits = body["hits"]
    assert 1 <= len(hits) <= 3
    top = hits[0]
    assert top["segment_id"] == "harbour#speech@3.000"
    assert (top["video_id"], top["start_s"], top["end_s"]) == ("harbour", 3.0, 6.0)
    assert top["text"] == "a lighthouse keeper climbs the spiral stairs"
    assert (top["source"], top["language"]) == ("speech", "en")
    assert top["thumbnail_url"] == "/api/thumbnails/harbour%23speech%403.000"
    assert top["video_url"] == "/api/videos/harbour#t=3.000"
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


async def test_search_strips_the_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "   ferry   "})

    assert response.status_code == 200
    assert response.json()["query"] == "ferry"
    assert response.json()["hits"][0]["segment_id"] == "harbour#subtitle@0.000"


async def test_search_never_returns_frame_rows(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search", params={"q": "a frame of the video", "k": 100})

    assert {hit["source"] for hit in response.json()["hits"]} <= set(CHANNELS)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "ocr"}, {"harbour#ocr@6.000", "market#ocr@7.000"}),
        ({"language": "zh"}, {"market#ocr@7.000"}),
        ({"video_id": "market", "source": "speech"}, {"market#speech@4.000"}),
        ({"video_id": "harbour", "start_s": 6.5}, {"harbour#ocr@6.000"}),
        ({"video_id": "harbour", "start_s": 3.5, "end_s": 5.0}, {"harbour#speech@3.000"}),
    ],
    ids=["source", "language", "video-and-source", "from-time", "time-range"],
)
async def test_search_filters(
    client: httpx.AsyncClient, params: dict[str, Any], expected: set[str]
) -> None:
    response = await client.get("/api/search", params={"q": "the", "k": 100, **params})

    assert response.status_code == 200
    assert {hit["segment_id"] for hit in response.json()["hits"]} == expected


async def test_search_grouped_by_video_returns_each_video_once(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/search", params={"q": "the", "k": 10, "group": "true"})

    video_ids = [hit["video_id"] for hit in response.json()["hits"]]
    assert len(video_ids) == len(set(video_ids)) >= 2


@pytest.mark.parametrize("mode", ["hybrid", "text", "vector"])
async def test_search_modes_find_the_keyword(client: httpx.AsyncClient, mode: str) -> None:
    response = await client.get("/api/search", params={"q": "baker bread", "mode": mode})

    assert response.status_code == 200
    assert response.json()["hits"][0]["segment_id"] == "market#speech@4.000"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "query parameter 'q' is required"),
        ("q=", "query parameter 'q' must not be empty or only whitespace"),
        ("q=%20%20%09", "query parameter 'q' must not be empty or only whitespace"),
        (f"q={'x' * (MAX_QUERY_CHARS + 1)}", "is 501 characters long; at most 500 are allowed"),
        ("q=ferry&k=0", "query parameter 'k': Input should be greater than or equal to 1"),
        ("q=ferry&k=101", "query parameter 'k': Input should be less than or equal to 100"),
        ("q=ferry&k=many", "query parameter 'k': Input should be a valid integer"),
        ("q=ferry&source=video", "Input should be 'ocr', 'subtitle' or 'speech'"),
        ("q=ferry&mode=fuzzy", "Input should be 'hybrid', 'text' or 'vector'"),
        ("q=ferry&language=en%3Bdrop", "query parameter 'language': String should match"),
        ("q=ferry&start_s=-1", "query parameter 'start_s': Input should be greater than or equal"),
        ("q=ferry&start_s=nan", "query parameter 'start_s': Input should be a finite number"),
        ("q=ferry&end_s=0", "query parameter 'end_s': Input should be greater than 0"),
        ("q=ferry&start_s=5&end_s=5", "end_s (5) must be greater than start_s (5)"),
        ("q=ferry&group=maybe", "query parameter 'group': Input should be a valid boolean"),
        (
            "q=ferry&limit=3",
            "unknown query parameter 'limit'; allowed: q, k, video_id, source, language, "
            "start_s, end_s, group, mode",
        ),
    ],
    ids=[
        "missing-q",
        "empty-q",
        "whitespace-q",
        "long-q",
        "k-zero",
        "k-over-max",
        "k-not-int",
        "unknown-source",
        "unknown-mode",
        "bad-language",
        "negative-start",
        "nan-start",
        "zero-end",
        "end-not-after-start",
        "bad-bool",
        "unknown-parameter",
    ],
)
async def test_search_refuses_bad_parameters_with_one_clear_message(
    client: httpx.AsyncClient, query: str, fragment: str
) -> None:
    response = await client.get(f"/api/search?{query}")

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert fragment in detail


async def test_search_reports_every_bad_parameter_at_once(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/search?q=ferry&k=0&colour=red")

    detail = response.json()["detail"]
    assert "query parameter 'k'" in detail
    assert "unknown query parameter 'colour'" in detail


def test_the_source_filter_allows_exactly_the_text_channels() -> None:
    assert set(get_args(Source)) == set(CHANNELS)


class _Refusing:
    """An index whose searches are refused (as SearchIndex refuses what it cannot run)."""

    def __init__(self, index: SearchIndex) -> None:
        self._index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def search(self, query: str, **kwargs: Any) -> Any:
        from tideflow_video_search.search import QueryError

        raise QueryError("the query uses a feature this index lacks: expected plain text")


async def test_a_query_error_from_the_index_is_a_422_with_its_message(
    index: SearchIndex,
) -> None:
    async with _client(create_app(_Refusing(index))) as client:  # type: ignore[arg-type]
        response = await client.get("/api/search", params={"q": "ferry"})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "the query uses a feature this index lacks: expected plain text"
    }


class _Barrier:
    """An index whose searches all wait until ``parties`` of them run at once."""

    def __init__(self, index: SearchIndex, parties: int) -> None:
        self._index = index
        self.barrier = threading.Barrier(parties, timeout=20)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def search(self, query: str, **kwargs: Any) -> Any:
        self.barrier.wait()
        return self._index.search(query, **kwargs)


async def test_eight_clients_are_served_in_parallel(index: SearchIndex) -> None:
    slow = _Barrier(index, parties=8)
    async with _client(create_app(slow)) as client:  # type: ignore[arg-type]
        responses = await asyncio.gather(
            *(client.get("/api/search", params={"q": f"ferry {i}"}) for i in range(8))
        )

    assert [r.status_code for r in responses] == [200] * 8
    assert not slow.barrier.broken


# --- the index refresh -----------------------------------------------------------------


class _CountingRefresh:
    def __init__(self) -> None:
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1


def test_the_index_is_refreshed_at_most_once_per_interval() -> None:
    clock = FakeClock()
    index = _CountingRefresh()
    refresher = Refresher(index, interval_s=1.0, clock=clock.now)  # type: ignore[arg-type]

    calls = [refresher.maybe_refresh()]
    clock.advance(0.5)
    calls.append(refresher.maybe_refresh())
    clock.advance(0.5)
    calls.append(refresher.maybe_refresh())
    calls.append(refresher.maybe_refresh())

    assert calls == [True, False, True, False]
    assert index.refreshes == 2


async def test_rows_committed_while_serving_become_searchable(tmp_path: Path) -> None:
    first = Segment("dock", "subtitle", 0.0, 2.0, "cranes unload containers at the dock")
    later = Segment("dock", "speech", 2.0, 4.0, "a submarine surfaces by the pier")
    test_index = await asyncio.to_thread(
        write_segments_index, tmp_path / "index", [first], {"dock": "dock.mp4"}
    )
    app = create_app(test_index.open(), refresh_interval_s=0.0)

    async with _client(app) as client:
        before = await client.get("/api/search", params={"q": "submarine", "mode": "text"})
        await asyncio.to_thread(append_segments, test_index, [later])
        after = await client.get("/api/search", params={"q": "submarine", "mode": "text"})

    assert before.json()["hits"] == []
    assert [hit["segment_id"] for hit in after.json()["hits"]] == ["dock#speech@2.000"]


# --- videos ----------------------------------------------------------------------------


async def test_a_video_is_served_whole_with_range_support_advertised(
    client: httpx.AsyncClient, test_index: TestIndex
) -> None:
    response = await client.get("/api/videos/harbour")

    assert response.status_code == 200
    assert response.content == test_index.videos["harbour"].read_bytes()
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-50", -50, None),
        ("bytes=1000-1", None, None),  # last before first: ignored, the whole file
        ("bytes=0-99999999", 0, None),  # past the end: up to the end
        ("bytes=0-1,4-5", None, None),  # several ranges: ignored, the whole file
        ("pages=1-2", None, None),  # not bytes: ignored
    ],
)
async def test_a_range_request_gets_exactly_those_bytes(
    client: httpx.AsyncClient,
    test_index: TestIndex,
    header: str,
    first: int | None,
    last: int | None,
) -> None:
    data = test_index.videos["harbour"].read_bytes()
    size = len(data)

    response = await client.get("/api/videos/harbour", headers={"Range": header})

    if first is None:
        assert response.status_code == 200
        assert response.content == data
        assert "content-range" not in response.headers
        return
    start = first % size
    end = size - 1 if last is None else last
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert response.content == data[start : end + 1]
    assert int(response.headers["content-length"]) == end - start + 1


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0"])
async def test_an_unsatisfiable_range_is_a_416(
    client: httpx.AsyncClient, test_index: TestIndex, header: str
) -> None:
    size = test_index.videos["harbour"].stat().st_size

    response = await client.get("/api/videos/harbour", headers={"Range": header.format(size=size)})

    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"


async def test_a_head_request_says_the_size_without_a_body(
    client: httpx.AsyncClient, test_index: TestIndex
) -> None:
    response = await client.head("/api/videos/harbour", headers={"Range": "bytes=10-19"})

    assert response.status_code == 206
    assert response.headers["content-length"] == "10"
    assert response.content == b""


async def test_a_video_indexed_by_file_uri_is_served(
    client: httpx.AsyncClient, test_index: TestIndex
) -> None:
    response = await client.get("/api/videos/market", headers={"Range": "bytes=0-7"})

    assert response.status_code == 206
    assert response.content == test_index.videos["market"].read_bytes()[:8]


@pytest.mark.parametrize(
    ("path", "seen_id"),
    [
        ("nope", "nope"),
        ("harbour.mp4", "harbour.mp4"),
        ("..%2Fvideos%2Fharbour.mp4", "../videos/harbour.mp4"),
        ("..%2F..%2F..%2Fetc%2Fpasswd", "../../../etc/passwd"),
        ("%2E%2E/%2E%2E/etc/passwd", "../../etc/passwd"),
        ("%2Fetc%2Fpasswd", "/etc/passwd"),
        ("harbour%2F..%2Fmarket", "harbour/../market"),
    ],
    ids=["unknown", "file-name", "traversal", "deep-traversal", "dot-encoded", "absolute", "dots"],
)
async def test_only_indexed_video_ids_are_served(
    client: httpx.AsyncClient, path: str, seen_id: str
) -> None:
    response = await client.get(f"/api/videos/{path}")

    assert response.status_code == 404
    assert response.json() == {"detail": f"no video {seen_id!r} in the index"}


async def test_a_videos_own_path_is_not_a_video_id(
    client: httpx.AsyncClient, test_index: TestIndex
) -> None:
    path = str(test_index.videos["harbour"])

    response = await client.get(f"/api/videos/{quote(path, safe='')}")

    assert response.status_code == 404


async def test_an_indexed_video_whose_file_is_gone_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/videos/ghost")

    assert response.status_code == 404
    assert response.json() == {"detail": "the file of video 'ghost' is missing"}


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with moto_s3_server() as server:
        yield server


async def test_a_video_on_s3_is_served_through_pyarrow_fs(
    s3: Any, test_index: TestIndex, tmp_path: Path
) -> None:
    data = test_index.videos["harbour"].read_bytes()
    bucket = s3.new_bucket("served")
    with s3.filesystem().open_output_stream(f"{bucket}/clips/harbour.mp4") as out:
        out.write(data)
    uri = s3.uri(bucket, "clips/harbour.mp4")
    remote = Segment("remote", "subtitle", 0.0, 3.0, "a clip stored in a bucket")
    test_index = await asyncio.to_thread(
        write_segments_index, tmp_path / "index", [remote], {"remote": uri}
    )
    app = create_app(test_index.open())

    async with _client(app) as client:
        whole = await client.get("/api/videos/remote")
        part = await client.get("/api/videos/remote", headers={"Range": "bytes=16-47"})
        search = await client.get("/api/search", params={"q": "bucket"})

    assert whole.status_code == 200
    assert whole.content == data
    assert part.status_code == 206
    assert part.content == data[16:48]
    assert part.headers["content-range"] == f"bytes 16-47/{len(data)}"
    assert s3.secret_key not in search.text


# --- thumbnails ------------------------------------------------------------------------


async def test_a_hits_thumbnail_is_a_jpeg(client: httpx.AsyncClient) -> None:
    search = await client.get("/api/search", params={"q": "ferry"})
    url = search.json()["hits"][0]["thumbnail_url"]

    response = await client.get(url)

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content.startswith(b"\xff\xd8\xff")


async def test_an_unknown_thumbnail_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/thumbnails/harbour%23speech%4099.000")

    assert response.status_code == 404
    assert response.json() == {"detail": "no thumbnail for segment 'harbour#speech@99.000'"}


# --- query by frame --------------------------------------------------------------------


async def test_a_frame_upload_finds_the_scene_it_was_taken_from(
    client: httpx.AsyncClient,
) -> None:
    screenshot = jpeg(frame_at("harbour", 3.0), quality=75)

    response = await client.post(
        "/api/search/frame", params={"k": 3}, files={"image": ("shot.jpg", screenshot)}
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["query"], body["k"]) == ("frame", 3)
    top = body["hits"][0]
    assert top["segment_id"] == "harbour#frame@3.000"
    assert top["source"] == "frame"
    assert top["video_url"] == "/api/videos/harbour#t=3.000"
    assert top["thumbnail_url"] == "/api/thumbnails/harbour%23frame%403.000"
    assert len(body["hits"]) == 3


async def test_a_raw_image_body_is_a_frame_query(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/search/frame",
        content=jpeg(frame_at("market", 7.0)),
        headers={"Content-Type": "image/jpeg"},
    )

    assert response.status_code == 200
    assert response.json()["hits"][0]["segment_id"] == "market#frame@6.000"


@pytest.mark.parametrize(
    ("request_kwargs", "status", "fragment"),
    [
        (
            {"files": {"image": ("notes.txt", b"not a picture")}},
            422,
            "expected a JPEG or PNG image",
        ),
        (
            {"content": b"\x89PNG broken", "headers": {"Content-Type": "image/png"}},
            422,
            "expected a JPEG or PNG image",
        ),
        (
            {"files": {"picture": ("a.jpg", b"\xff\xd8")}},
            422,
            "the multipart form needs a file field named 'image'",
        ),
        (
            {"content": b"hello", "headers": {"Content-Type": "text/plain"}},
            422,
            "got Content-Type text/plain",
        ),
        (
            {"content": b"", "headers": {"Content-Type": "image/jpeg"}},
            422,
            "the image is empty",
        ),
        (
            {"content": b"\0" * (MAX_UPLOAD_BYTES + 1), "headers": {"Content-Type": "image/jpeg"}},
            413,
            f"at most {MAX_UPLOAD_BYTES} allowed",
        ),
    ],
    ids=["text-file", "broken-png", "no-image-field", "not-an-image-type", "empty", "too-big"],
)
async def test_a_frame_query_that_is_not_an_image_is_refused(
    client: httpx.AsyncClient, request_kwargs: dict[str, Any], status: int, fragment: str
) -> None:
    response = await client.post("/api/search/frame", **request_kwargs)

    assert response.status_code == status
    assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("k=0", "query parameter 'k': Input should be greater than or equal to 1"),
        ("q=red", "unknown query parameter 'q'; allowed: k"),
    ],
)
async def test_frame_query_parameters_are_validated(
    client: httpx.AsyncClient, query: str, fragment: str
) -> None:
    image = jpeg(frame_at("harbour", 0.0))

    response = await client.post(f"/api/search/frame?{query}", files={"image": ("a.jpg", image)})

    assert response.status_code == 422
    assert fragment in response.json()["detail"]


# --- health, metrics, page -------------------------------------------------------------


async def test_healthz_reports_rows_and_version(
    client: httpx.AsyncClient, index: SearchIndex
) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "rows": index.stats()["rows"],
        "version": index.dataset.version,
    }


async def test_metrics_count_requests_per_route_and_time_them(
    client: httpx.AsyncClient, index: SearchIndex
) -> None:
    await client.get("/api/search", params={"q": "ferry"})
    await client.get("/api/search", params={"q": ""})
    await client.get("/api/videos/nope")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    search = 'method="GET",route="/api/search"'
    assert f'video_search_http_requests_total{{{search},status="200"}} 1.0' in text
    assert f'video_search_http_requests_total{{{search},status="422"}} 1.0' in text
    videos = 'route="/api/videos/{video_id:path}",status="404"'
    assert f'video_search_http_requests_total{{method="GET",{videos}}} 1.0' in text
    assert f"video_search_http_request_duration_seconds_count{{{search}}} 2.0" in text
    assert f"video_search_index_rows {float(index.stats()['rows'])}" in text


async def test_each_app_has_its_own_metrics(index: SearchIndex) -> None:
    async with _client(create_app(index)) as first, _client(create_app(index)) as second:
        await first.get("/healthz")
        text = (await second.get("/metrics")).text

    assert 'route="/healthz"' not in text


async def test_the_page_and_its_assets_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    script = await client.get("/static/app.js")
    style = await client.get("/static/style.css")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for element in ('id="q"', 'id="results"', 'id="player"', 'id="frame"', 'id="source"'):
        assert element in page.text
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert style.status_code == 200


# --- audit of the public promises: repeated parameters, huge images, languages ----------


@pytest.mark.parametrize(
    ("method", "url", "name"),
    [
        ("GET", "/api/search?q=ferry&q=bread", "q"),
        ("GET", "/api/search?q=ferry&k=2&k=3", "k"),
        ("POST", "/api/search/frame?k=1&k=2", "k"),
    ],
    ids=["search-q", "search-k", "frame-k"],
)
async def test_a_parameter_given_twice_is_refused_naming_it(
    client: httpx.AsyncClient, method: str, url: str, name: str
) -> None:
    files = {"image": ("a.jpg", jpeg(frame_at("harbour", 0.0)))} if method == "POST" else None

    response = await client.request(method, url, files=files)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"query parameters given more than once: {name!r} (2 times)" in detail


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` × ``height`` pixels (and holds one empty row): what a
    decompression bomb looks like to a decoder, without the memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        ((7_000, 7_000), "the image is 7000 × 7000 pixels; at most 40,000,000 pixels"),
        ((20_000, 20_000), "exceeds limit"),  # Pillow's own bomb check, before ours
    ],
    ids=["over-our-limit", "decompression-bomb"],
)
async def test_an_image_with_too_many_pixels_is_a_422_not_a_crash(
    client: httpx.AsyncClient, size: tuple[int, int], fragment: str
) -> None:
    image = _png_header(*size)

    response = await client.post("/api/search/frame", files={"image": ("big.png", image)})

    assert response.status_code == 422
    assert fragment in response.json()["detail"]


async def test_a_file_that_is_not_an_image_is_described_without_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/search/frame", files={"image": ("a.txt", b"hello")})

    assert response.json() == {
        "detail": "expected a JPEG or PNG image; got 5 bytes that are not an image"
    }


async def test_stats_count_the_text_rows_of_each_language(client: httpx.AsyncClient) -> None:
    from _server_fixtures import MISSING_VIDEO, SEGMENTS

    expected: dict[str, int] = {}
    for segment in (*SEGMENTS, MISSING_VIDEO):
        expected[segment.language] = expected.get(segment.language, 0) + 1

    response = await client.get("/api/stats")

    assert response.json()["languages"] == expected  # frame rows (no language) left out


def test_an_address_in_use_is_refused_naming_it() -> None:
    import socket

    from tideflow.core.errors import ConfigError
    from tideflow_video_search.server import check_address

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_address("127.0.0.1", port)
