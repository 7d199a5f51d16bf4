"""The Chinese notebooks: a chapter's markdown cells translated with the site's catalogues.

The Chinese site is built from the English sources and ``locales/zh_CN`` (:mod:`cebook.i18n`).
A student who runs the notebooks needs the same text in the notebook itself. Sphinx's
catalogue messages are the markdown of one block each (a paragraph, a heading, a list item, a
table cell, an exercise title) with its lines joined by spaces, so the same blocks are found
here with markdown-it, MyST's own parser, and replaced by their translations. Code cells and
their outputs, math blocks and directive options stay as they are, as on the Chinese site.

:func:`translate_notebook` also returns the blocks it found no translation for, so that a test
can insist there are none.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po
from markdown_it import MarkdownIt
from mdit_py_plugins.colon_fence import colon_fence_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.myst_blocks import myst_block_plugin

from .i18n import CATALOGUE_DIR

Lookup = Callable[[str], "str | None"]

# myst_block_plugin: a target line "(label)=" is markup, not a paragraph to translate.
_PARSER = (MarkdownIt("commonmark").enable("table").use(dollarmath_plugin)
           .use(colon_fence_plugin).use(myst_block_plugin))
_DIRECTIVE = re.compile(r"\{([\w-]+)\}\s*(.*)")
# Directives whose body is prose; the others (code, math, bibliography) are left alone.
_PROSE_DIRECTIVES = {"exercise", "solution-start", "note", "warning", "tip", "important",
                     "admonition", "glossary"}


def catalogue(page: str, catalogue_dir: Path = CATALOGUE_DIR) -> dict[str, str]:
    """{English message: Chinese} of a page's catalogue (``page`` like ``book/04_cross_entropy``),
    translated messages only."""
    with (catalogue_dir / f"{page}.po").open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id and m.string
                and not m.fuzzy}


def translate_markdown(text: str, lookup: Lookup, missing: list[str]) -> str:
    """``text`` with each block that ``lookup`` translates replaced; the others are appended to
    ``missing``."""
    lines = text.split("\n")
    edits: list[tuple[int, int, list[str]]] = []
    in_table = False
    for token in _PARSER.parse(text):
        in_table = {"table_open": True, "table_close": False}.get(token.type, in_table)
        if in_table and token.type == "inline" and token.content.strip():
            _translate_cell(lines, token, lookup, missing)  # in place: rows keep their lines
            continue
        if token.map is None:
            continue
        start, end = token.map
        if token.type == "inline" and token.content.strip():
            edits += _inline_edit(lines, start, end, token.content, lookup, missing)
        elif token.type in ("fence", "colon_fence"):
            edits += _directive_edit(lines, start, end, token, lookup, missing)
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = new
    return "\n".join(lines)


def _translate_cell(lines: list[str], token: Any, lookup: Lookup, missing: list[str]) -> None:
    """A table cell, translated in place within its row (the row keeps its line)."""
    english = token.content.strip()
    translated = lookup(english)
    row = token.map[0] if token.map else -1
    cell = f"| {english} |"
    if translated is None or row < 0 or lines[row].count(cell) != 1:
        missing.append(english)
        return
    lines[row] = lines[row].replace(cell, f"| {translated} |", 1)


def _inline_edit(lines: list[str], start: int, end: int, content: str, lookup: Lookup,
                 missing: list[str]) -> list[tuple[int, int, list[str]]]:
    message = " ".join(line.strip() for line in content.split("\n"))
    translated = lookup(message)
    if translated is None:
        missing.append(message)
        return []
    first = content.split("\n")[0]
    prefix = lines[start][:lines[start].find(first)] if first in lines[start] else ""
    return [(start, end, [prefix + translated])]


def _directive_edit(lines: list[str], start: int, end: int, token: Any, lookup: Lookup,
                    missing: list[str]) -> list[tuple[int, int, list[str]]]:
    match = _DIRECTIVE.match(token.info.strip())
    if not match or match.group(1) not in _PROSE_DIRECTIVES:
        return []
    name, title = match.groups()
    fence = lines[start][:len(lines[start]) - len(lines[start].lstrip("`:"))]
    opening = fence + "{" + name + "}"
    if title and name == "exercise":
        translated = lookup(title)
        if translated is None:
            missing.append(title)
        opening += " " + (translated or title)
    elif title:
        opening += " " + title
    body = token.content.split("\n")
    options = 0
    while options < len(body) and body[options].startswith(":"):
        options += 1
    prose = translate_markdown("\n".join(body[options:]), lookup, missing)
    new = [opening, *body[:options], *prose.split("\n")]
    if new and new[-1] == "":
        new.pop()
    return [(start, end, [*new, lines[end - 1]])]


def translate_notebook(nb: dict[str, Any], messages: dict[str, str]) -> tuple[dict, list[str]]:
    """A copy of ``nb`` with its markdown cells translated by ``messages``, and the messages
    that were missing."""
    out = copy.deepcopy(nb)
    missing: list[str] = []
    for cell in out["cells"]:
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = translate_markdown(text, messages.get, missing)
    out.setdefault("metadata", {})["language_info"] = {
        **out.get("metadata", {}).get("language_info", {}), "name": "python"}
    out["metadata"]["cebook_language"] = "zh_CN"
    return out, missing
