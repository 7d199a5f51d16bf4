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
_KEEP = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$|(\{[a-z:-]+\})`([^`]*)`|``[^`]+``|`[^`]+`"
                   r"|\]\(([^)\s]+)\)")
_TITLED = re.compile(r"^(.*?)\s*<([^<>]+)>$", re.S)


# A translation that starts like a list item ("1. ...") is parsed as a list, and Sphinx drops a
# translated heading or paragraph that does not parse as one (the English is shown instead).
_LIST_MARKER = re.compile(r"\d+[.)]\s")


def protected_spans(text: str) -> list[str]:
    """The math, code, role targets and link targets of `text`, sorted (the order of a
    sentence's parts may change in Chinese)."""
    spans = []
    for match in _KEEP.finditer(text):
        role, content, link = match.group(1), match.group(2), match.group(3)
        if role:
            titled = _TITLED.match(content)
            target = titled.group(2) if titled else content
            spans.append(f"{role}<{target.lower() if role == '{term}' else target}>")
        elif link:
            spans.append(f"link({link})")
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


# --- the Chinese site -------------------------------------------------------------------------

def build(outdir: Path = ZH_HTML_DIR, strict: bool = True) -> None:
    """Build the Chinese site from the same sources, warnings as errors like the English one."""
    _sphinx("html", outdir, ROOT / "_build" / f".doctrees-{LANGUAGE}", {
        "language": LANGUAGE,
        "html_title": ZH_TITLE,
        "html_search_options": {"dict": str(SEARCH_DICT)},
        # Merged into _config.yml's theme options.
        "html_theme_options": {"extra_footer": ZH_FOOTER, "search_bar_text": "搜索本书……"},
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
