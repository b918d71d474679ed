"""Execute ``report.qmd`` and render it to ipynb, HTML and PDF without the Quarto CLI.

``quarto render`` is the supported way to build the report. This module is the Quarto-free path
for machines without Quarto (CI, this project's dev boxes): it uses the same engines Quarto uses
and reproduces the Quarto features that ``report.qmd`` relies on.

Pipeline (the same shape as Quarto's own Jupyter pipeline)::

    report.qmd --jupytext (Rmd reader)--> notebook --nbclient (python3 kernel)--> executed notebook
        --> report.ipynb
        --> pandoc markdown (cells, outputs, figures, captions) --pandoc--> report.html
                                                               --pandoc -t typst--> typst --> report.pdf

* **Reading.** ``jupytext.reads(text, fmt="Rmd")`` turns each ```` ```{python} ```` chunk into a
  code cell and keeps its ``#| key: value`` options in the source (``jupytext.read("x.qmd")``
  would call the Quarto CLI). The YAML front matter becomes the first (raw) cell.
* **Inline expressions** (`` `{python} expr` `` in prose) are evaluated by a helper code cell
  inserted after each markdown cell that has any; the values (strings unquoted, like Quarto) are
  substituted into the markdown and the helper cells are dropped. An expression that raises fails
  the render with an error that names it.
* **Execution** with nbclient in the document's directory (the project root for ``report.qmd``),
  with ``HW3_CACHE_ONLY=1`` in the kernel's environment unless ``cache_only=False``. A setup cell
  mirrors Quarto's (inline matplotlib figures, 96 dpi; we use the "retina" format so the PDF gets
  2x pixels while the HTML keeps the nominal size) and is removed afterwards.
* **HTML and PDF: why our own pandoc markdown rather than pandoc's ipynb reader or nbconvert.**
  Quarto does not hand the notebook to pandoc either: it writes the executed notebook out as
  pandoc markdown (cell divs, code blocks, figures with captions and ids, ``text/markdown`` output
  inlined, HTML output as raw HTML) and runs pandoc on that. Doing the same gives us what the two
  ready-made routes cannot: pandoc's ipynb reader knows nothing about ``#| echo/output/include/
  fig-cap`` (it would show the option lines, hidden code and no captions) and it picks one output
  representation for every target format, while nbconvert's HTML exporter needs MathJax from a CDN
  (no offline math) and its PDF exporter needs LaTeX. With our own markdown the chunk options are
  honoured, each target gets the representation it can use (``text/html`` tables in HTML; for typst
  ``text/markdown`` first, HTML tables converted by pandoc's HTML reader), figures are written as
  PNG files that pandoc embeds in the HTML (``--embed-resources``) and typst reads from the build
  directory (its root), and math goes through pandoc's TeX math reader once for both outputs
  (MathML in HTML, so it works offline; typst math in the PDF).
* **Cross-references** ``@fig-``, ``@tbl-``, ``@sec-``, ``@eq-`` are resolved here (numbered in
  order, "Figure 2" linking to the figure); code folding (``code-fold``) becomes ``<details>`` in
  the HTML.

Not reproduced: Quarto's themes and page layout (Bootstrap, its typst template), code tools,
callout styling beyond a plain box, tabsets, sub-figure layouts (``layout-ncol``), per-chunk
``fig-width``/``fig-height``/``fig-dpi``, citations and bibliographies, shortcodes (``{{< >}}``),
hover previews of cross-references, ``echo: fenced`` and Quarto's freeze/cache.

CLI: ``python -m hw3.render [report.qmd] [--to ipynb,html,pdf] [--out _output] [--no-cache-only]``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as _dt
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from hw3.paths import PROJECT_ROOT

DEFAULT_REPORT = Path(PROJECT_ROOT) / "report.qmd"
DEFAULT_TIMEOUT = 600  # seconds per cell
FORMATS = ("ipynb", "html", "pdf")

#: Metadata key that marks the cells this module inserts (so they can be removed after execution).
HELPER_KEY = "hw3_render"
#: MIME type under which an inline-expression helper cell reports its values.
INLINE_MIME = "application/vnd.hw3.inline+json"

NOT_REPRODUCED = (
    "Quarto themes/layout, code tools, callout styling, tabsets, sub-figure layouts, "
    "per-chunk fig-width/fig-height/fig-dpi, citations, shortcodes, crossref hover previews"
)


class RenderError(RuntimeError):
    """The report could not be executed or rendered; the message says where and why."""


# --------------------------------------------------------------------------------------------
# Reading the qmd
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------

_SETUP_CODE = '''\
# Inserted by hw3.render (removed from the outputs): what Quarto's setup cell does, plus the
# evaluator of inline `{python}` expressions.
import matplotlib_inline.backend_inline as _hw3_mpl_inline
_hw3_mpl_inline.set_matplotlib_formats("retina")
import matplotlib.pyplot as _hw3_plt
_hw3_plt.rcParams["figure.dpi"] = 96
_hw3_plt.rcParams["figure.figsize"] = (7, 5)
del _hw3_plt, _hw3_mpl_inline


class InlineExpressionError(Exception):
    """An inline `{python}` expression of the report raised."""


def _hw3_render_inline(exprs):
    from IPython import get_ipython
    from IPython.display import display
    ns = get_ipython().user_ns
    values = []
    for expr in exprs:
        try:
            value = eval(compile(expr.strip(), "<inline expression>", "eval"), ns)
        except Exception as exc:
            raise InlineExpressionError(
                f"inline expression `{{python}} {expr}` raised {type(exc).__name__}: {exc}") from None
        if isinstance(value, str):
            text = value
        elif hasattr(value, "_repr_markdown_") and value._repr_markdown_() is not None:
            text = value._repr_markdown_()
        else:
            text = str(value)
        values.append(text)
    display({"%s": values}, raw=True)
''' % INLINE_MIME


def _helper_cell(kind: str, source: str, **extra):
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata[HELPER_KEY] = {"kind": kind, **extra}
    return cell


def add_helper_cells(nb):
    """Insert the setup cell and, after each markdown cell with inline expressions, its evaluator."""
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            exprs = find_inline_expressions(cell.source)
            if exprs:
                src = f"_hw3_render_inline({exprs!r})"
                cells.append(_helper_cell("inline", src, expressions=exprs))
    first = 1 if cells and cells[0].cell_type == "raw" else 0
    cells.insert(first, _helper_cell("setup", _SETUP_CODE))
    nb.cells = cells
    return nb


def _error_of(cell) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None


def _describe_failure(nb, lines: list[int], path: str) -> str:
    code_index = -1
    for cell in nb.cells:
        meta = cell.metadata.get(HELPER_KEY)
        if cell.cell_type == "code" and not meta:
            code_index += 1
        err = _error_of(cell) if cell.cell_type == "code" else None
        if not err or "raises-exception" in cell.metadata.get("tags", []):
            continue
        what = f"{err.get('ename')}: {err.get('evalue')}"
        if meta and meta["kind"] == "inline":
            return f"{path}: {err.get('evalue')}"
        if meta:
            return f"{path}: the renderer's setup cell failed: {what}"
        opts, _ = split_options(cell.source)
        where = f"{path}:{lines[code_index]}" if code_index < len(lines) else path
        label = f" (label: {opts['label']})" if "label" in opts else ""
        tb = _ANSI_RE.sub("", "\n".join(err.get("traceback", [])))
        return f"{where}: the chunk{label} raised {what}\n{tb}"
    return ""


def _apply_tags(nb, defaults: dict) -> None:
    """Tag cells so nbclient honours ``eval: false`` / ``error: true`` and notebook tools the rest."""
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.metadata.get(HELPER_KEY):
            continue
        opts = {**defaults, **split_options(cell.source)[0]}
        tags = list(cell.metadata.get("tags", []))
        for cond, tag in ((opts.get("eval") is False, "skip-execution"),
                          (opts.get("error") is True, "raises-exception"),
                          (opts.get("include") is False, "remove-cell"),
                          (opts.get("echo") is False, "remove-input"),
                          (opts.get("output") is False, "remove-output")):
            if cond and tag not in tags:
                tags.append(tag)
        if tags:
            cell.metadata["tags"] = tags


def execution_defaults(front: dict, qmd_path: Path) -> dict:
    """Document-wide chunk options: ``execute:`` of ``_quarto.yml`` beside the qmd, then the front matter's."""
    defaults: dict = {}
    project = qmd_path.parent / "_quarto.yml"
    if project.exists():
        conf = yaml.safe_load(project.read_text()) or {}
        defaults.update(conf.get("execute") or {})
    defaults.update(front.get("execute") or {})
    return {k: v for k, v in defaults.items() if k in ("echo", "output", "include", "warning", "error", "eval")}


