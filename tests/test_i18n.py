"""The Chinese edition's catalogues (locales/zh_CN) against the English text of today.

`test_every_message_is_translated` extracts every page's messages afresh (Sphinx's gettext
builder, about 15 s) and fails, naming the catalogue and the message, when one is missing,
untranslated, fuzzy, stale, or has its math, code, a role's target or a link's target changed.
The other tests show that each of those is caught, on small catalogues made here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from cebook import i18n
from cebook.sphinx_editions import other_edition_url


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    pot_dir = tmp_path_factory.mktemp("i18n") / "gettext"
    i18n.extract(pot_dir)
    return pot_dir


def test_every_page_has_a_catalogue(extracted):
    pages = {p.relative_to(extracted).with_suffix("") for p in extracted.rglob("*.pot")}
    assert Path("book/04_cross_entropy") in pages and Path("book/glossary") in pages
    assert len(pages) >= 28


def test_every_message_is_translated(extracted):
    found = i18n.problems(extracted)
    assert not found, (f"{len(found)} message(s) the Chinese edition would show wrong "
                       "(make po, then translate):\n" + "\n".join(map(str, found[:60])))


def test_docstrings_are_not_extracted(extracted):
    """celib's docstrings stay English (like code): only the API pages' own text is kept."""
    import inspect

    import celib.functional

    with (extracted / "book/api/functional.pot").open("rb") as f:
        ids = [m.id for m in i18n.read_po(f) if m.id]
    assert ids[0] == "celib.functional" and "Differences from torch" in ids  # the page's own
    docs = " ".join(" ".join((inspect.getdoc(getattr(celib.functional, name)) or "").split())
                    for name in ["__doc__", *celib.functional.__all__] if name != "__doc__")
    docs += " ".join((celib.functional.__doc__ or "").split())
    from_docstrings = [m for m in ids if len(m) > 30 and m in docs]
    assert not from_docstrings, from_docstrings[:3]


def _write(path: Path, entries: dict[str, str], fuzzy: set[str] = frozenset(),
           fuzzy_header: bool = False) -> None:
    catalog = Catalog(locale="zh_CN", fuzzy=fuzzy_header)
    for msgid, msgstr in entries.items():
        catalog.add(msgid, msgstr, flags={"fuzzy"} if msgid in fuzzy else ())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog)


ENGLISH = {
    "Cross-entropy": "",
    "The loss is $-\\log q_y$, see {term}`cross-entropy`.": "",
    "Call `F.cross_entropy` as in [the docs](api/functional.md).": "",
    "Summary": "",
    "Gone": "",
}
GOOD = {
    "Cross-entropy": "交叉熵",
    "The loss is $-\\log q_y$, see {term}`cross-entropy`.":
        "损失是 $-\\log q_y$，见{term}`交叉熵 <Cross-entropy>`。",
    "Call `F.cross_entropy` as in [the docs](api/functional.md).":
        "像[文档](api/functional.md)里那样调用 `F.cross_entropy`。",
    "Summary": "小结",
}


def _problems_with(tmp_path: Path, translated: dict[str, str], fuzzy=frozenset()):
    pot = dict(ENGLISH)
    del pot["Gone"]
    _write(tmp_path / "pot/book/page.pot", pot)
    _write(tmp_path / "po/book/page.po", translated, fuzzy)
    return [(p.catalogue, p.what) for p in i18n.problems(tmp_path / "pot", tmp_path / "po")]


def test_a_complete_catalogue_passes(tmp_path):
    assert _problems_with(tmp_path, GOOD) == []


@pytest.mark.parametrize("change, what", [
    (lambda t: t.pop("Summary"), "missing (run make po)"),
    (lambda t: t.update({"Summary": ""}), "untranslated"),
    (lambda t: t.update({"Gone": "没了"}), "no longer in the English (run make po)"),
    (lambda t: t.update({"Cross-entropy": "交叉熵 $H$"}), "math, code, a role or a link"),
    (lambda t: t.update({"Summary": "1. 小结"}), "numbered list"),
    (lambda t: t.update({next(k for k in GOOD if "$" in k): "损失是 $-\\log q$。"}), "math"),
    (lambda t: t.update({next(k for k in GOOD if "`F" in k): "调用 `F.nll_loss`。"}), "code"),
    (lambda t: t.update({next(k for k in GOOD if "$" in k):
                         "损失是 $-\\log q_y$，见{term}`熵 <entropy>`。"}), "a role"),
    (lambda t: t.update({next(k for k in GOOD if "`F" in k):
                         "像[文档](api/grad.md)里那样调用 `F.cross_entropy`。"}), "a link"),
])
def test_each_kind_of_problem_is_caught(tmp_path, change, what):
    translated = dict(GOOD)
    change(translated)
    found = _problems_with(tmp_path, translated)
    assert len(found) == 1 and found[0][0] == "book/page.po" and what in found[0][1], found


def test_fuzzy_is_caught(tmp_path):
    assert _problems_with(tmp_path, GOOD, fuzzy={"Summary"}) == [("book/page.po", "fuzzy")]


def test_a_fuzzy_header_is_caught(tmp_path):
    """sphinx-intl copies the template's header, marked fuzzy; make po finishes it."""
    pot = {k: v for k, v in ENGLISH.items() if k != "Gone"}
    _write(tmp_path / "pot/book/page.pot", pot)
    _write(tmp_path / "po/book/page.po", GOOD, fuzzy_header=True)
    found = [(p.catalogue, p.what) for p in i18n.problems(tmp_path / "pot", tmp_path / "po")]
    assert found == [("book/page.po", "its header is marked fuzzy (run make po)")]
    i18n._finish_header(tmp_path / "po/book/page.po")
    assert i18n.problems(tmp_path / "pot", tmp_path / "po") == []


