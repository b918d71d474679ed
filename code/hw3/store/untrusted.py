"""Text read from a cache entry (meta.json), made safe to show: a cache may come from anyone.

A CPU name, a library version or a code key in meta.json is free text. Printed raw, escape codes in
it would drive the terminal (clear it, retitle it, hide lines); put raw into the report's markdown,
`<img onerror=...>` would become active HTML and `[x](javascript:...)` a link. Every such text goes
through `terminal` or `markdown` on its way out (`hw3.cli`, `hw3.report.provenance`).
"""

from __future__ import annotations

import html
import unicodedata

FINGERPRINT_EXEMPT = True  # how text is shown is not what a result is (see hw3.store.fingerprint.closure)

# Markdown punctuation that can start a link, code, math, a citation or emphasis, or split a table
# cell, as HTML entities: pandoc turns them back into the same characters in HTML and typst alike.
_MARKDOWN_ENTITIES = {c: f"&#{ord(c)};" for c in "\\`*[]|$@{}~^!"}


def _visible(text: str) -> str:
    """Control and format characters (escape codes, bidi overrides) spelled out as `\\x1b`, `\\u202e`."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Cf") else ch
                   for ch in str(text))


def terminal(text: object) -> str:
    """`text` with nothing a terminal would interpret."""
    return _visible(str(text))


def markdown(text: object) -> str:
    """`text` as inert markdown: no HTML, no links or code or math, no table-cell breaks; reads the same."""
    escaped = html.escape(_visible(str(text)), quote=True)
    return "".join(_MARKDOWN_ENTITIES.get(ch, ch) for ch in escaped)
