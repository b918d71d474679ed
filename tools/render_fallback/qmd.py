"""Reading a qmd: jupytext's R Markdown reader, chunk options, inline `{python}` expressions."""

from __future__ import annotations

import re

import yaml

from .common import RenderError

_FENCE_RE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_CHUNK_RE = re.compile(r"^ {0,3}(`{3,})\s*\{python[\s,}]", re.MULTILINE)
INLINE_RE = re.compile(r"`\{python\}[ \t\n]+([^`]+?)[ \t\n]*`")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def count_code_chunks(text: str) -> int:
    """Number of ```` ```{python} ```` chunks in qmd text (what jupytext must turn into code cells)."""
    return len(_CHUNK_RE.findall(text))


def chunk_lines(text: str) -> list[int]:
    """1-based line number of each ```` ```{python} ```` chunk's opening fence, in order."""
    return [text.count("\n", 0, m.start()) + 1 for m in _CHUNK_RE.finditer(text)]


def read_qmd(text: str):
    """Parse qmd text into ``(front_matter, notebook)`` with jupytext's R Markdown reader.

    The notebook keeps the YAML front matter as its first (raw) cell, like Quarto's ipynb output.
    """
    import jupytext

    nb = jupytext.reads(text, fmt="Rmd")
    front: dict = {}
    if nb.cells and nb.cells[0].cell_type == "raw" and nb.cells[0].source.lstrip().startswith("---"):
        body = re.sub(r"\A\s*---[ \t]*\n|\n---[ \t]*\s*\Z", "", nb.cells[0].source)
        try:
            front = yaml.safe_load(body) or {}
        except yaml.YAMLError as exc:
            raise RenderError(f"the YAML front matter does not parse: {exc}") from exc
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    n_chunks, n_cells = count_code_chunks(text), sum(c.cell_type == "code" for c in nb.cells)
    if n_chunks != n_cells:
        raise RenderError(f"jupytext found {n_cells} code cells but the text has {n_chunks} {{python}} chunks")
    return front, nb


def split_options(source: str) -> tuple[dict, str]:
    """Split a cell's leading ``#| key: value`` lines (Quarto chunk options, YAML) from its code.

    Returns the options and the code with every ``#|`` line removed.
    """
    lines = source.splitlines()
    opt_lines = []
    i = 0
    while i < len(lines) and lines[i].lstrip().startswith("#|"):
        opt = lines[i].lstrip()[2:]
        opt_lines.append(opt[1:] if opt.startswith(" ") else opt)
        i += 1
    options: dict = {}
    if opt_lines:
        try:
            options = yaml.safe_load("\n".join(opt_lines)) or {}
        except yaml.YAMLError as exc:
            raise RenderError(f"chunk options do not parse as YAML:\n{chr(10).join(opt_lines)}\n{exc}") from exc
        if not isinstance(options, dict):
            raise RenderError(f"chunk options are not `key: value` pairs: {opt_lines}")
    code = "\n".join(line for line in lines[i:] if not line.lstrip().startswith("#|"))
    return options, code.strip("\n")


def _prose_spans(markdown: str):
    """Yield ``(start, end)`` spans of ``markdown`` that are outside fenced code blocks."""
    pos, start, fence = 0, 0, None
    for line in markdown.splitlines(keepends=True):
        m = _FENCE_RE.match(line.rstrip("\n"))
        if fence is None and m:
            if start < pos:
                yield start, pos
            fence = m.group("fence")
        elif fence is not None and m and m.group("fence")[0] == fence[0] \
                and len(m.group("fence")) >= len(fence) and not m.group("info").strip():
            fence, start = None, pos + len(line)
        pos += len(line)
    if fence is None and start < pos:
        yield start, pos


def find_inline_expressions(markdown: str) -> list[str]:
    """The `` `{python} expr` `` expressions of a markdown text, in order (fenced code ignored)."""
    return [m.group(1) for s, e in _prose_spans(markdown) for m in INLINE_RE.finditer(markdown, s, e)]


def substitute_inline(markdown: str, values: list[str]) -> str:
    """Replace the inline expressions of ``markdown`` by ``values`` (same order)."""
    it = iter(values)
    out, last = [], 0
    for s, e in _prose_spans(markdown):
        for m in INLINE_RE.finditer(markdown, s, e):
            out += [markdown[last:m.start()], next(it)]
            last = m.end()
    out.append(markdown[last:])
    return "".join(out)


