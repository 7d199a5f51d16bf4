"""The book's own helpers: exercise checkers and page plumbing (not part of celib's API).

``celib`` is the library a reader can use in their own work. ``cebook`` holds what only the
pages need: the exercise checkers (:mod:`cebook.exercises`), whose source a reader does not see
while solving, helper code that would otherwise crowd a page, and the tool that writes the
student edition (:mod:`cebook.student`).
"""
