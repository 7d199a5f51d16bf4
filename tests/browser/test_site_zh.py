"""The Chinese edition (`_build/html/zh_CN`), checked in the same headless Chromium.

The `zh_crawl` fixture (conftest.py, zh_pages.py) opens every page of the table of contents in
the Chinese edition once, as test_site.py does for the English one, and records what the checks
below need: status, math, images, `<html lang>`, how Chinese the prose is, and both ends of the
language switch. The last
tests cover every Chinese page any test here opened: no request left 127.0.0.1, no console error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_site import _report, broken_images, search_results
from .zh_pages import ZH, zh_url

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "_build" / "screenshots"

def _zh_traffic(traffic, kind: str) -> dict[str, list[str]]:
    per_page: dict[str, list[str]] = {}
    for where, what in getattr(traffic, kind):
        if f"/{ZH}/" in where:
            per_page.setdefault(where, []).append(what)
    return per_page


def test_every_chinese_page_loads(zh_crawl):
    problems = {name: f"HTTP status {rec.status}" for name, rec in zh_crawl.items()
                if rec.status != 200}
    assert not problems, "Chinese pages that did not load:\n" + _report(problems)


def test_lang_attribute_is_zh_cn(zh_crawl):
    problems = {name: rec.info["lang"] for name, rec in zh_crawl.items()
                if rec.info["lang"] != "zh-CN"}
    assert not problems, "<html lang> is not zh-CN on:\n" + _report(problems)


def test_math_is_rendered_on_chinese_pages(zh_crawl):
    problems = {}
    for name, rec in zh_crawl.items():
        m = rec.math
        if m["problem"] or m["errors"] or m["raw"] or m["rendered"] != m["total"]:
            problems[name] = {k: m[k] for k in ("problem", "errors", "raw", "total", "rendered")}
    assert any(rec.math["total"] for rec in zh_crawl.values())
    assert not problems, "math problems on Chinese pages:\n" + _report(problems)


def test_images_load_on_chinese_pages(zh_crawl):
    problems = broken_images(zh_crawl)
    assert not problems, "images that did not load:\n" + _report(problems)


def test_chinese_pages_read_in_chinese(zh_crawl):
    """An untranslated page has (almost) no Han characters; a translated one has many more Han
    characters than Latin words, even with the names of code left in English. The API pages
    are celib's docstrings, English like the code (their module docstrings are not in a
    dl.py either), under a note in Chinese that says so: they must show that note."""
    problems = {}
    for name, rec in zh_crawl.items():
        han, latin = rec.prose["han"], rec.prose["latinWords"]
        if rec.prose["apiNote"]:
            if han < 20:
                problems[name] = "an API page without its Chinese note"
        elif han < 20 or han < 2 * latin:
            problems[name] = f"{han} Han characters, {latin} Latin words"
    assert not problems, "Chinese pages whose prose is not mostly Chinese:\n" + _report(problems)


def test_sidebar_parts_are_in_chinese(zh_crawl):
    """The part captions of _toc.yml ("Start here", "Chapters", ...) are translated too."""
    problems = {name: rec.prose["captions"] for name, rec in zh_crawl.items()
                if not rec.prose["captions"]
                or not all(re.search(r"[\u4e00-\u9fff]", c) for c in rec.prose["captions"])}
    assert not problems, "sidebar part captions not in Chinese:\n" + _report(problems)


def test_switch_leads_to_the_same_page_and_back(zh_crawl, context, base_url):
    """On every page: 中文 → EN names the same page, and that English page's switch names the
    Chinese page again. On three pages the switch is also clicked, both ways."""
    problems = {}
    for name, rec in zh_crawl.items():
        english = f"{base_url}/{name}.html"
        if rec.info["switchHref"] != english:
            problems[name] = f"中文 → {rec.info['switchHref']}"
            continue
        html = context.request.get(english).text()
        match = re.search(r'class="cebook-lang-other" href="([^"]+)"', html)
        back = match and f"{base_url}/{name.rsplit('/', 1)[0]}/{match.group(1)}"
        if not back or _normalise(back) != rec.url:
            problems[name] = f"EN → {back}"
    assert not problems, "language switch problems:\n" + _report(problems)


def _normalise(url: str) -> str:
    """Resolve ../ in a URL's path."""
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return f"{scheme}://{host}/" + "/".join(parts)


