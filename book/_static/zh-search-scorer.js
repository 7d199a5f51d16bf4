/* The Chinese edition's search scorer (html_search_scorer, set by cebook/i18n.py's build): Sphinx's
   default scores, and one rule more. A page whose own title is the whole query ranks first:
   "交叉熵" finds the chapter called 交叉熵 before the glossary entry (an index entry, score 100)
   and before the chapters that only mention it. Section titles and partial matches keep their
   default scores. */
var Scorer = {
  score: (result) => {
    const [docname, title, anchor, descr, score, filename] = result;
    const query = (new URLSearchParams(window.location.search).get("q") || "")
      .trim().toLowerCase();
    // The page's own title, without its chapter number ("<span ...>4. </span>交叉熵"): the
    // title of its full-text result, and the part before " > " of its headings' results.
    const page = (title || "").split(" > ")[0].replace(/<[^>]*>/g, "").replace(/^[\d.]+\s*/, "");
    if (query && page.trim().toLowerCase() === query) {
      return Math.max(score, 200);
    }
    return score;
  },
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: { 0: 15, 1: 5, 2: -5 },
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
