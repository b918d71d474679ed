"""The Quarto configuration's own pieces, on small inputs: the Lua filters in filters/ run under the
pandoc Quarto ships (`quarto pandoc`), the typst header under its typst (`quarto typst`), and the
checks of report_outputs on synthetic inputs, so each check is seen to fail on the defect it targets.
The tests that need Quarto skip without it, like the rendered-report tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import report_outputs as ro
from test_rendered_report import quarto_or_skip

REPO = Path(__file__).resolve().parents[1]
FILTERS = REPO / "filters"


def pandoc(args: list[str], text: str, cwd: Path | None = None) -> str:
    proc = subprocess.run([quarto_or_skip(), "pandoc", *args], input=text, capture_output=True, text=True,
                          cwd=cwd, check=True)
    return proc.stdout


def typst_pdf(source: str, tmp_path: Path) -> Path:
    (tmp_path / "doc.typ").write_text(source, encoding="utf-8")
    subprocess.run([quarto_or_skip(), "typst", "compile", "doc.typ", "doc.pdf"], cwd=tmp_path, capture_output=True,
                   check=True)
    return tmp_path / "doc.pdf"


WIDE_TABLE = (
    "| model | optimizer | train loss | + flip TTA | a rather long header that makes the line long |\n"
    "|:------|:-------------------------------|-----------:|-----------:|------------------------------------------------|\n"
    "| MLP   | SGD+Nesterov(0.01, 0.9)         |      0.151 |     88.19% | x |\n"
)


def test_typst_filter_keeps_a_leading_plus_literal(tmp_path):
    typ = pandoc(["-f", "markdown", "-t", "typst", "--lua-filter", str(FILTERS / "typst-tables.lua")], WIDE_TABLE)
    assert "[\\+ flip TTA]" in typ
    text = ro.normalized("\n".join(ro.pdf_pages_text(typst_pdf(typ, tmp_path))))
    assert "+ flip TTA" in text and "1. flip TTA" not in text


def test_typst_filter_lets_columns_fit_their_content():
    plain = pandoc(["-f", "markdown", "-t", "typst"], WIDE_TABLE)
    assert "columns: (" in plain  # pandoc's relative widths from the dash counts
    typ = pandoc(["-f", "markdown", "-t", "typst", "--lua-filter", str(FILTERS / "typst-tables.lua")], WIDE_TABLE)
    assert "columns: 5" in typ


def _table_after_text_typst(with_header: bool, breakable: bool = True) -> str:
    """A 30-row table (shorter than a page) after text that leaves it less than a page of room."""
    rows = "\n".join(f"  [row {i}], [{i * 7}]," for i in range(30))
    head = (FILTERS / "typst-header.typ").read_text() if with_header else \
        f'#show figure.where(kind: "quarto-float-tbl"): set block(breakable: {"true" if breakable else "false"})\n'
    filler = "\n\n".join(f"Paragraph {i} of some text before the table." for i in range(20))
    return (f'#set page(paper: "a4", numbering: "1")\n{head}\n{filler}\n\n'
            f'#figure(table(columns: 2, table.header([name], [value]),\n{rows}\n), kind: "quarto-float-tbl", '
            f'supplement: "Table", caption: [A table.])\n')


def _pages_with(pdf: Path, text: str) -> list[int]:
    return [i for i, page in enumerate(ro.pdf_pages_text(pdf)) if text in ro.normalized(page)]


def test_a_table_is_kept_whole_on_one_page(tmp_path):
    split = typst_pdf(_table_after_text_typst(with_header=False, breakable=True), tmp_path)
    assert _pages_with(split, "row 0 0") != _pages_with(split, "row 29 203"), "the check must see a split table"
    whole = typst_pdf(_table_after_text_typst(with_header=True), tmp_path)
    assert _pages_with(whole, "row 0 0") == _pages_with(whole, "row 29 203") != []
    assert ro.text_in_footer(whole) == []


# What Quarto 1.7 hands pandoc's ipynb writer for a `fig-` chunk and for a `tbl-` chunk whose
# output is Markdown (its post-finalize AST, written as pandoc markdown).
QUARTO_IPYNB_AST = '''
::: {.cell .code}
``` python
plt.plot([0, 1])
```

:::: {.output .display_data}
![Figure 1: A line.](fig.png){#fig-a}
::::
:::

::: {.cell .code}
``` python
Markdown(table)
```

:::: {}
::::: {.output .display_data}
| a | + b |
|--:|--:|
| 1 | 2 |
:::::

Table 1: A table.
::::
:::
'''


def _ipynb(tmp_path: Path, with_filter: bool) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.savefig(tmp_path / "fig.png")
    plt.close(fig)
    args = ["-f", "markdown", "-t", "ipynb"]
    if with_filter:
        args += ["--lua-filter", str(FILTERS / "ipynb-outputs.lua")]
    return json.loads(pandoc(args, QUARTO_IPYNB_AST, cwd=tmp_path))


def test_pandoc_alone_drops_quartos_figure_and_table_outputs(tmp_path):
    """Why filters/ipynb-outputs.lua exists (if pandoc ever keeps them, the filter may go)."""
    nb = _ipynb(tmp_path, with_filter=False)
    data = [o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])]
    assert not any("image/png" in d for d in data)
    assert not ro.markdown_table_headers(nb)


def test_ipynb_filter_keeps_figures_tables_and_captions(tmp_path):
    import nbformat

    nb = _ipynb(tmp_path, with_filter=True)
    nbformat.validate(nbformat.reads(json.dumps(nb), as_version=4))
    fig_cell, tbl_cell = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [list(o["data"]) for o in fig_cell["outputs"]] == [["image/png"], ["text/markdown"]]
    assert ro.float_mismatches(ro.captions_ipynb(nb), [("Figure", 1, "A line."), ("Table", 1, "A table.")]) == []
    assert '<a id="fig-a"></a>' in "".join(fig_cell["outputs"][1]["data"]["text/markdown"])
    table = "".join(tbl_cell["outputs"][0]["data"]["text/markdown"])
    assert table.index("Table 1") < table.index("|")  # caption above, as in HTML and PDF
    assert ro.markdown_table_headers(nb) == [["a", "+ b"]]


@pytest.mark.parametrize("html, found", [
    ('<script src="https://cdn.example/x.js"></script>', ["https://cdn.example/x.js"]),
    ('<link rel="stylesheet" href="//fonts.example/f.css">', ["//fonts.example/f.css"]),
    ("<style>@import 'https://fonts.example/a.css'; b { background: url(https://x/y.png) }</style>",
     ["https://x/y.png", "https://fonts.example/a.css"]),
    ('<img src="figure.png"><a href="https://example.org">a plain link is fine</a>', ["figure.png"]),
    ('<script src="data:application/javascript;base64,AAAA"></script><link rel="stylesheet" href="data:text/css,b{}">', []),
])
def test_external_resources(html, found):
    assert sorted(ro.external_resources(html)) == sorted(found)


def test_float_mismatches_reports_renumbering():
    expected = [("Figure", 1, "A line."), ("Table", 1, "Parameters of the network.")]
    assert ro.float_mismatches([("Figure", 1, "A line."), ("Table", 1, "Parameters of the network. model x")],
                               expected) == []
    assert ro.float_mismatches([("Figure", 2, "A line."), ("Table", 1, "Parameters of the network.")], expected)
    assert ro.float_mismatches([("Figure", 1, "A line.")], expected)


def test_expected_floats_reads_chunk_options():
    qmd = ('```{python}\n#| label: fig-a\n#| fig-cap: "A line."\nx\n```\n\n'
           '```{python}\n#| label: tbl-b\n#| tbl-cap: "The table."\nx\n```\n\n'
           '```{python}\n#| label: setup\nx\n```\n')
    assert ro.expected_floats(qmd) == [("Figure", 1, "A line."), ("Table", 1, "The table.")]


# What Quarto 1.7 hands pandoc's typst writer for "(@fig-a; more) and @fig-a, then" (its
# post-finalize AST, as pandoc's native format): each reference is raw typst around its supplement.
QUARTO_TYPST_REFS = '''[ Para
    [ Str "("
    , RawInline (Format "typst") "#ref(<fig-a>, supplement: ["
    , Str "Figure"
    , RawInline (Format "typst") "])"
    , Str ";"
    , Space
    , Str "more)"
    , Space
    , Str "and"
    , Space
    , RawInline (Format "typst") "#ref(<fig-a>, supplement: ["
    , Str "Figure"
    , RawInline (Format "typst") "])"
    , Str ","
    , Space
    , Str "then."
    ]
]'''


@pytest.mark.parametrize("with_filter", [False, True])
def test_a_semicolon_after_a_reference_stays_in_the_pdf(tmp_path, with_filter):
    args = ["-f", "native", "-t", "typst"] + (["--lua-filter", str(FILTERS / "typst-refs.lua")] if with_filter else [])
    body = pandoc(args, QUARTO_TYPST_REFS)
    source = "#figure(rect(), caption: [A]) <fig-a>\n\n" + body
    text = " ".join(ro.normalized(page) for page in ro.pdf_pages_text(typst_pdf(source, tmp_path)))
    assert ("(Figure 1; more) and Figure 1, then." in text) == with_filter, text