def execute_notebook(nb, cwd: Path, cache_only: bool = True, timeout: int = DEFAULT_TIMEOUT,
                     source_lines: list[int] | None = None, path: str = "report.qmd"):
    """Run ``nb`` (with helper cells) in a fresh ``python3`` kernel; raise RenderError on any error."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    env = dict(os.environ)
    env["HW3_CACHE_ONLY"] = "1" if cache_only else "0"
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    client = NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}, allow_errors=False,
                            # quiets ipykernel's start-up warning about unencrypted local TCP
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        msg = _describe_failure(nb, source_lines or [], path) or str(exc)
        raise RenderError(msg) from None
    except Exception as exc:  # kernel died, timeout, ...
        raise RenderError(f"{path}: execution failed: {type(exc).__name__}: {exc}") from exc
    return nb


def finish_notebook(nb):
    """Substitute the inline values into the markdown and drop the helper cells."""
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get(HELPER_KEY)
        if not meta:
            cells.append(cell)
            continue
        if meta["kind"] != "inline":
            continue
        values = next((o["data"][INLINE_MIME] for o in cell.get("outputs", [])
                       if INLINE_MIME in o.get("data", {})), None)
        exprs = meta["expressions"]
        if values is None or len(values) != len(exprs):
            raise RenderError(f"the inline expressions {exprs} were not evaluated")
        md = cells[-1]
        md.source = substitute_inline(md.source, [str(v) for v in values])
    nb.cells = cells
    return nb


def execute_report(path: str | os.PathLike = DEFAULT_REPORT, cache_only: bool = True,
                   timeout: int = DEFAULT_TIMEOUT):
    """Execute a qmd report; return the executed notebook with inline values substituted.

    Runs in a fresh ``python3`` kernel in the document's directory, with ``HW3_CACHE_ONLY=1``
    (``cache_only=True``: results come from ``cache/`` and a miss is an error) or ``=0``.
    Raises :class:`RenderError` naming the chunk (file:line, label) or inline expression that failed.
    The notebook's metadata ``hw3_render`` holds the front matter and document-wide chunk options.
    """
    path = Path(path).resolve()
    if not path.exists():
        raise RenderError(f"{path} does not exist")
    text = path.read_text(encoding="utf-8")
    front, nb = read_qmd(text)
    defaults = execution_defaults(front, path)
    add_helper_cells(nb)
    _apply_tags(nb, defaults)
    execute_notebook(nb, path.parent, cache_only=cache_only, timeout=timeout,
                     source_lines=chunk_lines(text), path=path.name)
    finish_notebook(nb)
    nb.metadata[HELPER_KEY] = {"front_matter": json.loads(json.dumps(front, default=str)),
                               "defaults": defaults, "source": str(path)}
    return nb


# --------------------------------------------------------------------------------------------
# Executed notebook -> pandoc markdown
# --------------------------------------------------------------------------------------------

_KINDS = r"(?:[Ff]ig|[Tt]bl|[Ss]ec|[Ee]q)"
_BRACKET_REF_RE = re.compile(rf"\[(-?)@({_KINDS}-[\w-]*\w)\]")
_BARE_REF_RE = re.compile(rf"(?<![\w@.\-\[])@({_KINDS}-[\w-]*\w)")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*(\{[^}]*\})?\s*$")
_EQ_RE = re.compile(r"\$\$(.+?)\$\$[ \t]*\{#(eq-[\w-]*\w)\}", re.DOTALL)
_WARNED: set[str] = set()
_REF_NAMES = {"fig": "Figure", "tbl": "Table", "sec": "Section", "eq": "Equation"}


def _code_and_math_free(text: str) -> list[tuple[int, int]]:
    """Spans of prose outside fenced code, inline code and math (where @refs are resolved)."""
    spans = []
    token = re.compile(r"(`+)(?:.|\n)*?\1|\$\$(?:.|\n)*?\$\$|\$[^$\s](?:[^$]|\\\$)*?\$")
    for s, e in _prose_spans(text):
        last = s
        for m in token.finditer(text, s, e):
            spans.append((last, m.start()))
            last = m.end()
        spans.append((last, e))
    return spans


class CrossRefs:
    """Numbers for ``fig-``/``tbl-``/``sec-``/``eq-`` labels and resolution of ``@label`` references."""

    def __init__(self, nb, defaults: dict):
        self.numbers: dict[str, str] = {}
        counters = {"fig": 0, "tbl": 0, "eq": 0}
        sections = [0] * 6
        for cell in nb.cells:
            if cell.cell_type == "code":
                opts = {**defaults, **split_options(cell.source)[0]}
                label = str(opts.get("label", ""))
                kind = label.split("-", 1)[0]
                if kind in ("fig", "tbl") and opts.get("include") is not False and opts.get(f"{kind}-cap"):
                    counters[kind] += 1
                    self.numbers[label] = str(counters[kind])
            elif cell.cell_type == "markdown":
                for s, e in _prose_spans(cell.source):
                    for line in cell.source[s:e].splitlines():
                        m = _HEADING_RE.match(line)
                        if not m:
                            continue
                        attrs = m.group(3) or ""
                        if ".unnumbered" in attrs or re.search(r"[{\s]-[\s}]", attrs):
                            continue
                        level = len(m.group(1))
                        sections[level - 1] += 1
                        sections[level:] = [0] * (6 - level)
                        ident = re.search(r"#(sec-[\w-]*\w)", attrs)
                        if ident:
                            self.numbers[ident.group(1)] = ".".join(map(str, sections[:level]))
                    for m in _EQ_RE.finditer(cell.source, s, e):
                        counters["eq"] += 1
                        self.numbers[m.group(2)] = str(counters["eq"])

    def caption(self, label: str, kind: str, caption: str) -> str:
        """Caption text with its "Figure N: " prefix where the label is numbered."""
        n = self.numbers.get(label)
        return f"{_REF_NAMES[kind]} {n}: {caption}" if n else caption

    def resolve(self, text: str) -> str:
        """Replace ``@fig-x`` / ``[@fig-x]`` / ``[-@fig-x]`` with links "Figure N"; equations get numbers."""
        def eq(m):
            n = self.numbers.get(m.group(2), "?")
            return f"[]{{#{m.group(2)}}}\n$${m.group(1).rstrip()} \\qquad ({n})$$"

        text = _EQ_RE.sub(eq, text)

        def ref(written: str, number_only: bool) -> str:
            kind, rest = written.split("-", 1)
            label = f"{kind.lower()}-{rest}"
            n = self.numbers.get(label)
            if n is None:
                if written not in _WARNED:
                    _WARNED.add(written)
                    print(f"hw3.render: warning: unresolved cross-reference @{written}", file=sys.stderr)
                return f"**?\\@{written}**"
            name = _REF_NAMES[kind.lower()]
            shown = n if number_only else f"{name} ({n})" if kind.lower() == "eq" else f"{name} {n}"
            return f"[{shown}](#{label})"

        out, last = [], 0
        for s, e in _code_and_math_free(text):
            out.append(text[last:s])
            chunk = text[s:e]
            chunk = _BRACKET_REF_RE.sub(lambda m: ref(m.group(2), bool(m.group(1))), chunk)
            chunk = _BARE_REF_RE.sub(lambda m: ref(m.group(1), False), chunk)
            out.append(chunk)
            last = e
        out.append(text[last:])
        return "".join(out)


def _fence(text: str, info: str) -> str:
    n = max([3] + [len(m) + 1 for m in re.findall(r"`{3,}", text)])
    return f"{'`' * n}{info}\n{text.rstrip()}\n{'`' * n}"


def _html_to_typst(html: str) -> str:
    """Convert an HTML output (e.g. a DataFrame's ``_repr_html_``) to typst with pandoc's HTML reader."""
    html = re.sub(r"<style.*?</style>", "", html, flags=re.DOTALL | re.IGNORECASE)
    typ = typst_compat(run_pandoc(["-f", "html", "-t", "typst", "--wrap=none"], html)).strip()
    # typst blocks shrink to their content; a full-width one lets the table centre like the others.
    return re.sub(r"^#block\[", "#block(width: 100%)[", typ)


# The delimiter row of a pipe table, e.g. `|:------|--:|` (what `DataFrame.to_markdown()` writes).
_PIPE_TABLE_RE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$", re.MULTILINE)


def _output_blocks(out, cell_id: str, index: int, target: str, media: Path, opts: dict) -> list[tuple[str, str]]:
    """Pandoc markdown for one output, as ``(kind, text)`` pairs; kind "image" for figures."""
    otype = out.get("output_type")
    if otype == "stream":
        text = _ANSI_RE.sub("", out.get("text", ""))
        if out.get("name") == "stderr":
            if opts.get("warning") is False or not text.strip():
                return []
            return [("text", _fence(text, " {.cell-output .cell-output-stderr}"))]
        if opts.get("output") == "asis":
            return [("text", text)]
        return [("text", _fence(text, " {.cell-output .cell-output-stdout}"))] if text.strip() else []
    if otype == "error":
        tb = _ANSI_RE.sub("", "\n".join(out.get("traceback", [])))
        return [("text", _fence(tb, " {.cell-output .cell-output-error}"))]
    data = out.get("data", {})
    meta = out.get("metadata", {})
    if INLINE_MIME in data:
        return []
    images = ("image/png", "image/jpeg", "image/svg+xml")
    order = (["text/markdown", *images, "text/html", "text/latex", "text/plain"] if target == "html"
             else ["text/markdown", *images, "text/latex", "text/html", "text/plain"])
    mime = next((m for m in order if m in data), None)
    if mime is None:
        return []
    value = data[mime]
    if isinstance(value, list):
        value = "".join(value)
    if mime in images:
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg"}[mime]
        path = media / f"{cell_id}-{index}.{ext}"
        path.write_bytes(value.encode() if ext == "svg" else base64.b64decode(value))
        size = meta.get(mime, {}) if isinstance(meta.get(mime), dict) else {}
        width = size.get("width")
        if width is None and ext == "png":
            raw = path.read_bytes()
            width = int.from_bytes(raw[16:20], "big") if raw[:8] == b"\x89PNG\r\n\x1a\n" else None
        attr = ""
        if width:
            if target == "html":
                attr = f"width={int(width)}"
            else:  # 96 px per inch; never wider than the text block
                inches = int(width) / 96
                attr = "width=100%" if inches > TYPST_TEXT_WIDTH_IN else f"width={inches:.2f}in"
        return [("image", f"{path.name}|{attr}")]
    if mime == "text/markdown":
        return [("markdown", value.strip())]
    if mime == "text/latex":
        return [("text", value.strip())]
    if mime == "text/html":
        if target == "html":
            return [("text", _fence(value, "{=html}"))]
        return [("text", _fence(_html_to_typst(value), "{=typst}"))]
    text = _ANSI_RE.sub("", value)
    if opts.get("output") == "asis":
        return [("text", text)]
    return [("text", _fence(text, " {.cell-output .cell-output-display}"))]


def _escape_alt(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def notebook_to_markdown(nb, target: str, media: Path, code_fold: bool = False) -> str:
    """The executed notebook as pandoc markdown for ``target`` ("html" or "typst").

    Figures are written into ``media`` and referenced by file name (run pandoc/typst there).
    """
    meta = nb.metadata.get(HELPER_KEY, {})
    defaults = meta.get("defaults", {})
    refs = CrossRefs(nb, defaults)
    # typst blocks shrink to their content: make cell blocks full width so tables/figures centre.
    div_attr = ' typst:width="100%"' if target == "typst" else ""
    parts: list[str] = []
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(refs.resolve(cell.source))
            continue
        if cell.cell_type != "code" or cell.metadata.get(HELPER_KEY):
            continue
        code_index += 1
        opts, code = split_options(cell.source)
        opts = {**defaults, **opts}
        if opts.get("include") is False:
            continue
        label = str(opts.get("label", ""))
        kind = label.split("-", 1)[0]
        body: list[str] = []
        if opts.get("echo") is not False and code.strip():
            block = _fence(code, " {.python .cell-code}")
            if target == "html" and code_fold:
                block = f'<details class="code-fold">\n<summary>Code</summary>\n\n{block}\n\n</details>'
            body.append(block)
        outputs: list[tuple[str, str]] = []
        if opts.get("output") is not False:
            for i, out in enumerate(cell.get("outputs", [])):
                outputs += _output_blocks(out, f"cell-{code_index}", i, target, media, opts)
        n_images = sum(k == "image" for k, _ in outputs)
        seen_images = 0
        rendered = []
        for k, text in outputs:
            if k != "image":
                rendered.append(text)
                continue
            seen_images += 1
            name, attr = text.split("|", 1)
            cap = ""
            ident = ""
            if seen_images == n_images and opts.get("fig-cap"):
                cap = refs.caption(label, "fig", str(opts["fig-cap"])) if kind == "fig" else str(opts["fig-cap"])
                if kind == "fig":
                    ident = f"#{label}"
            attrs = " ".join(a for a in (ident, attr) if a)
            shown = cap or str(opts.get("fig-alt", ""))
            img = f"![{_escape_alt(shown)}]({name}){{{attrs}}}" if attrs else f"![{_escape_alt(shown)}]({name})"
            if not cap:  # a lone image with alt text would become a figure: keep it inline
                img += "\\"
            rendered.append(img)
        tables = [i for i, (k, t) in enumerate(outputs) if k == "markdown" and _PIPE_TABLE_RE.search(t)]
        cap = opts.get("tbl-cap")
        if kind == "tbl" and cap and len(tables) == 1:
            # A real table caption (pandoc `: caption {#id}`): <caption> in HTML, figure caption in typst.
            i = tables[0]
            rendered[i] += f"\n\n: {refs.caption(label, 'tbl', str(cap))} {{#{label}}}"
        elif kind == "tbl":
            inner = ([f"{refs.caption(label, 'tbl', str(cap))}", ""] if cap else []) + rendered
            rendered = [f"::: {{#{label} .cell-table{div_attr}}}\n" + "\n\n".join(inner) + "\n:::"]
        body += rendered
        if body:
            parts.append(f"::: {{.cell{div_attr}}}\n" + "\n\n".join(body) + "\n:::")
    return "\n\n".join(parts) + "\n"


def document_metadata(front: dict, source: Path | None = None) -> dict:
    """The front matter's document metadata for pandoc (Quarto-only keys dropped, dates resolved)."""
    drop = {"format", "execute", "jupyter", "engine", "knitr", "editor", "filters", "crossref", "project"}
    meta = {k: v for k, v in front.items() if k not in drop}
    date = meta.get("date")
    if date in ("last-modified", "today", "now"):
        when = (_dt.datetime.fromtimestamp(source.stat().st_mtime) if date == "last-modified" and source
                and source.exists() else _dt.datetime.now())
        meta["date"] = f"{when:%B} {when.day}, {when.year}"
    elif isinstance(date, (_dt.date, _dt.datetime)):
        meta["date"] = f"{date:%B} {date.day}, {date.year}"
    return meta


def _format_options(front: dict, qmd: Path, fmt: str) -> dict:
    opts: dict = {}
    project = qmd.parent / "_quarto.yml"
    for conf in ((yaml.safe_load(project.read_text()) or {}) if project.exists() else {}, front):
        f = (conf.get("format") or {})
        if isinstance(f, dict) and isinstance(f.get(fmt), dict):
            opts.update(f[fmt])
    return opts


# --------------------------------------------------------------------------------------------
# pandoc and typst
# --------------------------------------------------------------------------------------------

TYPST_TEXT_WIDTH_IN = (21.0 - 2 * 2.5) / 2.54  # A4 with 2.5 cm margins

_HTML_STYLE = """<style>
body { max-width: 58em; }
img { max-width: 100%; height: auto; }
figure { margin: 1em 0; text-align: center; }
figcaption { font-size: 0.9em; color: #444; }
div.cell { margin: 1em 0; }
pre.cell-code, div.sourceCode { background: #f6f8fa; border-radius: 4px; }
pre.cell-output { background: none; border-left: 3px solid #ccc; padding-left: 0.8em; }
pre.cell-output-stderr { border-left-color: #e0a800; }
pre.cell-output-error { border-left-color: #c00; }
details.code-fold > summary { cursor: pointer; color: #555; font-size: 0.9em; }
div.cell-table > p:first-child { text-align: center; font-size: 0.9em; color: #444; }
table { margin: 1em auto; font-size: 0.92em; }
div[class^="callout"], div[class*=" callout"] { border-left: 4px solid #2780e3; background: #f3f8fd;
  padding: 0.4em 1em; margin: 1em 0; }
math[display="block"] { overflow-x: auto; }
</style>
"""

_TYPST_HEADER = """#set figure(numbering: none)
#show figure.caption: set text(size: 9pt)
#show raw.where(block: true): set text(size: 7.5pt)
#show raw.where(block: true): block.with(fill: luma(246), inset: 6pt, radius: 2pt, width: 100%)
#show table: set text(size: 8.5pt)
#show table: set par(justify: false)
#set table(stroke: (x, y) => if y == 0 { (bottom: 0.6pt) } else { none })
#show heading: set block(above: 1.4em, below: 0.8em)
"""


def pandoc_path() -> str:
    """The pandoc binary bundled with ``pypandoc-binary`` (falls back to pandoc on PATH)."""
    try:
        import pypandoc

        return pypandoc.get_pandoc_path()
    except Exception:  # pragma: no cover - only without pypandoc-binary
        return "pandoc"


def pandoc_version() -> str:
    out = subprocess.run([pandoc_path(), "--version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].strip()


def run_pandoc(args: list[str], text: str | None = None, cwd: Path | None = None,
               strict: bool = False) -> str:
    """Run pandoc; return its stdout. Raise RenderError on failure (or, when ``strict``, on warnings)."""
    proc = subprocess.run([pandoc_path(), *args], input=text, capture_output=True, text=True,
                          cwd=cwd, encoding="utf-8")
    if proc.returncode != 0:
        raise RenderError(f"pandoc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    if warnings:
        if strict:
            raise RenderError("pandoc warned:\n" + proc.stderr)
        print(proc.stderr.rstrip(), file=sys.stderr)
    return proc.stdout


# Symbol names that pandoc's TeX-math-to-typst conversion (texmath) still writes but typst 0.14
# (the compiler inside the ``typst`` package) removed: old name -> current name.
TYPST_SYMBOL_RENAMES = {
    "dot.circle.big": "dot.o.big", "plus.circle.big": "plus.o.big", "times.circle.big": "times.o.big",
    "dot.circle": "dot.o", "plus.circle": "plus.o", "minus.circle": "minus.o", "times.circle": "times.o",
    "div.circle": "div.o", "dash.circle": "dash.o", "eq.circle": "eq.o", "ast.circle": "ast.op.o",
    "sect.sq": "inter.sq", "sect": "inter", "angle.l": "chevron.l", "angle.r": "chevron.r",
    "planck.reduce": "planck", "lt.curly": "prec", "gt.curly": "succ",
}
_SYMBOL_RE = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in TYPST_SYMBOL_RENAMES) + r")(?![\w.])")
_TYPST_RAW_RE = re.compile(r"(`{3,}).*?\1|`[^`\n]*`", re.DOTALL)
_TYPST_MATH_RE = re.compile(r"(?<!\\)\$(?:[^$\\]|\\.)*\$", re.DOTALL)


_SCALED_DELIM_RE = re.compile(r"#scale\(x: \d+%, y: \d+%\)\[(\\.|[^\]\\]+)\]")


def typst_compat(source: str) -> str:
    """Fix pandoc's typst math for the typst compiler we use.

    * Rename the symbols pandoc writes under names typst 0.14 removed (``dot.circle`` -> ``dot.o``).
    * ``\\big(``-style delimiters come out as ``#scale(...)[\\(]`` boxes, which typst sets with
      loose spacing ("sigma ( z )"); the plain delimiter reads better.
    """
    def fix_math(m):
        math = _SYMBOL_RE.sub(lambda s: TYPST_SYMBOL_RENAMES[s.group(1)], m.group(0))
        return _SCALED_DELIM_RE.sub(lambda d: d.group(1), math)

    out, last = [], 0
    for m in _TYPST_RAW_RE.finditer(source):
        out += [_TYPST_MATH_RE.sub(fix_math, source[last:m.start()]), m.group(0)]
        last = m.end()
    out.append(_TYPST_MATH_RE.sub(fix_math, source[last:]))
    return "".join(out)


def compile_typst(source: str, root: str | os.PathLike | None = None) -> bytes:
    """Compile typst source text to PDF bytes (``root``: where images and includes are read)."""
    import typst

    try:
        return typst.compile(source.encode("utf-8"), root=str(root) if root else None, format="pdf")
    except Exception as exc:
        raise RenderError(f"typst failed: {exc}") from exc


def prose_to_typst(qmd_text: str, strict: bool = True) -> str:
    """The report's prose (chunks removed, inline expressions as ``0``) converted to typst by pandoc.

    The reader has ``raw_tex`` off, so LaTeX that is not inside valid ``$...$``/``$$...$$`` math
    comes out as literal text (``\\\\frac``) that :func:`find_raw_latex` sees, instead of being
    dropped silently; ``citations`` is off so ``@fig-x`` stays text. With ``strict``, any pandoc
    warning (e.g. "Could not convert TeX math") is an error.
    """
    text = re.sub(r"\A\s*---\n.*?\n---\s*\n", "", qmd_text, flags=re.DOTALL)
    lines, keep, fence = text.splitlines(), [], None
    for line in lines:
        if fence is None:
            m = re.match(r"^ {0,3}(`{3,})\s*\{python", line)
            if m:
                fence = m.group(1)
                continue
            keep.append(line)
        elif re.match(rf"^ {{0,3}}{fence}`*\s*$", line):
            fence = None
    prose = INLINE_RE.sub("0", "\n".join(keep))
    return typst_compat(run_pandoc(["-f", "markdown-raw_tex-citations", "-t", "typst", "--wrap=none"],
                                   prose, strict=strict))


_RAW_LATEX_RE = re.compile(r"\\\\[A-Za-z]+|\\\$|\\\\[\[\]()]")


def find_raw_latex(typst_source: str) -> list[str]:
    """Snippets of typst source where LaTeX leaked out as text (a broken equation); [] if none.

    Pandoc turns good TeX math into typst math (``frac(``, ``sigma``, ``partial``). LaTeX it could
    not parse, or that was not inside valid math delimiters, is written as escaped text: ``\\\\frac``,
    ``\\\\sigma`` (escaped backslash + command name) and ``\\$`` (a literal dollar, i.e. a ``$`` that
    did not open or close math; pandoc's ``$...$`` needs no space after the opening and before the
    closing ``$``). Comments and raw/code text are ignored.
    """
    src = re.sub(r"/\*.*?\*/", "", typst_source, flags=re.DOTALL)
    src = re.sub(r"(`{3,}).*?\1", "", src, flags=re.DOTALL)
    src = re.sub(r"`[^`\n]*`", "", src)
    src = re.sub(r"#raw\(\"(?:[^\"\\]|\\.)*\"[^)]*\)", "", src)
    hits = []
    for line in src.splitlines():
        line = re.sub(r"(?<![:\\])//.*$", "", line)
        found = list(_RAW_LATEX_RE.finditer(line))
        if found:
            first = found[0]
            hits.append(f"{' '.join(m.group(0) for m in found)} in: ..."
                        f"{line[max(0, first.start() - 60):found[-1].end() + 40]}...")
    return hits


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def write_ipynb(nb, out: Path) -> Path:
    """The executed notebook, outputs and images embedded."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.metadata.pop(HELPER_KEY, None)
    path = out / "report.ipynb"
    nbformat.write(nb, str(path))
    return path


def _pandoc_inputs(nb, target: str, build: Path, qmd: Path, fmt_opts: dict) -> Path:
    meta = nb.metadata.get(HELPER_KEY, {})
    front = meta.get("front_matter", {})
    md = notebook_to_markdown(nb, target, build, code_fold=bool(fmt_opts.get("code-fold")))
    head = yaml.safe_dump(document_metadata(front, qmd), sort_keys=False, allow_unicode=True)
    path = build / f"report.{target}.md"
    path.write_text(f"---\n{head}---\n\n{md}", encoding="utf-8")
    return path


def write_html(nb, out: Path, qmd: Path, build: Path) -> Path:
    """Self-contained HTML: pandoc, MathML math (offline), TOC, numbered sections, embedded figures."""
    front = nb.metadata.get(HELPER_KEY, {}).get("front_matter", {})
    opts = {"toc": True, "number-sections": True, "code-fold": False, **_format_options(front, qmd, "html")}
    src = _pandoc_inputs(nb, "html", build, qmd, opts)
    style = build / "style.html"
    style.write_text(_HTML_STYLE, encoding="utf-8")
    path = (out / "report.html").resolve()
    args = [src.name, "-f", "markdown-citations", "-t", "html5", "--standalone", "--embed-resources", "--mathml",
            "-H", style.name, "-M", "toc-title=Table of contents", "-o", str(path)]
    args += ["--toc"] if opts.get("toc") else []
    args += ["--number-sections"] if opts.get("number-sections") else []
    run_pandoc(args, cwd=build)
    return path


def write_pdf(nb, out: Path, qmd: Path, build: Path) -> Path:
    """PDF: pandoc's typst writer, then the ``typst`` package (figures read from the build dir)."""
    front = nb.metadata.get(HELPER_KEY, {}).get("front_matter", {})
    opts = {"toc": True, "number-sections": True, **_format_options(front, qmd, "typst")}
    src = _pandoc_inputs(nb, "typst", build, qmd, opts)
    header = build / "header.typ"
    header.write_text(_TYPST_HEADER, encoding="utf-8")
    args = [src.name, "-f", "markdown-citations", "-t", "typst", "--standalone", "-H", header.name,
            "-V", f"papersize={opts.get('papersize', 'a4')}", "-V", "margin.x=2.5cm", "-V", "margin.y=2.5cm",
            "-V", "fontsize=10.5pt", "-V", "page-numbering=1", "--wrap=none"]
    args += ["--toc"] if opts.get("toc") else []
    args += ["--number-sections"] if opts.get("number-sections") else []
    source = typst_compat(run_pandoc(args, cwd=build))
    typ = build / "report.typ"
    typ.write_text(source, encoding="utf-8")
    try:
        import typst

        pdf = typst.compile(str(typ), root=str(build), format="pdf")
    except Exception as exc:
        raise RenderError(f"typst failed on {typ.name}: {exc}") from exc
    path = out / "report.pdf"
    path.write_bytes(pdf)
    return path


def render(path: str | os.PathLike = DEFAULT_REPORT, to=FORMATS, out: str | os.PathLike | None = None,
           cache_only: bool = True, timeout: int = DEFAULT_TIMEOUT, keep_intermediate: bool = False) -> dict:
    """Execute the report once and write the requested formats; return ``{format: path}``."""
    qmd = Path(path).resolve()
    to = [t.strip() for t in (to.split(",") if isinstance(to, str) else to) if t.strip()]
    unknown = set(to) - set(FORMATS)
    if unknown:
        raise RenderError(f"unknown output format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    out = Path(out) if out else qmd.parent / "_output"
    out.mkdir(parents=True, exist_ok=True)
    nb = execute_report(qmd, cache_only=cache_only, timeout=timeout)
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="hw3-render-") as tmp:
        for fmt in to:
            build = Path(tmp) / fmt
            build.mkdir()
            if fmt == "ipynb":
                written[fmt] = write_ipynb(nb, out)
            elif fmt == "html":
                written[fmt] = write_html(nb, out, qmd, build)
            else:
                written[fmt] = write_pdf(nb, out, qmd, build)
            if keep_intermediate and fmt != "ipynb":
                import shutil

                shutil.copytree(build, out / f"build-{fmt}", dirs_exist_ok=True)
    return written


def _summary(written: dict) -> str:
    from importlib.metadata import version

    engines = {"ipynb": "jupytext+nbclient", "html": f"{pandoc_version()}, MathML",
               "pdf": f"{pandoc_version()} -t typst + typst {version('typst')}"}
    files = "; ".join(f"{fmt}: {p} [{engines[fmt]}]" for fmt, p in written.items())
    return (f"hw3.render: Quarto-free path (not `quarto render`; not reproduced: {NOT_REPRODUCED}). "
            f"Wrote {files}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hw3.render",
        description="Execute report.qmd and render it to ipynb/HTML/PDF without the Quarto CLI.")
    parser.add_argument("input", nargs="?", default=str(DEFAULT_REPORT), help="qmd file (default: %(default)s)")
    parser.add_argument("--to", default=",".join(FORMATS), help="comma-separated formats (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: _output beside the qmd)")
    parser.add_argument("--no-cache-only", dest="cache_only", action="store_false",
                        help="let the report compute missing results (default: HW3_CACHE_ONLY=1)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per cell (default: %(default)s)")
    parser.add_argument("--keep-intermediate", action="store_true",
                        help="also keep the pandoc markdown, typst source and figures in the output folder")
    args = parser.parse_args(argv)
    try:
        written = render(args.input, args.to, args.out, cache_only=args.cache_only, timeout=args.timeout,
                         keep_intermediate=args.keep_intermediate)
    except RenderError as exc:
        print(f"hw3.render: error: {exc}", file=sys.stderr)
        return 1
    print(_summary(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
