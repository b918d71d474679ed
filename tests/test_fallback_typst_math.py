r"""The report's math survives the trip to typst (the PDF path): every `$...$` and `$$...$$` that
pandoc reads as TeX math must come out as typst math, and the result must compile.

A broken equation (LaTeX pandoc cannot parse, or `$` delimiters it does not accept, such as a space
before the closing `$`) ends up as escaped LaTeX text in the typst source (`\\frac`, `\$`), which
`find_raw_latex` reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import render_fallback as render

REPORT = Path(render.DEFAULT_REPORT)


@pytest.fixture(scope="module")
def report_typst() -> str:
    if not REPORT.exists():
        pytest.skip(f"{REPORT} does not exist yet")
    return render.prose_to_typst(REPORT.read_text(encoding="utf-8"))  # raises on any pandoc warning


def test_report_math_is_typst_math(report_typst):
    leaks = render.find_raw_latex(report_typst)
    assert not leaks, (
        "equations came out as raw LaTeX in the typst source (pandoc reads `$...$` as math only with no "
        "space after the opening `$` and none before the closing one):\n" + "\n".join(leaks))


def test_report_prose_compiles_with_typst(report_typst):
    pdf = render.compile_typst(report_typst)
    assert pdf.startswith(b"%PDF")


def test_report_math_is_converted():
    """The report does have display and inline math, and pandoc turned it into typst math."""
    if not REPORT.exists():
        pytest.skip(f"{REPORT} does not exist yet")
    text = REPORT.read_text(encoding="utf-8")
    assert "$$" in text and "\\begin{aligned}" in text
    typ = render.prose_to_typst(text)
    assert "frac(" in typ and "sigma" in typ and "partial" in typ
    assert "\\begin" not in typ and "\\frac" not in typ


def test_detector_flags_raw_latex():
    """The detector is not vacuous: it flags escaped LaTeX and stray dollars, and ignores code."""
    assert render.find_raw_latex("the loss is \\$\\\\frac{1}{2}\\$ here")
    assert render.find_raw_latex("value \\\\sigma")
    assert not render.find_raw_latex("$frac(1, 2) sigma(z) partial L$ and `\\\\frac` in code")
    assert not render.find_raw_latex("```python\nprint('\\\\n')\n```\n// a \\\\sum comment\n")


def test_good_math_converts_and_bad_math_is_caught():
    good = render.prose_to_typst(
        "Inline $\\frac{\\partial L}{\\partial z} = \\sigma(z) - y$ and\n\n"
        "$$\n\\begin{aligned}\na &= \\sum_i x_i \\odot y_i, \\\\\nb &= \\mathbb{R}^{D \\times K}\n\\end{aligned}\n$$\n"
    )
    assert render.find_raw_latex(good) == []
    assert render.compile_typst(good).startswith(b"%PDF")
    # A space before the closing `$` means pandoc reads no math: the LaTeX leaks as text.
    bad = render.prose_to_typst("the naive loss is $-\\log 0 = $ inf")
    assert render.find_raw_latex(bad)
    # LaTeX that texmath cannot parse is a pandoc warning: an error in strict mode.
    with pytest.raises(render.RenderError, match="Could not convert TeX math"):
        render.prose_to_typst("$\\notacommand{x}$")
