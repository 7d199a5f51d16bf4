"""The built site, checked in a real browser (headless Chromium), served from 127.0.0.1.

`make book` first; then `pytest -m browser tests/browser` (or `make test-browser`). One browser,
one context, one tab: the `crawl` fixture opens every page of the table of contents once and
records what the checks need (status, console errors, math, images, footer, links, download
link, API objects, glossary), so each page is loaded a single time; the search and solution
checks open a few more pages. The last two tests cover every page any test opened: no request
left 127.0.0.1 and no console error was logged.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest

from .conftest import VIEWPORT

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.browser


# Where the crawl spends its time, for the terminal summary (see conftest.py).
CRAWL_SECONDS: dict[str, float] = {}

# Waits for MathJax (if the page has math) and returns what the math checks need.
MATH_JS = """
async () => {
  const math = Array.from(document.querySelectorAll('span.math, div.math'));
  const result = {total: math.length, rendered: 0, errors: [], raw: [], problem: null};
  if (math.length) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 15000) { result.problem = 'MathJax did not load'; return result; }
      await new Promise(r => setTimeout(r, 25));
    }
    await MathJax.startup.promise;
    result.rendered = math.filter(el => el.querySelector('mjx-container')).length;
    // TeX errors, and undefined macros (MathJax shows those in red, as text starting with \\).
    const undefinedMacros = Array.from(
        document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]'))
        .filter(el => el.textContent.startsWith('\\\\'));
    result.errors = Array.from(document.querySelectorAll('mjx-merror'))
        .map(el => el.getAttribute('data-mjx-error') || el.textContent)
        .concat(undefinedMacros.map(el => 'undefined macro ' + el.textContent)).slice(0, 5);
  }
  // Text a reader sees (code excluded): no TeX delimiters may be left in it.
  const main = document.querySelector('main') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight, kbd')
       .forEach(el => el.remove());
  const text = clone.textContent;
  const patterns = [/\\$\\$/, /\\\\\\(/, /\\\\\\)/, /\\\\\\[/, /\\\\\\]/,
                    /\\$[^$\\n]*\\\\[a-zA-Z]+[^$\\n]*\\$/];
  for (const p of patterns) {
    const m = text.match(p);
    if (m) {
      const i = m.index;
      result.raw.push(text.slice(Math.max(0, i - 40), i + 40).replace(/\\s+/g, ' '));
    }
  }
  return result;
}
"""

# Forces lazy images to load, waits for every <img>, returns (src, naturalWidth).
IMAGES_JS = """
async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(img => { img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.complete && img.naturalWidth ? null : new Promise(res => {
    img.addEventListener('load', res, {once: true});
    img.addEventListener('error', res, {once: true});
    setTimeout(res, 10000);
  })));
  return imgs.map(img => [img.getAttribute('src'), img.naturalWidth]);
}
"""

PAGE_JS = """
() => ({
  title: document.title,
  footer: (document.querySelector('footer.bd-footer-content') || {innerText: ''}).innerText,
  download: Array.from(document.querySelectorAll('a.btn-download-source-button'))
                 .map(a => a.href),
  solutions: document.querySelectorAll('div.solution.dropdown').length,
  textLength: (document.querySelector('main') || document.body).innerText.length,
  links: Array.from(document.querySelectorAll('main a.reference.internal'))
              .map(a => a.getAttribute('href')),
  hrefs: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name),
  glossary: Array.from(document.querySelectorAll('dl.glossary > dd')).map(dd => {
    const terms = [];
    for (let el = dd.previousElementSibling; el && el.tagName === 'DT';
         el = el.previousElementSibling) {
      terms.unshift({text: el.innerText.trim(), width: el.getBoundingClientRect().width});
    }
    return {terms: terms, definition: dd.innerText};
  }),
  overflow: OVERFLOW(),
})
"""

# Code and output blocks wider than their box (a horizontal scroll bar; the reader sees the
# line cut off), and "Contents" entries cut off, at the page's viewport.
OVERFLOW_JS = """
() => {
  const cut = el => el.scrollWidth > el.clientWidth + 1;
  const blocks = Array.from(document.querySelectorAll('article pre'));
  return {blocks: blocks.length,
          cut: blocks.filter(cut).map(p => p.textContent.split('\\n')[0].slice(0, 60)),
          contents: Array.from(document.querySelectorAll('.bd-sidebar-secondary nav.page-toc a'))
                         .filter(a => a.getBoundingClientRect().right >
                                      a.closest('.bd-sidebar-secondary')
                                       .getBoundingClientRect().right + 1)
                         .map(a => a.innerText)};
}
"""
PAGE_JS = PAGE_JS.replace("OVERFLOW()", f"({OVERFLOW_JS.strip()})()")


API_JS = """
() => Array.from(document.querySelectorAll('dl.py > dt.sig[id]')).map(dt => ({
  id: dt.id,
  kind: dt.parentElement.classList[1],
  text: dt.parentElement.querySelector(':scope > dd') ?
        dt.parentElement.querySelector(':scope > dd').innerText : '',
  source: !!dt.querySelector("a[href*='_modules/']"),
}))
"""


@dataclass
class PageRecord:
    docname: str
    url: str
    status: int | None = None
    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    math: dict = field(default_factory=dict)
    images: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    api: list = field(default_factory=list)  # API pages: the documented objects


def page_url(base_url: str, docname: str) -> str:
    return f"{base_url}/{docname}.html"


@pytest.fixture(scope="session")
def crawl(page, base_url: str, docnames: list[str], traffic) -> dict[str, PageRecord]:
    """Open every page of the table of contents once; record what the checks need."""
    records: dict[str, PageRecord] = {}
    seconds = CRAWL_SECONDS
    for docname in docnames:
        rec = PageRecord(docname, page_url(base_url, docname))
        t0 = time.perf_counter()
        response = page.goto(rec.url, wait_until="load")
        t1 = time.perf_counter()
        rec.status = response.status if response else None
        rec.math = page.evaluate(MATH_JS)
        t2 = time.perf_counter()
        rec.images = page.evaluate(IMAGES_JS)
        t3 = time.perf_counter()
        rec.info = page.evaluate(PAGE_JS)
        if docname.startswith("book/api/"):
            rec.api = page.evaluate(API_JS)
        t4 = time.perf_counter()
        for step, dt in (("load", t1 - t0), ("math", t2 - t1), ("images", t3 - t2),
                         ("page info", t4 - t3)):
            seconds[step] = seconds.get(step, 0.0) + dt
        records[docname] = rec
    seconds["pages"] = len(records)
    page.wait_for_load_state("networkidle")  # the last page's stragglers
    for rec in records.values():  # errors and requests are attributed by page URL
        rec.errors = traffic.errors_on(rec.url)
        rec.external = traffic.external_from(rec.url)
    return records


def _report(problems: dict[str, object]) -> str:
    return "\n".join(f"  {name}: {what}" for name, what in problems.items())


def test_every_toc_page_loads_without_errors(crawl):
    problems = {}
    for name, rec in crawl.items():
        if rec.status != 200:
            problems[name] = f"HTTP status {rec.status}"
        elif rec.errors:
            problems[name] = rec.errors
        elif rec.info["textLength"] < 200:
            problems[name] = f"almost empty page ({rec.info['textLength']} characters)"
    assert not problems, "pages with problems:\n" + _report(problems)


def test_code_fits_at_a_laptop_width(crawl):
    """At 1280 x 900 no code or output block of any page needs a horizontal scroll bar, and no
    "Contents" entry is cut off (book/_static/custom.css)."""
    shares = {name: f"{len(rec.info['overflow']['cut'])} of {rec.info['overflow']['blocks']} "
                    f"blocks cut off, first: {rec.info['overflow']['cut'][:2]}"
              for name, rec in crawl.items() if rec.info["overflow"]["cut"]}
    assert not shares, f"at {VIEWPORT['width']} px:\n" + _report(shares)
    cut = {name: rec.info["overflow"]["contents"] for name, rec in crawl.items()
           if rec.info["overflow"]["contents"]}
    assert not cut, "Contents entries cut off:\n" + _report(cut)


@pytest.mark.parametrize("width, height", [(1366, 768), (1024, 768)])
def test_code_fits_at_other_laptop_widths(context, base_url, width, height):
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": height})
    problems = {}
    for docname in ("book/04_cross_entropy", "book/07_mnist_labels", "book/appendix_claims"):
        page.goto(page_url(base_url, docname), wait_until="load")
        found = page.evaluate(OVERFLOW_JS)
        if found["cut"]:
            problems[docname] = f"{len(found['cut'])} of {found['blocks']}: {found['cut'][:2]}"
    page.close()
    assert not problems, f"at {width} px:\n" + _report(problems)


def test_a_wide_formula_scrolls_on_a_phone(context, base_url):
    """On a phone, a display formula wider than the column scrolls sideways, never clipped."""
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(page_url(base_url, "book/04_cross_entropy"), wait_until="load")
    page.wait_for_function("document.querySelector('mjx-container[display=\"true\"]')",
                           polling=250)
    clipped = page.evaluate("""() => Array.from(
        document.querySelectorAll('mjx-container[display="true"]'))
        .filter(m => m.scrollWidth > m.clientWidth + 1
                     && getComputedStyle(m).overflowX !== 'auto').length""")
    page.close()
    assert clipped == 0, f"{clipped} display formula(s) clipped at 390 px"


def test_footer_names_authors_and_year(crawl):
    problems = {name: rec.info["footer"] for name, rec in crawl.items()
                if "The Cross-Entropy, Executed authors" not in rec.info["footer"]
                or "2026" not in rec.info["footer"]}
    assert not problems, "footer without authors or year:\n" + _report(problems)


def test_math_is_rendered(crawl):
    with_math = [name for name, rec in crawl.items() if rec.math["total"]]
    assert with_math, "no page has a formula: the math detection is broken"
    problems = {}
    for name, rec in crawl.items():
        m = rec.math
        if m["problem"]:
            problems[name] = m["problem"]
        elif m["rendered"] != m["total"]:
            problems[name] = f"{m['total'] - m['rendered']} of {m['total']} formulas not rendered"
        elif m["errors"]:
            problems[name] = f"MathJax errors: {m['errors']}"
        elif m["raw"]:
            problems[name] = f"raw TeX left in the text: {m['raw']}"
    assert not problems, "math problems:\n" + _report(problems)


def broken_images(records) -> dict[str, list[str]]:
    """{page: sources of its images that did not load}, for the pages with any."""
    problems = {name: [src for src, width in rec.images if not width]
                for name, rec in records.items()}
    return {name: srcs for name, srcs in problems.items() if srcs}


def search_results(page, url: str, heading: str) -> list[str]:
    """The pages Sphinx's search lists for the query in `url`, in order, each once; `heading`
    is how the results heading starts once the search has finished."""
    page.goto(url, wait_until="load")
    page.wait_for_function(
        "(heading) => { const h = document.querySelector('#search-results h2');"
        " return h && h.textContent.startsWith(heading); }", arg=heading, timeout=20_000)
    hrefs = page.eval_on_selector_all(
        "#search-results ul.search li a", "els => els.map(a => a.getAttribute('href'))")
    found: list[str] = []
    for href in hrefs:
        docname = href.split("#")[0].split("?")[0].removesuffix(".html")
        if docname not in found:
            found.append(docname)
    return found


def test_every_image_loads(crawl):
    problems = broken_images(crawl)
    assert not problems, "images that did not load:\n" + _report(problems)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("softmax", {"book/02_softmax"}),
        ("label smoothing", {"book/03_targets", "book/04_cross_entropy"}),
    ],
)
def test_search_finds_the_right_chapters(page, base_url, query, expected):
    found = search_results(page, f"{base_url}/search.html?q={query.replace(' ', '+')}",
                           "Search Results")
    top = found[:5]
    assert expected & set(top), (
        f"search for {query!r}: expected one of {sorted(expected)} in the first 5 results, "
        f"got {top} (of {len(found)} pages)"
    )


def test_solution_is_hidden_until_clicked(page, base_url, crawl, chapters):
    with_solution = [name for name in chapters if crawl[name].info["solutions"]]
    assert with_solution, "no chapter has a solution dropdown ({solution-start} :class: dropdown)"
    page.goto(page_url(base_url, with_solution[0]), wait_until="load")
    solution = page.locator("div.solution.dropdown").first
    body = solution.locator(":scope > .admonition-title ~ *").first
    solution.scroll_into_view_if_needed()
    assert "toggle-hidden" in (solution.get_attribute("class") or "")
    assert body.is_hidden(), f"{with_solution[0]}: the first solution is visible before a click"
    solution.locator("button.toggle-button").click()
    body.wait_for(state="visible", timeout=5_000)
    assert body.is_visible()


def _public_modules() -> list[str]:
    """celib's public modules and packages, each of which has an API page."""
    modules = [p.stem for p in (ROOT / "celib").glob("*.py") if p.name != "__init__.py"]
    packages = [p.parent.name for p in (ROOT / "celib").glob("*/__init__.py")]
    names = {*modules, *packages}
    return sorted(name for name in names if not name.startswith("_"))


