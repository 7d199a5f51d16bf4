"""Sphinx extension: the link between the English and the Chinese edition of every page.

The English site is ``_build/html`` and the Chinese one ``_build/html/zh_CN`` (see
``cebook/i18n.py``), built from the same sources, so a page has the same name in both. Each page
gets

* a switch, EN ↔ 中文, in the article header (``book/_templates/lang-switch.html``) that links to
  the same page in the other edition, by a relative URL (the site also works from ``file://``);
* ``<link rel="alternate" hreflang=...>`` naming that page, for browsers and search engines;
* on the Chinese edition's API pages, a note that the reference itself is celib's docstrings,
  which stay in English like the code they document.

It also makes the titles of exercises translatable. sphinx-exercise parses ``{exercise} Title``
into a subtitle node without the source that Sphinx needs to translate it, and rebuilds the
title when the document is resolved, which is after the gettext builder would see it; so the
titles are given a source when parsed and handed to the gettext builder by hand.
"""

from __future__ import annotations

from sphinx.transforms import SphinxTransform
from sphinx_exercise.directive import ExerciseDirective
from sphinx_exercise.nodes import exercise_enumerable_node, exercise_node, exercise_subtitle

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
        "url": url,
    }
    context["metatags"] = context.get("metatags", "") + (
        f'\n<link rel="alternate" hreflang="{context["cebook_edition"]["other_lang"]}" '
        f'href="{url}" />')
    if chinese and doctree is not None and '<dl class="py' in context.get("body", ""):
        context["body"] = API_NOTE_ZH + context["body"]


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
    app.connect("doctree-read", _keep_exercise_titles)
    app.connect("doctree-resolved", _extract_exercise_titles)
    app.connect("html-page-context", _page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
