"""Make the rendered notebook a notebook a grader can run: Quarto's post-render step for report.ipynb.

Quarto writes `_output/report.ipynb` from the executed report, but two things in it do not run:
* the listings of the graded implementations (`hw3.report.listing.show`, an `output: asis` cell) arrive as
  Markdown, so the notebook would show each function without defining it; each listing becomes a
  code cell again (its marker line `# from code/hw3/<module>.py` says which), so running the
  notebook defines the function where its question is asked;
* the `show(...)` cell that printed it, hidden in the other formats, is left as an empty code cell.
It also drops the rendering machine's path from the kernelspec, so no local path is published.

Run by Quarto after a render (`post-render` in _quarto.yml, which lists the outputs in
QUARTO_PROJECT_OUTPUT_FILES), or by hand:
`python tools/runnable_notebook.py _output/report.ipynb`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

# A fenced Python block whose first line is hw3.listing's marker.
LISTING = re.compile(r"^```\s*\{?\.?python\}?[^\n]*\n(# from code/hw3/[\w/]+\.py\n.*?)\n```[ \t]*$", re.MULTILINE | re.DOTALL)


def _code_cell(source: str, cell_id: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": cell_id, "metadata": {}, "outputs": [], "source": source}


def _listing_id(source: str) -> str:
    """A stable cell id for a listing: its marker and first definition's name (ids must be unique)."""
    name = re.search(r"^(?:class|def) (\w+)", source, re.MULTILINE)
    return "def-" + (name.group(1).strip("_") if name else "listing")


def _split_markdown(cell: dict) -> list[dict]:
    """A Markdown cell with listings → Markdown before, a code cell per listing, Markdown after."""
    text = "".join(cell["source"])
    cells, start = [], 0
    for m in LISTING.finditer(text):
        before = text[start:m.start()].strip("\n")
        if before.strip():
            cells.append({**cell, "source": before})
        cells.append(_code_cell(m.group(1), _listing_id(m.group(1))))
        start = m.end()
    after = text[start:].strip("\n")
    if after.strip() or not cells:
        cells.append({**cell, "source": after if cells else text})
    return cells


def make_runnable(nb: dict) -> dict:
    """Listings as code cells, no empty code cells, no machine path in the metadata."""
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown" and LISTING.search("".join(cell["source"])):
            cells.extend(_split_markdown(cell))
        elif cell["cell_type"] == "code" and not "".join(cell["source"]).strip():
            continue  # a cell Quarto emptied because it is hidden (echo: false) and shows nothing
        else:
            cells.append(cell)
    seen: dict[str, int] = {}
    for cell in cells:  # split Markdown cells share their original's id; ids must be unique
        if "id" in cell or nb.get("nbformat_minor", 0) >= 5:
            base = str(cell.get("id") or "cell")
            seen[base] = seen.get(base, 0) + 1
            cell["id"] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    nb["cells"] = cells
    nb.get("metadata", {}).get("kernelspec", {}).pop("path", None)
    return nb


def rewrite(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(make_runnable(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    paths = argv or [p for p in os.environ.get("QUARTO_PROJECT_OUTPUT_FILES", "").splitlines() if p.endswith(".ipynb")]
    for p in paths:
        rewrite(Path(p))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
