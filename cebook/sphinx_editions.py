"""Sphinx extension: the link between the English and the Chinese edition of every page.

The English site is ``_build/html`` and the Chinese one ``_build/html/zh_CN`` (see
``cebook/i18n.py``), built from the same sources, so a page has the same name in both. Each page
gets

* a switch, EN ↔ 中文, in the article header (``book/_templates/lang-switch.html``) that links to
  the same page in the other edition, by a relative URL (the site also works from ``file://``);
* ``<link rel="alternate" hreflang=...>`` naming that page, for browsers and search engines;
* on the Chinese edition's API pages, a note that the reference itself is celib's docstrings,
  which stay in English like the code they document.

On the Chinese edition it also puts into Chinese what the theme and the plugins write in
English whatever the language (see ``_chinese_interface``), titles exercises "练习 6.1（…）" and
their solutions "练习 6.1（…）的解答", and makes each glossary entry's Chinese term its headword.

It also makes the titles of exercises translatable. sphinx-exercise parses ``{exercise} Title``
into a subtitle node without the source that Sphinx needs to translate it, and rebuilds the
title when the document is resolved, which is after the gettext builder would see it; so the
titles are given a source when parsed and handed to the gettext builder by hand.
"""

from __future__ import annotations

import functools
import re

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx_exercise.directive import ExerciseDirective
from sphinx_exercise.nodes import (
    exercise_enumerable_node,
    exercise_node,
    exercise_subtitle,
    solution_node,
)

from .i18n import theme_words as _read_theme_words

# The words of the interface (locales/zh_CN/LC_MESSAGES/sphinx.po), read once per build.
theme_words = functools.lru_cache(maxsize=1)(_read_theme_words)

ZH_DIR = "zh_CN"  # the Chinese site's folder inside the English one

API_NOTE_ZH = (
    '<div class="admonition note cebook-api-note"><p class="admonition-title">说明</p>'
    "<p>下面的 API 参考由 celib 源代码中的 docstring 生成，与代码一样保留英文；"
    "各函数的含义与用法在对应章节中有中文讲解。</p></div>")


def _is_chinese(app) -> bool:
    return (app.config.language or "en").lower().startswith("zh")


def other_edition_url(pagename: str, chinese: bool) -> str:
    """The relative URL of `pagename` in the other edition, from `pagename` itself."""
    up = "../" * pagename.count("/")
    if chinese:
        return f"../{up}{pagename}.html"
    return f"{up}{ZH_DIR}/{pagename}.html"


def _page_context(app, pagename, templatename, context, doctree) -> None:
    chinese = _is_chinese(app)
    url = other_edition_url(pagename, chinese)
    context["cebook_edition"] = {
        "current": "中文" if chinese else "EN",
        "other": "EN" if chinese else "中文",
        "other_lang": "en" if chinese else "zh-CN",
        "other_title": "Read this page in English" if chinese else "阅读本页的中文版",
        "group_label": "语言" if chinese else "Language",
        "url": url,
    }
    context["metatags"] = context.get("metatags", "") + (
        f'\n<link rel="alternate" hreflang="{context["cebook_edition"]["other_lang"]}" '
        f'href="{url}" />')
    if chinese and doctree is not None and '<dl class="py' in context.get("body", ""):
        context["body"] = API_NOTE_ZH + context["body"]
    if chinese:
        _chinese_interface(context)


# What myst-nb writes into the page in English whatever the language, in the page's HTML.
_BODY_WORDS = [f"{verb} code cell {part}" for verb in ("Show", "Hide")
               for part in ("source", "outputs", "content")]
# A solution's number "练习 6.1 " is followed by its title in full-width parentheses.
_NUMBER_SPACE = re.compile(r'(<span class="caption-number">[^<]*?) </span>（')


def _chinese_interface(context) -> None:
    """The English that the theme and the plugins write on every page, in Chinese: the words are
    those of locales/zh_CN/LC_MESSAGES/sphinx.po. (Templates that hard-code English are
    overridden in book/_templates so that Sphinx translates them; this is the rest.)"""
    words = theme_words()
    body = context.get("body", "")
    body = body.replace('aria-label="Toggle hidden content"',
                        f'aria-label="{words["Toggle hidden content"]}"')
    for english in _BODY_WORDS:
        body = body.replace(f">{english}</p>", f">{words[english]}</p>")
    context["body"] = _NUMBER_SPACE.sub(r"\1</span>（", body)
    # sphinx-togglebutton's script sets this aria-label when the page loads: lang-switch.html
    # sets it again, in Chinese.
    context["cebook_edition"]["toggle_label"] = words["Toggle hidden content"]


def _chinese_header_buttons(app, pagename, templatename, context, doctree) -> None:
    """html-page-context, after sphinx-book-theme has made its header buttons (priority 501):
    its catalogue gives Taiwan usage, 列印成 PDF, for the print button's tooltip."""
    if not _is_chinese(app):
        return
    words = theme_words()
    for button in _all_buttons(context.get("header_buttons", [])):
        if button.get("tooltip") in ("列印成 PDF", "Print to PDF"):
            button["tooltip"] = words["Print to PDF"]


def _all_buttons(buttons: list) -> list:
    """The header buttons of sphinx-book-theme and the buttons of their drop-down groups."""
    found = []
    for button in buttons:
        found.append(button)
        found += _all_buttons(button.get("buttons", []))
    return found


