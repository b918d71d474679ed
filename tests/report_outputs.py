"""Checks on the rendered report (HTML, PDF, ipynb), shared by the rendered-report tests and the
filter tests. Each function returns what it found wrong (or the facts to compare), so
a test can assert on it and show the offending items.

* `expected_floats(qmd)`: the numbered figures and tables, in the order the report defines them.
* `captions_*`: the ("Figure"|"Table", number, caption start) triples each format shows.
* `external_resources(html)`: scripts, styles, fonts and images a page would fetch from elsewhere.
* `text_in_footer(pdf)`: body text printed in a page's bottom margin (a table running over the
  page number).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

CAPTION_WORDS = 6  # captions are compared on their first words: formats differ in line breaks and markup

_CHUNK_RE = re.compile(r"^```\{python\}\n((?:#\|.*\n)+)", re.MULTILINE)
_CAPTION_RE = re.compile(r"(Figure|Table)[\s\xa0]+(\d+):\s*(.+)", re.DOTALL)


def _words(text: str, n: int = CAPTION_WORDS) -> str:
    text = re.sub(r"<[^>]+>", "", text)  # anchors in the ipynb captions
    text = re.sub(r"[*_`\\]", "", text)  # markdown emphasis, code and escapes
    text = text.replace("\u2019", "'").replace("\u2018", "'")  # pandoc's smart quotes
    return " ".join(text.replace("\xa0", " ").split()[:n])


def float_mismatches(found: list[tuple[str, int, str]], expected: list[tuple[str, int, str]]) -> list[str]:
    """Differences between the numbered captions a format shows and the report's, as readable lines.

    A caption shorter than CAPTION_WORDS is followed by other text in some formats (a PDF table's
    header), so each found caption is cut to the expected caption's number of words.
    """
    problems = [f"{len(found)} numbered captions, expected {len(expected)}"] if len(found) != len(expected) else []
    for (fk, fn, ftext), (ek, en, etext) in zip(found, expected):
        cut = " ".join(ftext.split()[:len(etext.split())])
        if (fk, fn, cut) != (ek, en, etext):
            problems.append(f"shows {fk} {fn}: {cut!r}, expected {ek} {en}: {etext!r}")
    return problems


_HIDDEN_IN_PDF = re.compile(r'^::: \{\.content-hidden when-format="typst"\}\n.*?^:::\n', re.MULTILINE | re.DOTALL)


def shown_in(qmd_text: str, fmt: str) -> str:
    """The document as a format sees it: the PDF (typst) drops `content-hidden when-format="typst"` blocks,
    so its figures and tables are numbered without them."""
    return _HIDDEN_IN_PDF.sub("", qmd_text) if fmt == "pdf" else qmd_text


def expected_floats(qmd_text: str) -> list[tuple[str, int, str]]:
    """("Figure"|"Table", number, caption start) for every `fig-`/`tbl-` chunk with a caption."""
    counters = {"fig": 0, "tbl": 0}
    found = []
    for m in _CHUNK_RE.finditer(qmd_text):
        opts = dict(re.match(r"#\|\s*([\w-]+):\s*(.*)", line).groups() for line in m.group(1).splitlines())
        kind = opts.get("label", "").split("-", 1)[0]
        cap = opts.get(f"{kind}-cap")
        if kind in counters and cap:
            counters[kind] += 1
            found.append(({"fig": "Figure", "tbl": "Table"}[kind], counters[kind], _words(cap.strip().strip('"'))))
    return found


def _parse_captions(texts) -> list[tuple[str, int, str]]:
    out = []
    for text in texts:
        m = _CAPTION_RE.match(" ".join(re.sub(r"<[^>]+>", "", text).split()))
        if m:
            out.append((m.group(1), int(m.group(2)), _words(m.group(3), 2 * CAPTION_WORDS)))
    return out


class _Collector(HTMLParser):
    """Collects figcaption texts, cross-reference links and resource references of a page."""

    RESOURCE_ATTRS = {"script": "src", "img": "src", "source": "src", "iframe": "src", "embed": "src",
                      "video": "src", "audio": "src", "link": "href", "object": "data"}

    def __init__(self):
        super().__init__()
        self.captions: list[str] = []
        self.refs: list[tuple[str, str]] = []
        self.resources: list[str] = []
        self.styles: list[str] = []
        self._caption: list[str] | None = None
        self._ref: tuple[str, list[str]] | None = None
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("figcaption", "caption"):  # Quarto's figures and tables; pandoc's tables
            self._caption = []
        if tag == "a" and "quarto-xref" in (attrs.get("class") or "").split():
            self._ref = (attrs.get("href", ""), [])
        name = self.RESOURCE_ATTRS.get(tag)
        if name and attrs.get(name):
            if tag != "link" or set((attrs.get("rel") or "").split()) & {"stylesheet", "preload", "icon", "modulepreload"}:
                self.resources.append(attrs[name])
        if attrs.get("style"):
            self.styles.append(attrs["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag in ("figcaption", "caption") and self._caption is not None:
            self.captions.append("".join(self._caption))
            self._caption = None
        if tag == "a" and self._ref is not None:
            self.refs.append((self._ref[0].lstrip("#"), " ".join("".join(self._ref[1]).split())))
            self._ref = None
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._caption is not None:
            self._caption.append(data)
        if self._ref is not None:
            self._ref[1].append(data.replace("\xa0", " "))
        if self._in_style:
            self.styles.append(data)


def _collect(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def external_resources(html: str) -> list[str]:
    """Every script, stylesheet, font or image the page would load from outside itself."""
    c = _collect(html)
    urls = c.resources + [u for s in c.styles for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", s)]
    urls += [u for s in c.styles for u in re.findall(r"@import\s+['\"]([^'\"]+)", s)]
    return [u for u in urls if not u.startswith(("data:", "#"))]


def captions_html(html: str) -> list[tuple[str, int, str]]:
    return _parse_captions(_collect(html).captions)


def xrefs_html(html: str) -> list[tuple[str, str]]:
    """(target label, shown text) of every Quarto cross-reference link, e.g. ("fig-x", "Figure 2")."""
    return _collect(html).refs


def captions_ipynb(nb: dict) -> list[tuple[str, int, str]]:
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md is not None:
                texts.append("".join(md))
    return _parse_captions(texts)


def xrefs_ipynb(nb: dict) -> list[tuple[str, str]]:
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    c = _Collector()
    c.feed(md)
    return c.refs


def pdf_pages_text(pdf: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(str(pdf)).pages]


def captions_pdf(pages: list[str]) -> list[tuple[str, int, str]]:
    text = "\n".join(pages)
    # a caption starts a line; its text may run over a few lines, but not into the next caption
    start = r"(?:Figure|Table)[\s\xa0]\d+:"
    return _parse_captions(m.group(0) for m in re.finditer(rf"^{start}[^\n]*(?:\n(?!{start})[^\n]*){{0,2}}", text, re.MULTILINE))


def normalized(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())


def text_in_footer(pdf: Path, margin_pt: float = 20.0) -> list[tuple[int, str]]:
    """(page, text) of body text drawn at or below the page number's baseline + ``margin_pt``.

    The page number is the lowest text of a page whose content fits; text lower than that (or on
    the same line) is content that ran into the footer.
    """
    from pypdf import PdfReader

    hits = []
    for number, page in enumerate(PdfReader(str(pdf)).pages, 1):
        items: list[tuple[float, str]] = []

        def visit(text, cm, tm, font, size, items=items):
            if text.strip():
                items.append((cm[5] + tm[5] * cm[3], text.strip()))

        page.extract_text(visitor_text=visit)
        footer = [y for y, t in items if t == str(number)]
        if not footer:
            continue
        y_footer = min(footer)
        hits += [(number, t) for y, t in items if y < y_footer + margin_pt and t != str(number)]
    return hits


def markdown_table_headers(nb: dict) -> list[list[str]]:
    """The header cells of every pipe table the notebook's outputs show."""
    headers = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            md = "".join(out.get("data", {}).get("text/markdown", ""))
            lines = md.splitlines()
            for i in range(1, len(lines)):
                if re.fullmatch(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*", lines[i]):
                    cells = lines[i - 1].strip().strip("|").split("|")
                    headers.append([re.sub(r"\\(.)", r"\1", c).strip() for c in cells])  # unescape `\+`
    return headers


def load_ipynb(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
