"""Fixtures for the browser tests: the built site on 127.0.0.1 and one headless Chromium.

The site is `_build/html` (build it with `make book`; `CELIB_SITE_DIR` points elsewhere). It is
served by `http.server` in a thread on a free port of 127.0.0.1. Chromium is Debian's package
(`/usr/bin/chromium`, or `$CELIB_CHROMIUM`), driven by Playwright; `playwright install` is never
needed. Without Chromium the tests are skipped, unless `CELIB_REQUIRE_BROWSER=1` (as in CI),
which turns the skip into a failure.

Every request the browser makes goes through a route: requests to the local server go on, any
other one is recorded and aborted, and `test_no_request_leaves_localhost` asserts none was made.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("CELIB_SITE_DIR", ROOT / "_build" / "html"))
CHROMIUM = os.environ.get("CELIB_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("CELIB_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
]
VIEWPORT = {"width": 1280, "height": 900}


def toc_docnames() -> list[str]:
    """Every page of _toc.yml, in reading order (root first)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return names


def chapter_docnames() -> list[str]:
    """The pages of the numbered part(s) of _toc.yml: the chapters."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [c["file"] for part in toc.get("parts", []) if part.get("numbered")
            for c in part.get("chapters", [])]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


def _page_of(request) -> str:
    try:
        return request.frame.url.split("#")[0]
    except Exception:  # a request with no frame (a worker): not attributable to a page
        return "?"


@dataclass
class Traffic:
    """What the browser asked for and what went wrong, for the whole session.

    Each entry is (URL of the page it happened on, what happened).
    """

    local_origin: str
    external: list[tuple[str, str]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return True
        return f"{parts.scheme}://{parts.netloc}" == self.local_origin

    def errors_on(self, url: str) -> list[str]:
        return [what for where, what in self.errors if where == url.split("#")[0]]

    def external_from(self, url: str) -> list[str]:
        return [what for where, what in self.external if where == url.split("#")[0]]


@pytest.fixture(scope="session")
def site_dir() -> Path:
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no built site at {SITE}: run make book first", pytrace=False)
    return SITE


@pytest.fixture(scope="session")
def base_url(site_dir: Path):
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def _unavailable(reason: str):
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (CELIB_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def traffic(base_url: str) -> Traffic:
    return Traffic(local_origin=base_url)


@pytest.fixture(scope="session")
def context(base_url: str, traffic: Traffic):
    """One Chromium with a fresh profile, and its one browser context."""
    if not Path(CHROMIUM).exists():
        _unavailable(f"Chromium not found at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - playwright is pinned in requirements.txt
        _unavailable(f"playwright is not importable: {exc}")

    profile = tempfile.mkdtemp(prefix="celib-chromium-")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
            service_workers="block",
        )

        def route(r):
            if traffic.is_local(r.request.url):
                r.continue_()
            else:
                r.abort("blockedbyclient")

        ctx.route("**/*", route)
        # Every HTTP request is seen here, whether or not the route saw it.
        ctx.on("request", lambda req: None if traffic.is_local(req.url)
               else traffic.external.append((_page_of(req), req.url)))
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def page(context, traffic: Traffic):
    """The one tab every test uses; console errors and page errors go to `traffic`."""
    pg = context.pages[0] if context.pages else context.new_page()
    pg.set_default_timeout(20_000)

    def on_console(msg):
        if msg.type == "error":
            traffic.errors.append((pg.url.split("#")[0], f"console: {msg.text}"))

    pg.on("console", on_console)
    pg.on("websocket", lambda ws: None if traffic.is_local(ws.url.replace("ws", "http", 1))
          else traffic.external.append((pg.url.split("#")[0], ws.url)))
    pg.on("pageerror", lambda exc: traffic.errors.append((pg.url.split("#")[0],
                                                         f"page error: {exc}")))
    return pg


@pytest.fixture(scope="session")
def docnames() -> list[str]:
    return toc_docnames()


@pytest.fixture(scope="session")
def chapters() -> list[str]:
    return chapter_docnames()


def pytest_terminal_summary(terminalreporter):
    """Time spent by the crawl in each of its steps, summed over the pages (pytest's
    --durations shows it as the setup of the first test)."""
    module = sys.modules.get("test_site")
    seconds = getattr(module, "CRAWL_SECONDS", None)
    if seconds:
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items() if k != "pages")
        terminalreporter.write_line(
            f"browser crawl of {seconds['pages']} pages: {steps}")


@pytest.fixture(scope="session")
def zh_crawl(page, base_url, docnames, site_dir):
    """Every Chinese page, opened once (:mod:`zh_pages`): shared by test_site_zh.py and
    test_zh_ui.py, which would otherwise each load all of them."""
    from .zh_pages import crawl

    return crawl(page, base_url, docnames, site_dir)
