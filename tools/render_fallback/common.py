"""Constants and the error type shared by the fallback renderer's modules."""

from __future__ import annotations

from pathlib import Path

# tools/render_fallback/common.py -> the repository root
DEFAULT_REPORT = Path(__file__).resolve().parents[2] / "report.qmd"
DEFAULT_TIMEOUT = 600  # seconds per cell
FORMATS = ("ipynb", "html", "pdf")

#: Metadata key that marks the cells this module inserts (so they can be removed after execution).
HELPER_KEY = "render_fallback"
#: MIME type under which an inline-expression helper cell reports its values.
INLINE_MIME = "application/vnd.render-fallback.inline+json"

NOT_REPRODUCED = (
    "Quarto themes/layout, code tools, callout styling, tabsets, sub-figure layouts, "
    "per-chunk fig-width/fig-height/fig-dpi, citations, shortcodes, crossref hover previews"
)


class RenderError(RuntimeError):
    """The report could not be executed or rendered; the message says where and why."""