def test_a_page_without_catalogue_and_a_catalogue_without_page(tmp_path):
    _write(tmp_path / "pot/book/new.pot", {"New page": ""})
    _write(tmp_path / "po/book/old.po", {"Old page": "旧页"})
    found = {(p.catalogue, p.what) for p in i18n.problems(tmp_path / "pot", tmp_path / "po")}
    assert found == {("book/new.po", "no catalogue"),
                     ("book/old.po", "catalogue of a page that no longer exists (run make po)")}


@pytest.mark.parametrize("pagename, chinese, url", [
    ("book/04_cross_entropy", False, "../zh_CN/book/04_cross_entropy.html"),
    ("book/04_cross_entropy", True, "../../book/04_cross_entropy.html"),
    ("book/api/grad", False, "../../zh_CN/book/api/grad.html"),
    ("book/api/grad", True, "../../../book/api/grad.html"),
    ("search", False, "zh_CN/search.html"),
    ("search", True, "../search.html"),
])
def test_the_switch_links_to_the_same_page(pagename, chinese, url):
    assert other_edition_url(pagename, chinese) == url


def test_an_english_edit_keeps_the_old_english_for_the_translator(tmp_path, capsys):
    """make po marks a changed message fuzzy and keeps the English its translation was made
    for (``#| msgid``); todo shows the change, and apply writes the revision back."""
    old, new = "The loss is large for a wrong class.", "The loss is large for a wrong label."
    _write(tmp_path / "pot/book/page.pot", {"Summary": "", new: ""})
    _write(tmp_path / "po/book/page.po", {"Summary": "小结", old: "错误类别的损失很大。"})
    assert i18n._merge(tmp_path / "pot/book/page.pot", tmp_path / "po/book/page.po")
    assert f'#| msgid "{old}"' in (tmp_path / "po/book/page.po").read_text(encoding="utf-8")
    [item] = i18n.todo(tmp_path / "po")
    assert (item.english, item.previous_english, item.chinese) == (old.replace("class", "label"),
                                                                   old, "错误类别的损失很大。")
    i18n._print_todo([item], as_json=False, summary_only=False)
    assert "English, changed: The loss is large for a wrong [-class.] [+label.]" in (
        capsys.readouterr().out)
    revised = {"catalogue": "book/page.po", "english": new, "chinese": "错误标签的损失很大。"}
    assert i18n.apply([revised], tmp_path / "po") == 1
    assert i18n.todo(tmp_path / "po") == []
    assert i18n.problems(tmp_path / "pot", tmp_path / "po") == []
    assert not i18n._merge(tmp_path / "pot/book/page.pot", tmp_path / "po/book/page.po")
    with pytest.raises(ValueError, match="an empty translation"):
        i18n.apply([{**revised, "chinese": " "}], tmp_path / "po")


def test_the_old_english_survives_other_translations_and_merges(tmp_path):
    """babel reads a ``#| msgid`` line back as a comment: a catalogue written, read and written
    again must keep each fuzzy message's old English once, and gain no ``# |`` comment."""
    edits = {"Cross-entropy is a loss.": "Cross-entropy is the loss.", "Summary": "Summaries"}
    _write(tmp_path / "pot/book/page.pot", {new: "" for new in edits.values()})
    _write(tmp_path / "po/book/page.po", {"Cross-entropy is a loss.": "交叉熵是一种损失。",
                                          "Summary": "小结"})
    po = tmp_path / "po/book/page.po"
    assert i18n._merge(tmp_path / "pot/book/page.pot", po)
    assert {t.english: t.previous_english for t in i18n.todo(tmp_path / "po")} == {
        new: old for old, new in edits.items()}
    i18n.apply([{"catalogue": "book/page.po", "english": "Summaries", "chinese": "总结"}],
               tmp_path / "po")
    assert not i18n._merge(tmp_path / "pot/book/page.pot", po)  # stable
    i18n._finish_header(po)
    text = po.read_text(encoding="utf-8")
    assert text.count('#| msgid "Cross-entropy is a loss."') == 1
    assert "# |" not in text and '#| msgid "Summary"' not in text
    [left] = i18n.todo(tmp_path / "po")
    assert (left.english, left.previous_english) == ("Cross-entropy is the loss.",
                                                    "Cross-entropy is a loss.")
