"""Executing the report: helper cells (setup, inline expressions), nbclient, error messages."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from .common import DEFAULT_REPORT, DEFAULT_TIMEOUT, HELPER_KEY, INLINE_MIME, RenderError
from .qmd import _ANSI_RE, chunk_lines, find_inline_expressions, read_qmd, split_options, substitute_inline

_SETUP_CODE = '''\
# Inserted by render_fallback (removed from the outputs): what Quarto's setup cell does, plus the
# evaluator of inline `{python}` expressions.
import matplotlib_inline.backend_inline as _fallback_mpl_inline
_fallback_mpl_inline.set_matplotlib_formats("retina")
import matplotlib.pyplot as _fallback_plt
_fallback_plt.rcParams["figure.dpi"] = 96
_fallback_plt.rcParams["figure.figsize"] = (7, 5)
del _fallback_plt, _fallback_mpl_inline


class InlineExpressionError(Exception):
    """An inline `{python}` expression of the report raised."""


def _fallback_render_inline(exprs):
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
                src = f"_fallback_render_inline({exprs!r})"
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
    The notebook's metadata ``render_fallback`` holds the front matter and document-wide chunk options.
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


