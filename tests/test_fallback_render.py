"""The Quarto-free renderer (tools/render_fallback): how it reads report.qmd, and its machinery on
tiny synthetic documents."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

import render_fallback as render

REPORT = Path(render.DEFAULT_REPORT)


def _report_text() -> str:
    if not REPORT.exists():
        pytest.skip(f"{REPORT} does not exist yet")
    return REPORT.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# report.qmd
# --------------------------------------------------------------------------------------------

def test_jupytext_reads_every_chunk_as_a_code_cell():
    text = _report_text()
    n_fences = len(re.findall(r"^```\{python\}", text, flags=re.MULTILINE))
    nb = jupytext.reads(text, fmt="Rmd")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert n_fences > 0
    assert len(code) == n_fences
    # Quarto's `#| key: value` options stay in the cell source (where render.split_options reads them).
    n_options = len(re.findall(r"^#\| ", text, flags=re.MULTILINE))
    assert sum(line.startswith("#| ") for c in code for line in c.source.splitlines()) == n_options
    # The YAML front matter is the first (raw) cell and has the title.
    front, _ = render.read_qmd(text)
    assert front.get("title")


# Executing the whole report, and what each format shows of it: tests/test_rendered_report.py.


# --------------------------------------------------------------------------------------------
# The renderer's machinery on a synthetic document
# --------------------------------------------------------------------------------------------

MINI = '''---
title: "Mini report"
---

```{python}
#| label: setup
#| echo: false
import matplotlib.pyplot as plt
from IPython.display import Markdown
x = 21
```

Twice x is `{python} x * 2`, a string shows unquoted: `{python} "a" + "b"`. See @fig-line and @tbl-t.

$$
\\begin{aligned}
\\frac{\\partial L}{\\partial z} &= \\sigma(z) - y
\\end{aligned}
$$

```{python}
#| label: fig-line
#| fig-cap: "A line."
plt.plot([0, 1], [0, 1]);
```

```{python}
#| label: tbl-t
#| tbl-cap: "A table."
Markdown("| a | b |\\n|--:|--:|\\n| 1 | 2 |")
```

```{python}
#| include: false
print("NOT-INCLUDED")
```

```{python}
#| output: false
print("NOT-OUTPUT")
```
'''


def test_inline_expression_values_are_substituted(tmp_path):
    qmd = tmp_path / "mini.qmd"
    qmd.write_text(MINI)
    nb = render.execute_report(qmd, cache_only=True)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "Twice x is 42, a string shows unquoted: ab." in md
    assert "{python}" not in md
    assert not any(c.metadata.get(render.HELPER_KEY) for c in nb.cells)
    assert nb.cells[0].cell_type == "raw"  # the front matter, as in Quarto's ipynb


def test_failing_inline_expression_fails_and_names_it(tmp_path):
    qmd = tmp_path / "broken.qmd"
    qmd.write_text("```{python}\ny = 1\n```\n\nFine: `{python} y`. Broken: `{python} y / 0`.\n")
    with pytest.raises(render.RenderError, match=r"y / 0.*ZeroDivisionError"):
        render.execute_report(qmd, cache_only=True)


def test_failing_chunk_names_file_line_and_label(tmp_path):
    qmd = tmp_path / "chunk.qmd"
    qmd.write_text("Text.\n\n```{python}\n#| label: boom\nraise ValueError('kaput')\n```\n")
    with pytest.raises(render.RenderError, match=r"chunk\.qmd:3: the chunk \(label: boom\) raised ValueError: kaput"):
        render.execute_report(qmd, cache_only=True)


def test_cache_only_reaches_the_kernel(tmp_path):
    qmd = tmp_path / "env.qmd"
    qmd.write_text("```{python}\nimport os\n```\n\nmode `{python} os.environ['HW3_CACHE_ONLY']`\n")
    nb = render.execute_report(qmd, cache_only=True)
    assert "mode 1" in nb.cells[-1].source
    nb = render.execute_report(qmd, cache_only=False)
    assert "mode 0" in nb.cells[-1].source


def test_render_honours_chunk_options(tmp_path):
    qmd = tmp_path / "mini.qmd"
    qmd.write_text(MINI)
    out = tmp_path / "out"
    written = render.render(qmd, to="ipynb,html,pdf", out=out)
    assert set(written) == {"ipynb", "html", "pdf"}
    html = (out / "report.html").read_text()
    assert "<title>Mini report</title>" in html
    assert "import matplotlib" not in html  # echo: false
    assert "NOT-INCLUDED" not in html  # include: false
    assert "NOT-OUTPUT" in html and "cell-output-stdout" not in html  # output: false keeps the code only
    assert "#|" not in html
    assert 'id="fig-line"' in html and "Figure 1: A line." in html
    assert "Table 1: A table." in html and "<table" in html
    assert '<a href="#fig-line">Figure 1</a>' in html
    assert "<math" in html and "data:image/png;base64," in html and "cdn" not in html.lower()
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert "Twice x is 42" in (out / "report.ipynb").read_text()


def test_split_options():
    opts, code = render.split_options('#| label: fig-a\n#| fig-cap: "A: b"\n#| echo: false\nx = 1\n#| stray\ny = 2')
    assert opts == {"label": "fig-a", "fig-cap": "A: b", "echo": False}
    assert code == "x = 1\ny = 2"