@pytest.fixture(scope="session")
def api_pages(crawl) -> dict[str, list]:
    """The documented objects of every API page, {module: [{id, kind, text, source}]}, and
    the links of the API index page under "index"."""
    pages = {name: crawl[f"book/api/{name}"].api for name in _public_modules()
             if f"book/api/{name}" in crawl}
    pages["index"] = crawl["book/api/index"].info["links"] if "book/api/index" in crawl else []
    return pages


def test_api_pages_document_every_public_name(api_pages, docnames):
    """Every name in each celib module's __all__ is documented, listed on the index, and
    (functions and classes) has a [source] link."""
    missing_pages = [m for m in _public_modules() if f"book/api/{m}" not in docnames]
    assert not missing_pages, f"celib modules without an API page in _toc.yml: {missing_pages}"
    problems = {}
    for name in _public_modules():
        public = list(getattr(importlib.import_module(f"celib.{name}"), "__all__", []))
        assert public, f"celib.{name} has no __all__"
        documented = {obj["id"]: obj for obj in api_pages.get(name, [])}
        not_documented = [n for n in public if f"celib.{name}.{n}" not in documented]
        not_indexed = [n for n in public
                       if f"{name}.html#celib.{name}.{n}" not in api_pages["index"]]
        no_source = [n for n in public if documented.get(f"celib.{name}.{n}", {}).get("kind")
                     in ("function", "class") and not documented[f"celib.{name}.{n}"]["source"]]
        for label, names in (("not documented", not_documented),
                             ("not listed on the API index", not_indexed),
                             ("no [source] link", no_source)):
            if names:
                problems[f"celib.{name} {label}"] = names
    assert not problems, "API reference incomplete:\n" + _report(problems)