class ChineseExerciseTitles(SphinxPostTransform):
    """Chinese pages: "练习 6.1（标题）" and "练习 6.1（标题）的解答", in place of sphinx-exercise's
    "练习 6.1 (标题)" and "解答 练习 6.1 (标题)". Runs after sphinx-exercise has built the
    titles (its post-transforms have priorities 20 and 21)."""

    default_priority = 22
    formats = ("html",)

    def run(self, **kwargs) -> None:
        if not _is_chinese(self.app):
            return
        for node in self.document.findall(lambda n: isinstance(
                n, (exercise_node, exercise_enumerable_node, solution_node))):
            title = node.children[0] if node.children else None
            if not isinstance(title, nodes.title):
                continue
            _full_width_parentheses(title)
            if isinstance(node, solution_node):
                _solution_title_last(title)


def _full_width_parentheses(title: nodes.Element) -> None:
    """The " (" and ")" that sphinx-exercise puts around a title, made full-width."""
    for text in list(title.findall(nodes.Text)):
        if str(text) in (" (", "(") or str(text).endswith(" ("):
            text.parent.replace(text, nodes.Text(str(text)[:-2] + "（"))
        elif str(text) == ")":
            text.parent.replace(text, nodes.Text("）"))


def _solution_title_last(title: nodes.Element) -> None:
    """["解答", link(" 练习 6.1（…）")] → [link("练习 6.1（…）"), "的解答"]."""
    if len(title.children) != 2 or not isinstance(title.children[0], nodes.Text):
        return
    label, link = title.children
    first = next(iter(link.findall(nodes.Text)), None)
    if first is not None:
        first.parent.replace(first, nodes.Text(str(first).lstrip()))
    title.remove(label)
    title.append(nodes.Text(f"的{label}"))


def _chinese_headwords(app, doctree, docname) -> None:
    """doctree-resolved, Chinese pages: each glossary entry lists its English term and then its
    Chinese one; the Chinese becomes the headword (the first, bold term) and the English the
    line under it. Only the words move: the anchors (#term-surprisal) stay on the first term."""
    if not _is_chinese(app) or app.builder.format != "html":
        return
    for glossary in doctree.findall(addnodes.glossary):
        for item in glossary.findall(nodes.definition_list_item):
            terms = [c for c in item.children if isinstance(c, nodes.term)]
            if len(terms) != 2:
                continue
            words = [[c for c in t.children if not isinstance(c, addnodes.index)] for t in terms]
            for term, mine in zip(terms, words, strict=True):
                for child in mine:
                    term.remove(child)
            terms[0].insert(0, words[1])
            terms[1].insert(0, words[0])


class TranslatableExercise(ExerciseDirective):
    """sphinx-exercise's ``exercise``, with its title extracted for translation like a heading."""

    def run(self):
        result = super().run()
        source, line = self.get_source_info()
        for node in result:
            for subtitle in node.findall(exercise_subtitle):
                subtitle.rawsource = self.arguments[0]
                subtitle.source, subtitle.line = source, line
        return result


class RegisterTranslatedExercises(SphinxTransform):
    """After Sphinx's translation (priority 20): sphinx-exercise titles a solution "Solution to
    Exercise 2.1 (title)" from the exercise node it registered when parsing; point the registry
    at the exercise as it is now, so that the solution's title shows the translated title."""

    default_priority = 25

    def apply(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", {})
        for node in self.document.findall(lambda n: isinstance(
                n, (exercise_node, exercise_enumerable_node))):
            if node.get("label") in registry:
                registry[node["label"]]["node"] = node.deepcopy()  # as parsed, translated


class TranslateTocCaptions(SphinxTransform):
    """The part captions of _toc.yml ("Start here", "Chapters", ...) in the page's language.

    sphinx-external-toc inserts the toctrees at priority 100, after Sphinx has translated the
    page (20), so their captions would stay English in the sidebar; the gettext builder does
    extract them, into the root page's catalogue."""

    default_priority = 101

    def apply(self, **kwargs) -> None:
        if not _is_chinese(self.app):
            return
        from os import path

        from sphinx import addnodes, locale
        from sphinx.util.i18n import docname_to_domain

        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        dirs = [path.join(self.env.srcdir, d) for d in self.config.locale_dirs]
        catalog, found = locale.init(dirs, self.config.language, domain)
        if not found:
            return
        for toctree in self.document.findall(addnodes.toctree):
            if toctree.get("caption"):
                toctree["caption"] = catalog.gettext(toctree["caption"])


def _keep_exercise_titles(app, doctree) -> None:
    """doctree-read: note the exercise titles before sphinx-exercise resolves them away."""
    doctree["cebook_exercise_titles"] = [
        (s.rawsource, s.source, s.line) for s in doctree.findall(exercise_subtitle)]


def _extract_exercise_titles(app, doctree, docname) -> None:
    """doctree-resolved: add the exercise titles to the page's gettext catalogue."""
    if app.builder.name != "gettext":
        return
    from sphinx.builders.gettext import MsgOrigin
    from sphinx.util.i18n import docname_to_domain

    catalog = app.builder.catalogs[docname_to_domain(docname, app.config.gettext_compact)]
    for message, source, line in doctree.get("cebook_exercise_titles", []):
        catalog.add(message, MsgOrigin(source, line))


def setup(app):
    app.setup_extension("sphinx_exercise")
    app.add_directive("exercise", TranslatableExercise, override=True)
    app.add_transform(RegisterTranslatedExercises)
    app.add_transform(TranslateTocCaptions)
    app.add_post_transform(ChineseExerciseTitles)
    app.connect("doctree-resolved", _chinese_headwords)
    app.connect("doctree-read", _keep_exercise_titles)
    app.connect("doctree-resolved", _extract_exercise_titles)
    app.connect("html-page-context", _page_context)
    app.connect("html-page-context", _chinese_header_buttons, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
