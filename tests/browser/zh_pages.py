"""The Chinese edition's pages, opened once for all the browser tests that read them.

:func:`crawl` (the session fixture ``zh_crawl`` of conftest.py) visits every page of the table
of contents in the Chinese edition and records, per page, what test_site_zh.py and
test_zh_ui.py check: status, math, images, ``<html lang>``, how Chinese the prose is, both
ends of the language switch, and the interface strings with English in them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from .test_site import IMAGES_JS, MATH_JS

ZH = "zh_CN"

# The whole page's interface strings: [where, string] for each one with English in it.
UI_JS = r"""
() => {
  const han = /[\u4e00-\u9fff]/;
  const content = 'pre, code, kbd, .highlight, .cell_output, .output, mjx-container, .math, '
      + 'dl.py, div.citation, .bibliography, table.autosummary, [lang="en"], script, style, '
      + 'svg, a.reference.internal, a.reference.external, img';
  // Words of an interface: one of them is enough. Other English is flagged from two words on
  // (a chapter title may hold one English word, "softmax 与温度"; a name like "celib.grad" is
  // code).
  const uiWord = new RegExp('\\b(' + [
      'Click', 'Show', 'Hide', 'Toggle', 'Link', 'Main', 'Page', 'Copyright', 'By', 'Search',
      'Contents', 'Previous', 'Next', 'Download', 'Print', 'Fullscreen', 'Copy', 'Back', 'Skip',
      'Light', 'Dark', 'System', 'Color', 'Theme', 'Menu', 'Close', 'Open', 'Home', 'Source',
      'Edit', 'Launch', 'Solution', 'Exercise', 'authors', 'Language'].join('|') + ')\\b');
  const phrase = /[A-Za-z]{2,}[A-Za-z'-]*(?:[ ,]+[A-Za-z]{2,}[A-Za-z'-]*)+/;
  const english = s => uiWord.test(s) || phrase.test(s);
  const where = el => {
    const classes = typeof el.className === 'string' ? el.className.trim().split(/\s+/) : [];
    const named = classes[0] ? ` class="${classes.slice(0, 2).join(' ')}"` : '';
    return `<${el.tagName.toLowerCase()}${named}>`;
  };
  const found = [];
  const attrs = ['title', 'aria-label', 'placeholder', 'data-bs-title', 'data-bs-original-title',
                 'data-toggle-hint', 'data-tooltip'];
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest(content)) continue;
    for (const a of attrs) {
      const v = el.getAttribute(a);
      if (v && !han.test(v) && /[A-Za-z]{2,}/.test(v) && !/^[\w.\/-]+$/.test(v)) {
        found.push([`${a} of ${where(el)}`, v]);
      } else if (v && (english(v.replace(/[\w.]+\.[\w.]+/g, '')) || /列印/.test(v))) {
        found.push([`${a} of ${where(el)}`, v]);
      }
    }
    for (const pseudo of ['::before', '::after']) {
      const c = getComputedStyle(el, pseudo).content;
      if (/^".*"$/.test(c) && english(c)) {
        found.push([`${pseudo} of ${where(el)}`, c]);
      }
    }
  }
  const ui = 'header, .bd-header-article, .bd-sidebar-primary, .bd-sidebar-secondary, '
      + 'footer, .prev-next-area, button, summary, label, p.admonition-title, .caption-number, '
      + '#search-results > h2, #search-results > p';
  for (const el of document.querySelectorAll(ui)) {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent.trim();
      if (!text || node.parentElement.closest(content)) continue;
      const words = text.replace(/[\w]+(\.[\w]+)+/g, '');  // dotted names: code
      if (english(words) || /列印/.test(text)) found.push([`text in ${where(el)}`, text]);
    }
  }
  const seen = new Set();
  return found.filter(([w, s]) => !seen.has(w + s) && seen.add(w + s));
}
"""


# How Chinese the prose of the page is: Han characters against Latin words, in the text a
# reader reads. Code, outputs, formulas, the reference lists and (API pages) celib's docstrings,
# which stay English on purpose, are left out.
PROSE_JS = """
() => {
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style, mjx-container, .math, .highlight, '
      + '.cell_output, .output, dl.py, div.citation, .bibliography, table.autosummary, '
      + '.cebook-lang-switch').forEach(el => el.remove());
  const text = main.textContent;
  return {
    captions: Array.from(document.querySelectorAll('.bd-links p.caption'))
                   .map(p => p.textContent.trim()),
    apiNote: !!document.querySelector('.cebook-api-note'),
    han: (text.match(/[\\u4e00-\\u9fff]/g) || []).length,
    latinWords: (text.match(/[A-Za-z]{2,}/g) || []).length,
  };
}
"""

SWITCH_JS = """
() => {
  const a = document.querySelector('.cebook-lang-switch a.cebook-lang-other');
  return {lang: document.documentElement.lang, switchHref: a ? a.href : null,
          switchText: a ? a.textContent.trim() : null, title: document.title};
}
"""


@dataclass
class ZhPage:
    docname: str
    url: str
    status: int | None = None
    math: dict = field(default_factory=dict)
    images: list = field(default_factory=list)
    prose: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    ui: list = field(default_factory=list)
    """[where, string] for each interface string with English in it (test_zh_ui.py)."""


def zh_url(base_url: str, docname: str) -> str:
    return f"{base_url}/{ZH}/{docname}.html"


def crawl(page, base_url, docnames, site_dir) -> dict[str, ZhPage]:
    """Open every Chinese page once and record what the tests of the Chinese edition read."""
    if not (site_dir / ZH / "index.html").is_file():
        pytest.fail(f"no Chinese edition in {site_dir / ZH}: make book builds it", pytrace=False)
    records = {}
    for docname in docnames:
        rec = ZhPage(docname, zh_url(base_url, docname))
        response = page.goto(rec.url, wait_until="load")
        rec.status = response.status if response else None
        rec.math = page.evaluate(MATH_JS)
        rec.images = page.evaluate(IMAGES_JS)
        rec.prose = page.evaluate(PROSE_JS)
        rec.info = page.evaluate(SWITCH_JS)
        rec.ui = page.evaluate(UI_JS)
        records[docname] = rec
    page.wait_for_load_state("networkidle")
    return records
