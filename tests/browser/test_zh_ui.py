"""The Chinese edition's interface is Chinese, and its typography is CJK typography.

* No English interface string on any Chinese page: the hints of sphinx-togglebutton ("Click to
  show"), myst-nb's "Show code cell source", Sphinx's "Link to this heading", the theme's
  tooltips and aria-labels ("Toggle primary sidebar", "Main", "Page"), the footer
  ("By … © Copyright"), and the theme's Taiwan-usage "列印成 PDF".
* Emphasis is drawn as 着重号 (a dot under each character), never as sheared italic Han.
* Exercise titles read "练习 6.1（…）" and solutions "练习 6.1（…）的解答".
* In the glossary the Chinese term is the headword, the English term under it.

The strings are read in the browser, after the scripts have run (sphinx-togglebutton writes its
buttons then), from the whole page: attributes a reader meets through a tooltip, a screen reader
or a placeholder, and the text of the interface (header, sidebars, footer, buttons, summaries,
admonition titles). The book's own English (code, outputs, formulas, references, the API
docstrings, anything marked lang="en") is not interface.
"""

from __future__ import annotations

import re

import pytest

from .test_site import _report

pytestmark = pytest.mark.browser

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


def _chinese_pages(docnames) -> list[str]:
    return [*docnames, "search"]


@pytest.fixture(scope="module")
def english_ui(page, base_url, docnames, site_dir) -> dict[str, list]:
    if not (site_dir / ZH / "index.html").is_file():
        pytest.fail(f"no Chinese edition in {site_dir / ZH}: make book builds it", pytrace=False)
    found = {}
    for docname in _chinese_pages(docnames):
        query = "?q=交叉熵" if docname == "search" else ""
        page.goto(f"{base_url}/{ZH}/{docname}.html{query}", wait_until="load")
        if docname == "search":
            page.wait_for_function("() => { const h = document.querySelector("
                                   "'#search-results h2'); return h && !/…|\\.\\.\\./"
                                   ".test(h.textContent); }", timeout=20_000)
        strings = page.evaluate(UI_JS)
        if strings:
            found[docname] = strings
    return found


def test_no_english_interface_string_on_chinese_pages(english_ui):
    every = sorted({text for strings in english_ui.values() for _, text in strings})
    assert not english_ui, (
        f"{len(every)} English interface string(s) on Chinese pages: {every}\n"
        + _report({name: strings[:6] for name, strings in english_ui.items()}))


# The computed style of the emphasis in a page's prose (not in code, references, docstrings).
EMPHASIS_JS = r"""
() => {
  const skip = 'dl.py, .sig, pre, .cell_output, .output, .citation, .bibliography, [lang="en"]';
  const ems = Array.from(document.querySelectorAll('.bd-article em'))
      .filter(el => !el.closest(skip) && /[\u4e00-\u9fff]/.test(el.textContent));
  return ems.map(el => {
    const s = getComputedStyle(el);
    return {text: el.textContent.slice(0, 20), fontStyle: s.fontStyle,
            emphasis: s.textEmphasisStyle || s.webkitTextEmphasisStyle || 'none',
            position: s.textEmphasisPosition || s.webkitTextEmphasisPosition || ''};
  });
}
"""


@pytest.mark.parametrize("docname", ["book/intro", "book/01_entropy",
                                     "book/05_numerical_stability", "book/06_gradients"])
def test_emphasis_is_dotted_not_italic(page, base_url, docname):
    page.goto(f"{base_url}/{ZH}/{docname}.html", wait_until="load")
    ems = page.evaluate(EMPHASIS_JS)
    assert ems, f"{docname}: no emphasised Chinese text to check"
    wrong = [e for e in ems if e["fontStyle"] != "normal" or "dot" not in e["emphasis"]
             or "under" not in e["position"]]
    assert not wrong, f"{docname}: emphasis not drawn as 着重号: {wrong[:5]}"


TITLES_JS = r"""
() => Array.from(document.querySelectorAll('div.exercise p.admonition-title, '
                                           + 'div.solution p.admonition-title'))
          .map(p => [p.closest('div.solution') ? 'solution' : 'exercise', p.textContent.trim()])
"""


def test_exercise_and_solution_titles(page, base_url, chapters):
    """Every exercise of every chapter is "练习 6.1（…）" and its solution "练习 6.1（…）的解答"."""
    exercise = re.compile(r"练习 \d+\.\d+（.+）")
    problems, seen = {}, 0
    for docname in chapters:
        page.goto(f"{base_url}/{ZH}/{docname}.html", wait_until="load")
        titles = page.evaluate(TITLES_JS)
        seen += len(titles)
        bad = [title for kind, title in titles if not (exercise.fullmatch(title) if kind ==
               "exercise" else re.fullmatch(exercise.pattern + "的解答", title))]
        if bad:
            problems[docname] = bad[:4]
    assert seen >= 20, f"only {seen} exercise and solution titles found"
    assert not problems, "exercise titles not in the Chinese form:\n" + _report(problems)


GLOSSARY_JS = r"""
() => Array.from(document.querySelectorAll('dl.glossary > dd')).map(dd => {
  const terms = [];
  let el = dd.previousElementSibling;
  for (; el && el.tagName === 'DT'; el = el.previousElementSibling) terms.unshift(el);
  return terms.map(dt => [dt.textContent.replace(/#$/, '').trim(),
                          parseInt(getComputedStyle(dt).fontWeight), dt.id]);
})
"""


def test_the_glossary_headword_is_chinese(page, base_url):
    page.goto(f"{base_url}/{ZH}/book/glossary.html", wait_until="load")
    entries = page.evaluate(GLOSSARY_JS)
    assert len(entries) >= 40
    han = re.compile(r"[\u4e00-\u9fff]")
    bad = [terms for terms in entries if len(terms) == 2 and not (
        han.search(terms[0][0]) and terms[0][1] >= 600 and terms[1][1] < 600
        and terms[0][2].startswith("term-"))]
    assert not bad, f"glossary entries whose headword is not the Chinese term: {bad[:5]}"
