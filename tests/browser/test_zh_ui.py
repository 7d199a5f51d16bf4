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
from .zh_pages import UI_JS, ZH

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def english_ui(page, base_url, zh_crawl) -> dict[str, list]:
    """The interface strings with English in them, per Chinese page: those the crawl recorded,
    and those of the search page once it has shown its results."""
    found = {name: rec.ui for name, rec in zh_crawl.items() if rec.ui}
    page.goto(f"{base_url}/{ZH}/search.html?q=交叉熵", wait_until="load")
    page.wait_for_function("() => { const h = document.querySelector('#search-results h2'); "
                           "return h && !/…|\\.\\.\\./.test(h.textContent); }", timeout=20_000)
    strings = page.evaluate(UI_JS)
    if strings:
        found["search"] = strings
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
