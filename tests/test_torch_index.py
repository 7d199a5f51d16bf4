"""make venv asks PyTorch's CPU index for torch where it answers, and falls back at once where
it does not (cebook/torch_index.py)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cebook import torch_index

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def index() -> Iterator[str]:
    """A local stand-in for the CPU index: /torch/ answers 200."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/whl/cpu"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_reachable_index_is_given_to_pip(index):
    assert torch_index.pip_options(index) == ["--extra-index-url", index]


def test_an_unreachable_index_falls_back_at_once():
    start = time.perf_counter()
    assert torch_index.pip_options(f"http://127.0.0.1:{_closed_port()}/whl/cpu") == []
    assert torch_index.pip_options("https://no-such-host.invalid/whl/cpu") == []
    assert time.perf_counter() - start < 5


def test_an_index_that_never_answers_falls_back_after_the_timeout():
    with socket.socket() as silent:  # accepts the connection, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.perf_counter()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu"
        assert torch_index.pip_options(url, timeout=0.5) == []
        assert time.perf_counter() - start < 3


def test_an_index_without_torch_is_not_used(index):
    assert torch_index.pip_options(index.replace("/cpu", "/none")) == []


def test_make_venv_asks_it_with_the_system_python():
    """The module runs before .venv exists: standard library only, options on stdout."""
    out = subprocess.run([sys.executable, "-I", "-m", "cebook.torch_index"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() in ("", f"--extra-index-url {torch_index.CPU_INDEX}")
    assert "make venv:" in out.stderr
    assert "$($(PYTHON) -m cebook.torch_index)" in (ROOT / "Makefile").read_text()
