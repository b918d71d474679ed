"""Writing the outputs: the executed notebook, and HTML and PDF through pandoc (and typst)."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import yaml

from .common import DEFAULT_REPORT, DEFAULT_TIMEOUT, FORMATS, HELPER_KEY, RenderError
from .engines import run_pandoc, typst_compat
from .execute import execute_report
from .markdown import _format_options, add_captions, document_metadata, notebook_to_markdown

# The project's pandoc filter for typst tables (column widths, literal leading "+"), which
# _quarto.yml gives real Quarto: the same tables here.
TYPST_TABLE_FILTER = "filters/typst-tables.lua"


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
#show table: set text(size: 8.5pt, hyphenate: false)
#show table: set par(justify: false)
// typst never breaks a figure across pages: a table longer than a page ran over the footer
#show figure.where(kind: table): set block(breakable: true)
#set table(stroke: (x, y) => if y == 0 { (bottom: 0.6pt) } else { none })
#show heading: set block(above: 1.4em, below: 0.8em)
"""


def write_ipynb(nb, out: Path) -> Path:
    """The executed notebook, outputs and images embedded, with numbered captions as Quarto writes them."""
    import nbformat

    from runnable_notebook import make_runnable  # tools/, as Quarto's post-render step: the same runnable notebook

    nb = copy.deepcopy(nb)
    add_captions(nb)
    nb.metadata.pop(HELPER_KEY, None)
    nb = nbformat.from_dict(make_runnable(json.loads(nbformat.writes(nb))))
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
    table_filter = qmd.parent / TYPST_TABLE_FILTER
    args += ["--lua-filter", str(table_filter)] if table_filter.exists() else []
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
    with tempfile.TemporaryDirectory(prefix="render-fallback-") as tmp:
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
