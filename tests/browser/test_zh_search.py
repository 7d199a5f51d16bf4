"""The Chinese edition's search finds the book's terms.

Sphinx indexes Chinese with jieba, which splits the words it does not know, and a query must
match an indexed word exactly: without locales/zh_CN/search_words.txt, a search for 过度自信 finds
nothing although the text has it 17 times. The dictionary is generated from the glossary's
Chinese terms, the headings and the terms the text emphasises (cebook.i18n.search_words;
tests/test_zh_style.py checks that the file is current). Here every glossary term's Chinese name
must find the glossary, the page that defines it.
"""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from cebook import i18n

from .test_site import search_results

pytestmark = pytest.mark.browser

ZH = "zh_CN"
RESULTS = "搜索结果"


def _search(page, base_url, query: str) -> list[str]:
    return search_results(page, f"{base_url}/{ZH}/search.html?q={quote_plus(query)}", RESULTS)


def test_every_glossary_term_finds_the_glossary(page, base_url, site_dir):
    if not (site_dir / ZH / "search.html").is_file():
        pytest.fail(f"no Chinese edition in {site_dir / ZH}: make book builds it", pytrace=False)
    names = i18n.glossary_chinese_names()
    assert len(names) >= 50
    missed = {}
    for name in names:
        found = _search(page, base_url, name)
        if "book/glossary" not in found:
            missed[name] = found[:4]
    assert not missed, (f"{len(missed)} of {len(names)} glossary terms whose search does not "
                        f"list the glossary: {missed}")


@pytest.mark.parametrize("word", ["过度自信", "信心不足", "前缀码", "信源编码定理", "半正定",
                                  "渐进下溢", "最大值平移", "标签噪声"])
def test_words_jieba_would_split_are_found(page, base_url, word):
    """Words the text uses that jieba's own dictionary does not have: each once found nothing."""
    assert _search(page, base_url, word), f"search for {word} found nothing"


def test_cross_entropy_ranks_the_loss_chapter_first(page, base_url):
    found = _search(page, base_url, "交叉熵")
    assert found[:1] == ["book/04_cross_entropy"], found[:5]