def test_every_public_function_names_its_chapter(api_pages):
    """Each public function's documentation says which chapter explains it."""
    missing = [obj["id"] for name in _public_modules() for obj in api_pages.get(name, [])
               if obj["kind"] == "function" and not re.search(r"\bchapters? \d", obj["text"], re.I)]
    assert not missing, ("functions whose docstring does not name the chapter that explains them "
                         "(add e.g. 'Explained in chapter 5 (Numerical stability).'): "
                         f"{missing}")


def test_docstrings_have_only_sections_the_api_pages_show():
    """numpydoc renders the API pages and silently drops a section it does not know (a
    "Shapes:" section, say): every section of every public docstring must be a numpydoc one."""
    from numpydoc.docscrape import NumpyDocString

    problems = {}
    for name in _public_modules():
        module = importlib.import_module(f"celib.{name}")
        for obj_name in ["__doc__", *module.__all__]:
            obj = module if obj_name == "__doc__" else getattr(module, obj_name)
            doc = inspect.getdoc(obj) if callable(obj) or obj is module else None
            if not doc:
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                NumpyDocString(doc)
            messages = [str(w.message).splitlines()[0] for w in caught]
            if messages:
                problems[f"celib.{name}.{obj_name}"] = messages
    assert not problems, "docstring sections numpydoc would drop:\n" + _report(problems)