@pytest.mark.parametrize("docname", ["book/intro", "book/04_cross_entropy", "book/api/grad"])
def test_clicking_the_switch(page, base_url, docname):
    page.goto(zh_url(base_url, docname), wait_until="load")
    page.click(".cebook-lang-switch a.cebook-lang-other")
    page.wait_for_load_state("load")
    assert page.url == f"{base_url}/{docname}.html"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.click(".cebook-lang-switch a.cebook-lang-other")
    page.wait_for_load_state("load")
    assert page.url == zh_url(base_url, docname)


@pytest.mark.parametrize("query, expected", [
    ("交叉熵", {"book/04_cross_entropy", "book/01_entropy"}),
    ("数值稳定性", {"book/05_numerical_stability"}),
    ("标签平滑", {"book/03_targets", "book/04_cross_entropy"}),
])
def test_chinese_search_finds_the_right_chapters(page, base_url, query, expected):
    found = search_results(page, f"{base_url}/{ZH}/search.html?q={query}", "搜索结果")
    assert expected & set(found[:3]), (
        f"search for {query}: expected one of {sorted(expected)} in the first 3 results, "
        f"got {found[:5]} (of {len(found)} pages)")


# Families of the CJK fonts the stylesheet names (book/_static/custom.css).
CJK_FONT = re.compile(r"CJK|Source Han|PingFang|Hiragino|YaHei|WenQuanYi", re.I)


def _fonts_drawing(page, context, selector: str) -> list[dict]:
    """The platform fonts Chromium used for the text of the first `selector` (DevTools)."""
    cdp = context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        assert node, f"nothing matches {selector}"
        return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()


@pytest.mark.parametrize("where, selector", [
    (f"{ZH}/book/intro", "main h1 ~ p"),
    (f"{ZH}/book/04_cross_entropy", "main section p"),
    (f"{ZH}/book/glossary", "main dl.glossary > dd p"),
    ("book/glossary", "main dl.glossary > dt:nth-of-type(2)"),
])
def test_cjk_text_is_drawn_with_a_cjk_font(page, context, base_url, where, selector):
    """Han characters are drawn by a real CJK font, not as empty boxes: the fonts Chromium
    reports for the element include a CJK font drawing at least as many glyphs as there are Han
    characters. (Comparing widths cannot tell: a CJK glyph and Chromium's empty box are both
    1 em wide.) A screenshot of the top of each page is kept in _build/screenshots for a person
    to look at."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base_url}/{where}.html", wait_until="load")
    text = page.inner_text(selector)
    han = len(re.findall(r"[\u4e00-\u9fff]", text))
    assert han, f"{where}: no Han character in {selector}: {text[:80]!r}"
    fonts = _fonts_drawing(page, context, selector)
    cjk_glyphs = sum(f["glyphCount"] for f in fonts if CJK_FONT.search(f["familyName"]))
    assert cjk_glyphs >= han, f"{where}: {han} Han characters, fonts used: {fonts}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{where.replace('/', '_')}.png"))


def test_no_request_leaves_localhost_from_chinese_pages(zh_crawl, traffic):
    per_page = _zh_traffic(traffic, "external")
    assert not per_page, "requests that left 127.0.0.1:\n" + _report(per_page)


def test_no_console_error_on_chinese_pages(zh_crawl, traffic):
    per_page = _zh_traffic(traffic, "errors")
    assert not per_page, "console errors on Chinese pages:\n" + _report(per_page)


@pytest.mark.parametrize("docname, keep", [
    ("book/04_cross_entropy", "#common-mistakes"),
    ("search", "?q=softmax"),
])
def test_the_switch_keeps_the_section_and_the_search(page, base_url, docname, keep):
    """From a section (#anchor) or a search (?q=), the switch leads to the same place in the
    other edition, and back."""
    page.goto(f"{base_url}/{docname}.html{keep}", wait_until="load")
    page.click(".cebook-lang-switch a.cebook-lang-other")
    page.wait_for_load_state("load")
    assert page.url == f"{zh_url(base_url, docname)}{keep}"
    if keep.startswith("#"):
        assert page.evaluate(f"!!document.getElementById({keep[1:]!r})"), (
            f"{keep} is not a section of the Chinese page")
    page.click(".cebook-lang-switch a.cebook-lang-other")
    page.wait_for_load_state("load")
    assert page.url == f"{base_url}/{docname}.html{keep}"
