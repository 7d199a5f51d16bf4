"""The Chinese edition: gettext catalogues in ``locales/zh_CN`` and the build of the second site.

One set of sources, two sites. The English prose is the source text; Sphinx's gettext builder
extracts it as one message catalogue per page, ``make po`` merges each into
``locales/zh_CN/LC_MESSAGES`` (keeping the English a translation was made for), and the
Chinese site is the same Sphinx project built with ``language=zh_CN``. The notebooks are never
re-executed (``execute_notebooks: off``), so both sites show the same committed outputs, which
nbval proves once.

Usage (the Makefile calls these)::

    python -m cebook.i18n po       # refresh the catalogues after an English edit
    python -m cebook.i18n todo     # what needs a translator: old and new English, old Chinese
    python -m cebook.i18n todo --json > todo.json   # the same, for a translation tool; then
    python -m cebook.i18n apply todo.json           # writes its "chinese" fields back
    python -m cebook.i18n build    # the Chinese site, into _build/html/zh_CN
    python -m cebook.i18n check    # list every message that is untranslated or fuzzy

What is not translated: celib's docstrings (the API reference shows them as they are in the
code, like code comments), and code cells and their outputs. Messages that come only from a
docstring are dropped from the catalogues when they are extracted, so that "every message is
translated" can be checked literally.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import denormalize, normalize, read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = "zh_CN"
LOCALE_DIR = ROOT / "locales"
CATALOGUE_DIR = LOCALE_DIR / LANGUAGE / "LC_MESSAGES"
# Not a page's catalogue: the theme's words (Sphinx's "sphinx" domain), kept by hand.
THEME_CATALOGUE = "sphinx.po"
# Extra words for jieba, the segmenter behind Sphinx's Chinese search index (see `build`).
SEARCH_DICT = LOCALE_DIR / LANGUAGE / "search_words.txt"
HTML_DIR = ROOT / "_build" / "html"
PROJECT = "Cross-Entropy, Executed"
ZH_HTML_DIR = HTML_DIR / LANGUAGE

# Settings of the Chinese site that differ from the English one (_config.yml).
ZH_TITLE = "交叉熵，跑出来看"
ZH_FOOTER = ("<p>本站每一页上的每个输出，都是运行该页所属的笔记本得到的；"
             "测试套件会重新运行每个笔记本，并检查没有任何输出发生变化。</p>")


def _sphinx(builder: str, outdir: Path, doctrees: Path, overrides: dict,
            strict: bool = False, quiet: bool = True) -> None:
    """Run Sphinx on the book as Jupyter Book configures it, with `overrides` on top."""
    from jupyter_book.sphinx import build_sphinx

    confoverrides = {"latex_individualpages": False, **overrides}
    if strict:
        confoverrides["nitpicky"] = True
    result = build_sphinx(
        ROOT, outdir, noconfig=True, path_config=str(ROOT / "_config.yml"),
        confoverrides=confoverrides, builder=builder, warningiserror=strict,
        keep_going=strict, quiet=quiet, doctreedir=doctrees)
    if result:
        raise SystemExit(f"the {builder} build failed (status {result!r}); see above")


# --- extraction -------------------------------------------------------------------------------

def _from_docstring_only(message) -> bool:
    """A message none of whose occurrences is in a page's own text: it comes from a Python
    docstring (autodoc) or an autosummary table (a docstring's first line). Babel splits the
    location "celib/x.py:docstring of celib.x.f:3" at its spaces, so the test is that no
    location is a page (a .md or .ipynb file, with or without a line number)."""
    return not any(path.endswith((".md", ".ipynb")) for path, _ in message.locations)


def extract(pot_dir: Path) -> list[Path]:
    """Extract every page's messages into ``pot_dir`` (one .pot per page), without the
    docstring messages and without source locations (they would change with every edit of a
    notebook and make the catalogues' diffs unreadable)."""
    doctrees = pot_dir.parent / ".doctrees-gettext"
    for stale in (pot_dir, doctrees):  # always a full read: every page, as it is now
        if stale.exists():
            shutil.rmtree(stale)
    _sphinx("gettext", pot_dir, doctrees, {})
    # The words of book/_templates' overrides ({{ _('Main') }}): the theme's catalogue,
    # sphinx.po, is kept by hand (with the words Sphinx itself lacks), never merged.
    (pot_dir / THEME_CATALOGUE).with_suffix(".pot").unlink(missing_ok=True)
    pots = sorted(pot_dir.rglob("*.pot"))
    for pot in pots:
        with pot.open("rb") as f:
            catalog = read_po(f)
        for message in list(catalog):
            if message.id and _from_docstring_only(message):
                del catalog[message.id]
            else:
                message.locations = []
                # Babel guesses a "python-format" flag from a "%" in the text ("90 % of"):
                # these are prose, not format strings, and `msgfmt -c` would reject "90%，".
                message.flags -= {"python-format", "python-brace-format"}
        with pot.open("wb") as f:
            write_po(f, catalog, width=0, omit_header=False)
    return pots


def update_catalogues() -> list[Path]:
    """``make po``: re-extract and merge into locales/zh_CN. A message whose English changed
    keeps its old translation, marked fuzzy, and its old English as ``#| msgid`` (as gettext's
    ``msgmerge --previous`` does), so that a translator sees what changed. Returns the
    catalogues that changed."""
    changed = []
    with tempfile.TemporaryDirectory() as tmp:
        pot_dir = Path(tmp) / "gettext"
        pots = extract(pot_dir)
        wanted = {p.relative_to(pot_dir).with_suffix(".po") for p in pots}
        for po in CATALOGUE_DIR.rglob("*.po"):  # a page that no longer exists
            if po.relative_to(CATALOGUE_DIR) not in wanted and po.name != THEME_CATALOGUE:
                po.unlink()
                changed.append(po)
        for pot in pots:
            po = CATALOGUE_DIR / pot.relative_to(pot_dir).with_suffix(".po")
            if _merge(pot, po):
                changed.append(po)
    for po in CATALOGUE_DIR.rglob("*.po"):
        if po.name != THEME_CATALOGUE:  # kept by hand, with its own comments
            _finish_header(po)
    return changed


def _merge(pot: Path, po: Path) -> bool:
    """Merge the template ``pot`` into the catalogue ``po`` (created if missing); True if the
    catalogue changed."""
    with pot.open("rb") as f:
        template = read_po(f)
    if po.is_file():
        before = po.read_bytes()
        catalog, previous = _read_catalogue(before)
        catalog.update(template, update_creation_date=False)
        previous.update({str(m.id): " ".join(m.previous_id) for m in catalog
                         if m.id and m.fuzzy and m.previous_id})
    else:
        before, catalog, previous = b"", template, {}
        catalog.locale = LANGUAGE
    after = _catalogue_bytes(catalog, previous)
    if after == before:
        return False
    po.parent.mkdir(parents=True, exist_ok=True)
    po.write_bytes(after)
    return True


def _read_catalogue(data: bytes) -> tuple[Catalog, dict[str, str]]:
    """A catalogue and {msgid: the English its fuzzy translation was made for}. babel reads a
    ``#| msgid`` line as a comment ("| msgid ..."): those are taken out of the comments."""
    catalog = read_po(io.BytesIO(data))
    for m in catalog:
        if any(c.startswith("|") for c in m.user_comments):
            m.user_comments = []  # and the stray words of babel's wrapped "#|" lines
    return catalog, _previous_ids(data.decode("utf-8"))


def _catalogue_bytes(catalog: Catalog, previous: dict[str, str]) -> bytes:
    """The catalogue as a .po file, each fuzzy message preceded by its previous English as one
    ``#| msgid "..."`` line (babel's own writer wraps those lines so that its reader cannot
    read them back)."""
    out = io.BytesIO()
    write_po(out, catalog, width=0, omit_header=False, ignore_obsolete=True)
    fuzzy = {f"msgid {normalize(str(m.id), width=0)}": previous[str(m.id)] for m in catalog
             if m.id and m.fuzzy and str(m.id) in previous}
    lines = out.getvalue().decode("utf-8").split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] in fuzzy:
            lines.insert(i, f"#| msgid {normalize(fuzzy[lines[i]], width=0)}")
    return "\n".join(lines).encode("utf-8")


@dataclass
class Todo:
    """A message that needs a translator: what the English was and is, and the old Chinese."""

    catalogue: str         # e.g. "book/04_cross_entropy.po"
    english: str           # the English now
    previous_english: str  # the English the translation was made for ("" for a new message)
    chinese: str           # the translation to revise ("" for a new message)


def todo(catalogue_dir: Path = CATALOGUE_DIR) -> list[Todo]:
    """Every fuzzy or untranslated message of every page's catalogue, after ``make po``."""
    found = []
    for po in sorted(catalogue_dir.rglob("*.po")):
        if po.name == THEME_CATALOGUE:
            continue
        with po.open("rb") as f:
            catalog = read_po(f)
        previous_ids = _previous_ids(po.read_text(encoding="utf-8"))
        for m in catalog:
            if m.id and (m.fuzzy or not m.string):
                previous = previous_ids.get(str(m.id), "") if m.fuzzy else ""
                found.append(Todo(str(po.relative_to(catalogue_dir)), str(m.id), previous,
                                  str(m.string) if m.fuzzy else ""))
    return found


def _previous_ids(po_text: str) -> dict[str, str]:
    """{msgid: the ``#| msgid`` line before it} of a catalogue's text (see
    :func:`_catalogue_bytes`)."""
    found = {}
    lines = po_text.split("\n")
    for i, line in enumerate(lines[:-1]):
        if line.startswith('#| msgid "') and lines[i + 1].startswith('msgid "'):
            found[denormalize(lines[i + 1][6:])] = denormalize(line[9:])
    return found


def apply(translations: list[dict], catalogue_dir: Path = CATALOGUE_DIR) -> int:
    """Write translations back: each ``{"catalogue", "english", "chinese"}`` (the JSON of
    ``todo --json`` with its "chinese" fields revised). Returns how many were written."""
    by_catalogue: dict[str, list[dict]] = {}
    for t in translations:
        by_catalogue.setdefault(t["catalogue"], []).append(t)
    written = 0
    for name, items in by_catalogue.items():
        po = catalogue_dir / name
        catalog, previous = _read_catalogue(po.read_bytes())
        for t in items:
            m = catalog.get(t["english"])
            if m is None or not t["chinese"].strip():
                raise ValueError(f"{name}: no message, or an empty translation, for "
                                 f"{_short(t['english'])!r}")
            m.string = t["chinese"]
            m.flags.discard("fuzzy")
            previous.pop(t["english"], None)
            written += 1
        po.write_bytes(_catalogue_bytes(catalog, previous))
    return written


def _finish_header(po: Path) -> None:
    """Give a catalogue a real header. sphinx-intl copies the template's, which is marked fuzzy
    (a PO tool would then ignore it) and names no project."""
    catalog, previous = _read_catalogue(po.read_bytes())
    if not catalog.fuzzy and catalog.project == PROJECT:
        return  # finished already: leave it (and its dates) alone
    catalog.fuzzy = False
    catalog.header_comment = (f"# The Chinese edition of {PROJECT}: one page's messages.\n"
                              "# Refreshed by `make po` (sphinx-intl); see CONTRIBUTING.md.")
    catalog.project, catalog.version = PROJECT, ""
    catalog.last_translator = "The Cross-Entropy, Executed authors"
    catalog.copyright_holder = "The Cross-Entropy, Executed authors"
    catalog.language_team = "Cross-Entropy, Executed, 中文版"
    po.write_bytes(_catalogue_bytes(catalog, previous))


# --- completeness -----------------------------------------------------------------------------

@dataclass
class Problem:
    catalogue: str  # e.g. "book/04_cross_entropy.po"
    message: str    # the English message, shortened
    what: str       # "missing from the catalogue", "untranslated", "fuzzy", ...

    def __str__(self) -> str:
        return f"{self.catalogue}: {self.what}: {self.message!r}"


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# What a translation must carry over unchanged: inline math, inline code, the target of a MyST
# role (its title may be translated: {term}`交叉熵 <cross-entropy>`) and the target of a link.
# A double-backtick code span may hold single backticks (``Assertion `t >= 0` failed``).
_KEEP = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$|(\{[a-z:-]+\})`([^`]*)`|``(?:[^`]|`(?!`))+``|`[^`]+`"
                   r"|\]\(([^)\s]+)\)")
_TITLED = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)


# A translation that starts like a list item ("1. ...") is parsed as a list, and Sphinx drops a
# translated heading or paragraph that does not parse as one (the English is shown instead).
_LIST_MARKER = re.compile(r"\d+[.)]\s")


# Words inside math may be translated ($2^{\text{bits per token}}$ → $2^{\text{每词元比特数}}$);
# the rest of the formula may not.
_MATH_TEXT = re.compile(r"\\text\s*\{[^{}]*\}")


def protected_spans(text: str) -> list[str]:
    """The math, code, role targets and link targets of `text`, sorted (the order of a
    sentence's parts may change in Chinese). The words of ``\\text{…}`` in math are left out."""
    spans = []
    for match in _KEEP.finditer(text):
        role, content, link = match.group(1), match.group(2), match.group(3)
        if role:
            titled = _TITLED.match(content)
            target = titled.group(2) if titled else content
            spans.append(f"{role}<{target.lower() if role == '{term}' else target}>")
        elif link:
            spans.append(f"link({link})")
        elif match.group(0).startswith("$"):
            spans.append(_MATH_TEXT.sub(r"\\text{…}", match.group(0)))
        else:
            spans.append(match.group(0))
    return sorted(spans)


def _message_problem(message_id: str, entry) -> str | None:
    """What is wrong with the catalogue's ``entry`` for the English ``message_id``, or None."""
    if entry is None:
        return "missing (run make po)"
    if not entry.string:
        return "untranslated"
    if entry.fuzzy:
        return "fuzzy"
    if _LIST_MARKER.match(entry.string):
        return ("starts like a numbered list item, so Sphinx would drop it: "
                "write 1\\. for 1.")
    if protected_spans(message_id) != protected_spans(entry.string):
        return "math, code, a role or a link differs from the English"
    return None


def _page_problems(pot: Path, po: Path, rel: Path) -> list[Problem]:
    """The problems of one page's catalogue ``po`` against its fresh template ``pot``."""
    with pot.open("rb") as f:
        wanted = [m for m in read_po(f) if m.id]
    if not po.is_file():
        return [Problem(str(rel), _short(m.id), "no catalogue") for m in wanted[:1]]
    with po.open("rb") as f:
        catalog = read_po(f)
    found: list[Problem] = []
    if catalog.fuzzy:
        found.append(Problem(str(rel), "", "its header is marked fuzzy (run make po)"))
    for m in wanted:
        what = _message_problem(m.id, catalog.get(m.id))
        if what is not None:
            found.append(Problem(str(rel), _short(m.id), what))
    current = {m.id for m in wanted}
    found += [Problem(str(rel), _short(m.id), "no longer in the English (run make po)")
              for m in catalog if m.id and m.id not in current]
    return found


def _orphan_catalogues(pot_dir: Path, catalogue_dir: Path) -> list[Problem]:
    """The catalogues (other than the theme's) of pages that no longer exist."""
    found: list[Problem] = []
    for po in sorted(catalogue_dir.rglob("*.po")):
        if po.relative_to(catalogue_dir) == Path(THEME_CATALOGUE):
            continue
        if not (pot_dir / po.relative_to(catalogue_dir)).with_suffix(".pot").is_file():
            found.append(Problem(str(po.relative_to(catalogue_dir)), "",
                                 "catalogue of a page that no longer exists (run make po)"))
    return found


def problems(pot_dir: Path, catalogue_dir: Path = CATALOGUE_DIR) -> list[Problem]:
    """Every message of every page that the Chinese edition would show in English, or with its
    math or code changed: compared against a fresh extraction in ``pot_dir``."""
    found: list[Problem] = []
    for pot in sorted(pot_dir.rglob("*.pot")):
        rel = pot.relative_to(pot_dir).with_suffix(".po")
        found += _page_problems(pot, catalogue_dir / rel, rel)
    return found + _orphan_catalogues(pot_dir, catalogue_dir)


# --- the style of the Chinese edition (locales/zh_CN/STYLE.md) -------------------------------

STYLE_GUIDE = LOCALE_DIR / LANGUAGE / "STYLE.md"

# The variants the style guide bans, as (regular expression, what to write instead). STYLE.md
# says why; tests/test_zh_style.py fails on any of them in any msgstr, math and code left out.
BANNED: list[tuple[str, str]] = [
    (r"(?<!又称)自信息", "惊奇度（术语表里：又称自信息）"),
    (r"(?<!（)multi-hot(?!）)", "多热（multi-hot）目标 at a page's first use, then 多热目标"),
    (r"逐条检验的说法|说法核查附录", "说法核查 (the appendix's one name)"),
    (r"appendix_claims>`[^。；]{0,6}第 ?\d+ ?条", "说法 N"),
    (r"解决办法：|修正方法：", "修正："),
    (r"学完本章，你能够|学完本章后，你能够", "学完本章，你将能够"),
    (r"随机水平", "随机猜测水平"),
    (r"基本检查", "合理性检查"),
    (r"轮次（epoch）|轮数（epoch）|随轮次",
     "轮（epoch） at first use, then 轮; 轮数 for their number"),
    (r"为[^，。；：按]{0,12}?(?:设计|构建|构造)的编码", "按 q 构造的编码"),
    (r"用为", "用按 q 构造的编码给…编码"),
    (r"等量分箱", "等频分箱"),
    (r"(?<![（(])\b[Bb]ootstrap\b(?![）)])", "自助法（bootstrap） at first use, then 自助法"),
    (r"逻辑函数", "logistic 函数（逻辑斯谛函数）"),
    (r"最后一位单位", "末位单位（ulp）"),
    (r"\d %", "80%（no space before the percent sign）"),
    (r"(?:\d 个|每个|逐个|某个|哪个)差距|差距个数", "d 值 (chapter 5's spread d)"),
    (r"}`[^`]*`\s+页", "{doc}`记号 <notation>`页: no space before 页"),
    (r"一份的概率|一个单位的概率", "总和为 1 的概率"),
    (r"\(mean 归约\)|（mean 归约）",
     "归约方式为 'mean', in （）: code only where the English has code"),
]
_MATH_OR_CODE = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$|(?<!})``[^`]+``|(?<!})`[^`]+`")


def style_problems(text: str) -> list[str]:
    """The banned variants (:data:`BANNED`) found in the Chinese `text`, outside math and code,
    each as "variant → what to write"."""
    prose = _MATH_OR_CODE.sub(" ", text)
    return [f"{m.group(0)!r} → {use}" for pattern, use in BANNED
            for m in re.finditer(pattern, prose)]


_MD = None


def _markdown():
    """The markdown parser the build uses: MyST's, with _config.yml's extensions."""
    global _MD
    if _MD is None:
        from markdown_it.renderer import RendererHTML
        from myst_parser.config.main import MdParserConfig
        from myst_parser.parsers.mdit import create_md_parser

        extensions = {"amsmath", "dollarmath", "colon_fence", "deflist", "substitution"}
        _MD = create_md_parser(MdParserConfig(enable_extensions=extensions), RendererHTML)
    return _MD


def markup(text: str) -> dict[str, object]:
    """What the markdown of a message renders to, apart from its words: the blocks (lists,
    headings), how many emphasised and strong spans, the links' targets, the roles and their
    targets, how many formulas. A translation must render to the same."""
    blocks, inline = [], {"em": 0, "strong": 0, "math": 0}
    links: list[str] = []
    roles: list[str] = []
    for token in _markdown().parse(text):
        if token.type not in ("inline", "paragraph_open", "paragraph_close"):
            blocks.append(token.type)
        for child in token.children or []:
            if child.type in ("em_open", "strong_open"):
                inline[child.type[:-5]] += 1
            elif child.type.startswith("math_inline"):
                inline["math"] += 1
            elif child.type == "link_open":
                links.append(str(child.attrs.get("href")))
            elif child.type == "myst_role":
                titled = _TITLED.match(child.content)
                target = titled.group(2) if titled else child.content
                name = child.meta.get("name")
                roles.append(f"{name}:{target.lower() if name == 'term' else target}")
    return {"blocks": blocks, **inline, "links": sorted(links), "roles": sorted(roles)}


_HEADING_NUMBER = re.compile(r"^(\d+)([.)])(?=\s)")


def markup_problem(english: str, chinese: str) -> str | None:
    """How the Chinese renders differently from the English (emphasis, links, roles, lists), or
    None."""
    # A heading "1. A softmax before the loss" is a message that parses as a list; its
    # translation must write "1\\." (see _LIST_MARKER), which is what the heading shows.
    want, got = markup(_HEADING_NUMBER.sub(r"\1\\\2", english)), markup(chinese)
    diffs = [f"{key}: {want[key]} in the English, {got[key]} here" for key in want
             if want[key] != got[key]]
    return "; ".join(diffs) or None


# --- the Chinese site -------------------------------------------------------------------------

# --- the search dictionary -------------------------------------------------------------------

# Sphinx indexes Chinese with jieba, which splits a word it does not know ("过度自信" → "过度",
# "自信"), so that a search for the word finds nothing. search_words.txt gives jieba the book's
# own words: every glossary term's Chinese names, and the words of every heading.
_HAN = re.compile(r"[\u4e00-\u9fff]+")
# A heading's run of Han characters is cut at these particles: "标签平滑的下限" → 标签平滑, 下限;
# a piece that starts or ends with a function word ("地方传入了") is a phrase, not a word.
_PARTICLES = re.compile(r"[的与和、]")
_FUNCTION_EDGE = re.compile(r"^[了会在是就都把要中为而或让用对到个一两三五哪当你它所每从]"
                            r"|[了会在是就都把要中为而或让用对到个一两三五哪当你它所每从]$")
GLOSSARY_FREQUENCY, TERM_FREQUENCY = 50000, 5000
# Terms the text uses without a heading, a glossary entry or an emphasis to name them.
EXTRA_SEARCH_WORDS = ("半正定", "最大值平移", "标签噪声")


def _glossary_terms() -> list[str]:
    """The term lines of book/glossary.md's glossary (English, then Chinese, for each entry)."""
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    block = text.split("```{glossary}", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines()
            if line.strip() and not line[0].isspace() and not line.startswith(":")]


def glossary_chinese_names(catalogue_dir: Path = CATALOGUE_DIR) -> list[str]:
    """The Chinese names of every glossary term, as the Chinese glossary shows them: its Chinese
    term lines, translated, split at " / " and without "（…）" notes ("惊奇度（又称自信息）" gives
    惊奇度 and 自信息)."""
    translated = catalogue(catalogue_dir / "book" / "glossary.po")
    names: list[str] = []
    for line in _glossary_terms():
        chinese = translated.get(line, line)
        if not _HAN.search(chinese):
            continue  # an English term line
        for part in re.split(r"\s*/\s*", chinese):
            also = re.findall(r"（又称([^）]+)）", part)
            for name in [re.sub(r"（[^）]*）", "", part).strip(), *also]:
                if _HAN.search(name) and name not in names:
                    names.append(name)
    return names


def catalogue(po: Path) -> dict[str, str]:
    """{English: Chinese} of one catalogue, translated messages only."""
    with po.open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id and m.string
                and not m.fuzzy}


def _headings(source: Path) -> list[str]:
    """The headings of a page's source (.md, or an .ipynb's markdown cells), as messages."""
    if source.suffix == ".ipynb":
        cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
        text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    else:
        text = source.read_text(encoding="utf-8")
    tokens = _markdown().parse(text)
    return [" ".join(tokens[i + 1].content.split()) for i, t in enumerate(tokens)
            if t.type == "heading_open"]


def _emphasised(text: str) -> list[str]:
    """The emphasised and strong spans of a message that are one run of 2 to 8 Han characters:
    the book emphasises a term where it defines it (*过度自信*, *前缀码*)."""
    found, inside = [], 0
    for token in _markdown().parse(text):
        for child in token.children or []:
            inside += {"em_open": 1, "strong_open": 1, "em_close": -1, "strong_close": -1}.get(
                child.type, 0)
            if inside and child.type == "text" and _HAN.fullmatch(child.content or "") \
                    and 2 <= len(child.content) <= 8:
                found.append(child.content)
    return found


def _heading_words(heading: str) -> list[str]:
    """The words of a heading: its runs of Han characters cut at 的, 与, 和, 2 to 6 characters
    long, without the pieces that start or end with a function word."""
    return [word for run in _HAN.findall(heading) for word in _PARTICLES.split(run)
            if 2 <= len(word) <= 6 and not _FUNCTION_EDGE.search(word)]


def search_words(catalogue_dir: Path = CATALOGUE_DIR) -> list[tuple[str, int]]:
    """(word, frequency) for jieba: the glossary's Chinese names (their runs of Han characters),
    the words of every translated heading and the terms the text emphasises where it defines
    them."""
    words: dict[str, int] = {}
    for name in glossary_chinese_names(catalogue_dir):
        for run in _HAN.findall(name):
            if len(run) >= 2:
                words[run] = GLOSSARY_FREQUENCY
    words.update({word: GLOSSARY_FREQUENCY for word in EXTRA_SEARCH_WORDS})
    for po in sorted(catalogue_dir.rglob("*.po")):
        page = po.relative_to(catalogue_dir).with_suffix("")
        sources = [ROOT / page.with_suffix(s) for s in (".md", ".ipynb")]
        source = next((s for s in sources if s.is_file()), None)
        if source is None:
            continue
        translated = catalogue(po)
        for heading in _headings(source):
            for word in _heading_words(translated.get(heading, "")):
                words.setdefault(word, TERM_FREQUENCY)
        for chinese in translated.values():
            for word in _emphasised(chinese):
                words.setdefault(word, TERM_FREQUENCY)
    return sorted(words.items(), key=lambda item: (-item[1], item[0]))


def search_words_text(catalogue_dir: Path = CATALOGUE_DIR) -> str:
    """search_words.txt as :func:`search_words` makes it, in jieba's format ("word frequency
    tag" a line; jieba has no comments, so the file cannot say that it is generated: STYLE.md
    does)."""
    return "".join(f"{word} {frequency} n\n" for word, frequency in search_words(catalogue_dir))


def write_search_words() -> bool:
    """Regenerate search_words.txt; True if it changed."""
    text = search_words_text()
    if SEARCH_DICT.is_file() and SEARCH_DICT.read_text(encoding="utf-8") == text:
        return False
    SEARCH_DICT.write_text(text, encoding="utf-8")
    return True


def theme_words(catalogue_dir: Path = CATALOGUE_DIR) -> dict[str, str]:
    """{English: Chinese} of the theme's catalogue (``sphinx.po``): the words of the interface,
    for what Sphinx does not translate itself (cebook/sphinx_editions.py, :func:`build`)."""
    with (catalogue_dir / THEME_CATALOGUE).open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id and m.string}


