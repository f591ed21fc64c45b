"""The web page in a real browser: one uvicorn server on a free port, Debian's Chromium
driven by Playwright. Search, see thumbnails, click a hit, watch it play from its start;
then search by frame."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from _server_fixtures import build_index, frame_at, jpeg, running_server

from tideflow_video_search.server import create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# No skip without the browser: `make test` installs it (tools/scripts/system_deps.sh), and a
# missing browser fails the test with its name.
pytestmark = [pytest.mark.slow]

_THUMBNAILS_LOADED = """() => {
    const images = [...document.querySelectorAll('.hit img')];
    return images.length > 0 && images.every((img) => img.complete && img.naturalWidth > 0);
}"""
_PLAYING_FROM = """(start) => {
    const video = document.getElementById('player');
    return video.readyState >= 3 && !video.paused && !video.ended && video.currentTime >= start;
}"""
_PLAYER = """() => {
    const video = document.getElementById('player');
    return {time: video.currentTime, paused: video.paused, src: video.currentSrc};
}"""


async def test_a_search_shows_hits_and_a_click_plays_the_moment(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), "needs Debian's chromium: make system-deps installs it"
    test_index = await asyncio.to_thread(build_index, tmp_path / "data")
    app = create_app(test_index.open())
    screenshot = Path(os.environ.get("TIDEFLOW_SCREENSHOT") or tmp_path / "video-search.png")
    shot = tmp_path / "market-at-7s.jpg"
    shot.write_bytes(jpeg(frame_at("market", 7.0)))

    async with running_server(app) as base_url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1180, "height": 720})
            await page.goto(f"{base_url}/")
            await page.fill("#q", "lighthouse keeper")
            await page.press("#q", "Enter")

            first = page.locator(".hit").first
            await first.wait_for()
            await page.wait_for_function(_THUMBNAILS_LOADED)
            assert await first.locator(".hit-video").inner_text() == "harbour"
            assert await first.locator(".hit-time").inner_text() == "00:03–00:06"
            assert await first.locator(".hit-source").text_content() == "speech"
            assert "lighthouse keeper" in await first.locator(".hit-text").inner_text()
            start = float(await first.get_attribute("data-start") or "nan")
            assert start == 3.0

            await first.click()
            await page.wait_for_function(_PLAYING_FROM, arg=start)
            playing = await page.evaluate(_PLAYER)
            await page.wait_for_timeout(400)
            later = await page.evaluate(_PLAYER)

            screenshot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(screenshot), full_page=True)

            await page.set_input_files("#frame", str(shot))
            await page.locator(".hit .hit-source", has_text="frame").first.wait_for()
            frame_hits = await page.locator(".hit").evaluate_all(
                "(hits) => hits.map((hit) => hit.dataset.segmentId)"
            )
        finally:
            await browser.close()

    assert playing["src"] == f"{base_url}/api/videos/harbour"
    assert abs(playing["time"] - start) < 1.0
    assert not playing["paused"]
    assert later["time"] > playing["time"]  # the video is playing, not just seeked
    assert screenshot.stat().st_size > 0
    assert frame_hits[0] == "market#frame@6.000"  # search by frame: the scene it came from
