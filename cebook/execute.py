"""Re-execute notebooks in place so that the diff shows only what changed.

Usage: ``python -m cebook.execute book/04_cross_entropy.ipynb ...`` (``make notebooks``, or
``make notebooks NB=book/04_cross_entropy.ipynb`` for some). Plain ``jupyter nbconvert
--execute --inplace`` also writes, for every cell, the times it ran (``metadata.execution``),
and splits a cell's printed text into as many stream outputs as the kernel happened to send:
hundreds of diff lines when nothing changed. This runs the notebook the same way (nbclient,
the ``python3`` kernel, the notebook's own folder as working directory), then

* drops the execution times (``tests/test_notebook_style.py`` keeps them out of the book);
* merges each cell's stream outputs by name, as nbval does before it compares them;
* writes the JSON as the book keeps it: one-space indent, UTF-8, a final newline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 600


def tidy(nb: dict[str, Any]) -> dict[str, Any]:
    """``nb`` without execution times and with one stream output per name in each cell."""
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        merged: list[dict[str, Any]] = []
        streams: dict[str, dict[str, Any]] = {}
        for output in cell["outputs"]:
            if output["output_type"] != "stream":
                merged.append(output)
            elif output["name"] in streams:
                streams[output["name"]]["text"] += _text(output["text"])
            else:
                output["text"] = _text(output["text"])
                streams[output["name"]] = output
                merged.append(output)
        for output in streams.values():
            output["text"] = output["text"].splitlines(keepends=True)
        cell["outputs"] = merged
    return nb


def _text(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)


def write(nb: dict[str, Any], path: Path) -> None:
    """Write ``nb`` as the book's notebooks are written."""
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                    encoding="utf-8")


def execute(path: Path) -> None:
    """Run the notebook at ``path`` and write it back, tidied."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    write(tidy(json.loads(nbformat.writes(nb))), path)


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: python -m cebook.execute NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for name in paths:
        print(f"executing {name}", flush=True)
        execute(Path(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