def build(outdir: Path = ZH_HTML_DIR, strict: bool = True) -> None:
    """Build the Chinese site from the same sources, warnings as errors like the English one.
    The search dictionary is regenerated first (:func:`write_search_words`)."""
    write_search_words()
    words = theme_words()
    _sphinx("html", outdir, ROOT / "_build" / f".doctrees-{LANGUAGE}", {
        "language": LANGUAGE,
        "html_title": ZH_TITLE,
        "html_search_options": {"dict": str(SEARCH_DICT)},
        # A page titled exactly as the query ranks first (交叉熵 → chapter 4).
        "html_search_scorer": str(ROOT / "book" / "_static" / "zh-search-scorer.js"),
        # The footer says who and when once: "© 2026 《…》作者 版权所有。" (sphinx.po).
        "copyright": f"2026 《{ZH_TITLE}》作者",
        # sphinx-togglebutton's hints on every solution.
        "togglebutton_hint": words["Click to show"],
        "togglebutton_hint_hide": words["Click to hide"],
        # Merged into _config.yml's theme options.
        "html_theme_options": {"extra_footer": ZH_FOOTER, "search_bar_text": "搜索本书……",
                               "footer_content_items": ["copyright.html", "last-updated.html",
                                                        "extra-footer.html"]},
    }, strict=strict, quiet=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cebook.i18n", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("command", choices=["po", "todo", "apply", "build", "check"])
    parser.add_argument("file", nargs="?", help="apply: the JSON of `todo --json`, revised")
    parser.add_argument("--json", action="store_true", help="todo: print JSON for `apply`")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.command == "po":
        changed = update_catalogues()
        for po in changed:
            print(f"changed: {po.relative_to(ROOT)}")
        _print_todo(todo(), as_json=False, summary_only=True)
    elif args.command == "todo":
        _print_todo(todo(), as_json=args.json, summary_only=False)
    elif args.command == "apply":
        if not args.file:
            parser.error("apply needs the JSON file of `todo --json`, with translations")
        items = json.loads(Path(args.file).read_text(encoding="utf-8"))
        print(f"{apply(items)} translation(s) written; now run: python -m cebook.i18n check")
        if write_search_words():  # new translations may define new words for the search
            print(f"rewrote {SEARCH_DICT.relative_to(ROOT)}")
    elif args.command == "build":
        build()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            extract(Path(tmp) / "gettext")
            found = problems(Path(tmp) / "gettext")
        for p in found:
            print(p)
        print(f"{len(found)} problem(s)")
        return 1 if found else 0
    return 0


def _print_todo(items: list[Todo], as_json: bool, summary_only: bool) -> None:
    """The messages a translator must revise: a summary, each as a diff, or JSON for apply."""
    if as_json:
        print(json.dumps([asdict(t) for t in items], ensure_ascii=False, indent=1))
        return
    if summary_only:
        pages = sorted({t.catalogue for t in items})
        print(f"{len(items)} message(s) to translate or revise in {len(pages)} catalogue(s)"
              + ("; list them with: python -m cebook.i18n todo" if items else "."))
        return
    for t in items:
        print(f"== {t.catalogue}")
        if t.previous_english:
            diff = difflib.ndiff(t.previous_english.split(), t.english.split())
            print("English, changed: " + " ".join(w[2:] if w[0] == " " else f"[{w[0]}{w[2:]}]"
                                                 for w in diff if w[0] != "?"))
            print(f"Chinese to revise: {t.chinese}")
        else:
            print(f"English, new: {t.english}")
    print(f"{len(items)} message(s). Edit the catalogues, or: python -m cebook.i18n todo --json "
          "> todo.json, fill in each \"chinese\", then python -m cebook.i18n apply todo.json")


if __name__ == "__main__":
    sys.exit(main())