def test_glossary_gives_every_term_in_english_and_chinese(crawl):
    entries = crawl["book/glossary"].info["glossary"]
    assert len(entries) >= 30, f"only {len(entries)} glossary entries"
    cjk = re.compile(r"[\u4e00-\u9fff]")
    problems = {}
    for entry in entries:
        name = entry["terms"][0]["text"] if entry["terms"] else "?"
        if not any(cjk.search(t["text"]) for t in entry["terms"]):
            problems[name] = "no Chinese term"
        elif not any(not cjk.search(t["text"]) for t in entry["terms"]):
            problems[name] = "no English term"
        elif not all(t["width"] > 0 for t in entry["terms"]):
            problems[name] = "a term is not displayed"
        elif not re.search(r"chapters? \d", entry["definition"], re.I):
            problems[name] = "the definition does not say which chapter teaches it"
    assert not problems, "glossary entries:\n" + _report(problems)


def test_every_chapter_offers_its_notebook(context, crawl, chapters):
    problems = {}
    for name in chapters:
        links = [href for href in crawl[name].info["download"] if href.endswith(".ipynb")]
        if not links:
            problems[name] = "no .ipynb download link"
            continue
        response = context.request.get(links[0])
        if response.status != 200:
            problems[name] = f"{links[0]}: HTTP {response.status}"
            continue
        try:
            nb = nbformat.reads(response.text(), as_version=4)
            nbformat.validate(nb)
        except (json.JSONDecodeError, nbformat.ValidationError) as exc:
            problems[name] = f"{links[0]}: not a valid notebook: {exc}"
            continue
        if not nb.cells:
            problems[name] = f"{links[0]}: a notebook without cells"
    assert not problems, "notebook downloads:\n" + _report(problems)


