"""The Chinese edition's style guide (locales/zh_CN/STYLE.md), checked on every catalogue.

* No msgstr uses a variant the style guide bans (the table `cebook.i18n.BANNED`, which STYLE.md
  points to): one Chinese term per concept, one label per label, "说法 N", "80%".
* Every msgstr renders, with the markdown parser the build uses (MyST's), to the same emphasis,
  strong emphasis, links, roles, formulas and lists as its English. In CommonMark a ``*`` between
  a Han character and ``{`` cannot open emphasis, so "即*{term}`混合精度 <mixed precision>`*："
  shows its asterisks; this catches it.

Both read every catalogue there is, so new pages are covered as soon as they are translated.
"""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from cebook import i18n


def _messages() -> list[tuple[str, str, str]]:
    """(catalogue, English, Chinese) of every translated, non-fuzzy message."""
    found = []
    for po in sorted(i18n.CATALOGUE_DIR.rglob("*.po")):
        with po.open("rb") as f:
            catalog = read_po(f)
        name = str(po.relative_to(i18n.CATALOGUE_DIR))
        found += [(name, str(m.id), str(m.string)) for m in catalog
                  if m.id and m.string and not m.fuzzy]
    return found


MESSAGES = _messages()


def test_there_are_catalogues_to_check():
    assert len({name for name, _, _ in MESSAGES}) >= 28 and len(MESSAGES) > 1000


def _report(found: list[str]) -> str:
    return f"{len(found)} message(s):\n" + "\n".join(found[:80])


def test_no_banned_variant_in_any_catalogue():
    found = [f"{name}: {problem}: {i18n._short(chinese, 70)!r}"
             for name, _, chinese in MESSAGES for problem in i18n.style_problems(chinese)]
    assert not found, "variants that locales/zh_CN/STYLE.md bans, " + _report(found)


def test_every_translation_renders_like_its_english():
    found = [f"{name}: {problem}: {i18n._short(chinese, 70)!r}"
             for name, english, chinese in MESSAGES
             if (problem := i18n.markup_problem(english, chinese))]
    assert not found, "translations whose markdown renders differently, " + _report(found)


def test_the_style_guide_points_to_the_banned_table_and_names_each_choice():
    guide = i18n.STYLE_GUIDE.read_text(encoding="utf-8")
    assert "cebook/i18n.py" in guide and "BANNED" in guide
    missing = [use for _, use in i18n.BANNED
               if re.match(r"[^\s(（]+", use).group(0) not in guide]
    assert not missing, f"choices of BANNED that STYLE.md does not mention: {missing}"


@pytest.mark.parametrize("chinese, caught", [
    ("即*{term}`混合精度 <mixed precision>`*：", "em: 1 in the English, 0 here"),
    ("即 *{term}`混合精度 <mixed precision>`*：", None),
    ("即**{term}`混合精度 <mixed precision>`**：", "em: 1 in the English, 0 here"),
    ("即*混合精度*：", "roles"),
])
def test_the_markup_comparison_catches_emphasis_that_does_not_open(chinese, caught):
    english = "that is, *{term}`mixed precision <mixed precision>`*: the"
    problem = i18n.markup_problem(english, chinese)
    assert (problem is None) if caught is None else (caught in problem), problem


@pytest.mark.parametrize("english, chinese, caught", [
    ("1. A heading", "1\\. 标题", None),
    ("- one\n- two", "- 一二", "blocks"),
    ("See [the docs](a.md).", "见[文档](b.md)。", "links"),
    ("A **strong** word", "一个**强调**的词", None),
    ("A **strong** word", "一个**强调（strong）**词", "strong"),
])
def test_the_markup_comparison(english, chinese, caught):
    problem = i18n.markup_problem(english, chinese)
    assert (problem is None) if caught is None else (caught in problem), problem


@pytest.mark.parametrize("text, banned", [
    ("见{doc}`notation` 页", "页"),
    ("准确率 80 %", "%"),
    ("解决办法：换底", "修正："),
    ("用 multi-hot 目标", "多热"),
    ("用多热（multi-hot）目标，$80 %$ 与 `80 %`", None),
    ("惊奇度（又称自信息）", None),
])
def test_the_banned_variants(text, banned):
    found = i18n.style_problems(text)
    assert (not found) if banned is None else any(banned in f for f in found), found


def test_math_words_may_be_translated_but_not_the_formula():
    english = i18n.protected_spans(r"$2^{\text{bits per token}}$ and $x$")
    assert english == i18n.protected_spans(r"$2^{\text{每词元比特数}}$ 与 $x$")
    assert english != i18n.protected_spans(r"$3^{\text{每词元比特数}}$ 与 $x$")


def test_the_search_dictionary_is_current():
    """locales/zh_CN/search_words.txt is what cebook.i18n.search_words makes of the catalogues
    (python -m cebook.i18n build rewrites it), and it has every glossary term's Chinese words."""
    text = i18n.SEARCH_DICT.read_text(encoding="utf-8")
    assert text == i18n.search_words_text(), (
        "search_words.txt is stale: run python -m cebook.i18n build (or "
        "python -c 'from cebook import i18n; i18n.write_search_words()')")
    words = {line.split()[0] for line in text.splitlines()}
    for name in i18n.glossary_chinese_names():
        for run in re.findall(r"[\u4e00-\u9fff]{2,}", name):
            assert run in words, run


def test_the_template_overrides_words_are_translated():
    """book/_templates overrides the theme's templates that hard-code English ("Toggle primary
    sidebar", "Main", "Page") with {{ _('…') }}: each of those words has its Chinese in
    sphinx.po, the theme's catalogue, which `make po` leaves alone."""
    words = i18n.theme_words()
    used = {word for template in (i18n.ROOT / "book" / "_templates").glob("*.html")
            for word in re.findall(r"_\('([^']+)'\)", template.read_text(encoding="utf-8"))}
    assert {"Toggle primary sidebar", "Main", "Page"} <= used
    assert not used - set(words), sorted(used - set(words))
