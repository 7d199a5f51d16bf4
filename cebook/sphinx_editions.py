"""Sphinx extension: the link between the English and the Chinese edition of every page.

The English site is ``_build/html`` and the Chinese one ``_build/html/zh_CN`` (see
``cebook/i18n.py``), built from the same sources, so a page has the same name in both. Each page
gets

* a switch, EN ↔ 中文, in the article header (``book/_templates/lang-switch.html``) that links to
  the same page in the other edition, by a relative URL (the site also works from ``file://``);
* ``<link rel="alternate" hreflang=...>`` naming that page, for browsers and search engines;
* on the Chinese edition's API pages, a note that the reference itself is celib's docstrings,
  which stay in English like the code they document.
"""

from __future__ import annotations

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


def setup(app):
    app.connect("html-page-context", _page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