def test_internal_links_resolve(context, crawl, base_url):
    """Every link on every page that stays on the site leads to a file that exists (HTTP 200)
    and, on the pages of the table of contents, to an anchor that exists."""
    ids = {rec.url: set(rec.info["ids"]) for rec in crawl.values()}
    targets: dict[str, set[str]] = {}  # URL without fragment -> the pages linking to it
    broken_anchors = {}
    for name, rec in crawl.items():
        for href in rec.info["hrefs"]:
            if not href.startswith(base_url + "/"):
                continue
            url, _, fragment = href.partition("#")
            targets.setdefault(url, set()).add(name)
            if fragment and url in ids and unquote(fragment) not in ids[url]:
                broken_anchors.setdefault(name, []).append(href.removeprefix(base_url))
    broken = {}
    for url, sources in sorted(targets.items()):
        status = 200 if url in ids else context.request.head(url).status
        if status != 200:
            broken[url.removeprefix(base_url)] = f"HTTP {status}, linked from {sorted(sources)}"
    assert len(targets) > len(crawl), "suspiciously few internal links"
    assert not broken and not broken_anchors, (
        "links to missing files:\n" + _report(broken)
        + "\nlinks to missing anchors:\n" + _report(broken_anchors))


RESOURCE_TAG = re.compile(
    r"<(?:script|link|img|iframe|source|audio|video|embed|object)\b[^>]*?"
    r"\b(?:src|href|data)\s*=\s*[\"']?\s*(?:https?:)?//[^\"'\s>]*", re.I)
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1>", re.I | re.S)
URL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\"'\s)]*", re.I)
CSS_URL = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])\s*((?:https?:)?//[^\"')\s]*)", re.I)


def test_no_page_or_stylesheet_names_a_remote_resource(site_dir):
    """Static check of every built file a browser would load without being asked: no tag loads
    a resource from another host, no inline script or style names one, no stylesheet imports
    one. (Links a reader may click, <a href="https://...">, are fine.) What scripts fetch at run
    time is checked in the browser by test_no_request_leaves_localhost."""
    problems = {}
    for path in sorted(site_dir.rglob("*.html")):
        text = path.read_text(encoding="utf-8", errors="replace")
        hits = RESOURCE_TAG.findall(text)
        for _, body in SCRIPT_OR_STYLE.findall(text):
            hits += URL.findall(body)
        hits = [h for h in hits if "www.w3.org/" not in h]  # XML namespaces, not requests
        if hits:
            problems[str(path.relative_to(site_dir))] = sorted(set(hits))[:5]
    for path in sorted(site_dir.rglob("*.css")):
        hits = CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))
        if hits:
            problems[str(path.relative_to(site_dir))] = sorted(set(hits))[:5]
    assert not problems, "remote resources named in the built site:\n" + _report(problems)


def test_no_request_leaves_localhost(crawl, traffic):
    """Runs last: covers every page the tests above opened, not only the crawl."""
    assert re.match(r"http://127\.0\.0\.1:\d+$", traffic.local_origin)
    per_page = {}
    for where, url in traffic.external:
        per_page.setdefault(where, []).append(url)
    assert not traffic.external, "requests that left 127.0.0.1:\n" + _report(per_page)


def test_no_console_error_on_any_page_opened(crawl, traffic):
    """The search, solution and API checks opened pages too: none may have logged an error."""
    per_page = {}
    for where, what in traffic.errors:
        per_page.setdefault(where, []).append(what)
    assert not traffic.errors, "console errors:\n" + _report(per_page)
