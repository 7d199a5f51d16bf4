"""A chapter opened in JupyterLab reads as on the site: MyST rendered, not shown as markup.

The notebooks are the book's point: a learner runs them. Their markdown is MyST (roles such as
{term} and {doc}, directives such as {exercise}, $math$), which plain JupyterLab shows as raw
text. requirements.txt pins jupyterlab-myst, which renders it; this starts `jupyter lab` from
.venv on 127.0.0.1, opens chapter 4 in the headless Chromium of the other browser tests, and
checks what the learner sees.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "celib-test"
CHAPTER = "book/04_cross_entropy.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[str]:
    """`jupyter lab` on a free port, every cell rendered (no windowing), stopped afterwards."""
    home = tmp_path_factory.mktemp("jupyterlab")
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    command = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
               f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={ROOT}", "--LabApp.news_url=", "--allow-root"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start: "
                                + server.stderr.read().decode()[-2000:], pytrace=False)
                time.sleep(0.25)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


# What the notebook panel shows, once rendered.
RENDERED_JS = """
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  const text = panel ? panel.innerText : '';
  return {
    cells: panel ? panel.querySelectorAll('.jp-Cell').length : 0,
    exercises: Array.from(panel ? panel.querySelectorAll('aside, .admonition') : [])
                    .filter(box => /Exercise/.test(box.innerText)).length,
    math: panel ? panel.querySelectorAll('mjx-container, .katex').length : 0,
    markup: ['{exercise}', ':label: ch04-ex1', '{term}`', '{doc}`', '$$']
              .filter(raw => text.includes(raw)),
  };
}
"""


def test_jupyterlab_renders_the_chapters_myst(context, traffic, lab):
    exercises = (ROOT / CHAPTER).read_text(encoding="utf-8").count("{exercise}")
    # The other browser tests only let the site's own server through; JupyterLab is local too.
    context.route(f"{lab}/**", lambda route: route.continue_())
    page = context.new_page()
    try:
        page.goto(f"{lab}/lab/tree/{CHAPTER}?token={TOKEN}", wait_until="load")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        # polled by time: a background tab gets no animation frames to poll on
        page.wait_for_function(f"({RENDERED_JS.strip()})().exercises >= {exercises}",
                               polling=250, timeout=60_000)
        seen = page.evaluate(RENDERED_JS)
    finally:
        page.close()
        context.unroute(f"{lab}/**")
        # JupyterLab's requests are local too: not the site's traffic, which other tests check
        traffic.external[:] = [(where, url) for where, url in traffic.external
                               if not url.startswith(lab) and not where.startswith(lab)]
    assert seen["cells"] > 50, seen
    assert exercises >= 4, "the chapter this test opens should have exercises to render"
    assert seen["exercises"] == exercises, f"the exercise boxes are not rendered: {seen}"
    assert seen["math"] > 20, f"the math is not rendered: {seen}"
    assert not seen["markup"], f"MyST shown as raw markup: {seen['markup']}"
