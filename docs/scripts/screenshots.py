"""Screenshots of the built site: the home page and one concept page, in headless Chromium.

Serves ``site/`` on a free loopback port (so directory URLs, fonts and the search index load
as they do for a reader) and writes ``site/_screenshots/home.png`` and
``site/_screenshots/concept-epochs.png``. Playwright drives Debian's ``chromium`` (browsers
cannot be downloaded here; ``make system-deps`` installs it)::

    python docs/scripts/screenshots.py [--site site]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAGES = {"home": "", "concept-epochs": "concepts/checkpoints/"}
"""Screenshot name → page path under the site root."""
VIEWPORT = {"width": 1280, "height": 900}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Serve without a line per request."""


def chromium() -> str:
    """The Chromium executable, or exit with what to install."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found is None:
        raise SystemExit("screenshots: needs Debian's chromium: run `make system-deps`")
    return found


def take(site: Path) -> list[Path]:
    """Take every screenshot of ``PAGES``; return the files written."""
    from playwright.sync_api import sync_playwright

    if not (site / "index.html").exists():
        raise SystemExit(f"screenshots: no built site at {site}: run `mkdocs build` first")
    out = site / "_screenshots"
    out.mkdir(exist_ok=True)
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    written = []
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT)
            for name, path in PAGES.items():
                response = page.goto(base + path, wait_until="networkidle")
                if response is None or response.status != 200:
                    status = None if response is None else response.status
                    raise SystemExit(f"screenshots: {base + path} answered {status}")
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=False)
                written.append(target)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: take the screenshots and say where they are."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=Path("site"), help="the built site")
    args = parser.parse_args(argv)
    for path in take(args.site):
        sys.stdout.write(f"screenshot: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
