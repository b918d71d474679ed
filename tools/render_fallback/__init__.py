"""Execute ``report.qmd`` and render it to ipynb, HTML and PDF without the Quarto CLI (the fallback of `make report`).

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

CLI (with ``tools/`` on ``sys.path``): ``python -m render_fallback [report.qmd] [--to ipynb,html,pdf] [--out _output] [--no-cache-only]``.
"""

from .common import DEFAULT_REPORT, FORMATS, HELPER_KEY, RenderError
from .engines import compile_typst, find_raw_latex, prose_to_typst
from .execute import execute_report
from .qmd import find_inline_expressions, read_qmd, split_options
from .write import render

__all__ = ["DEFAULT_REPORT", "FORMATS", "HELPER_KEY", "RenderError", "compile_typst", "execute_report",
           "find_inline_expressions", "find_raw_latex", "prose_to_typst", "read_qmd", "render", "split_options"]
