"""The executed notebook as pandoc markdown: cells, outputs, figures and captions, cross-references."""

from __future__ import annotations

import base64
import datetime as _dt
import re
import sys
from pathlib import Path

import yaml

from .common import HELPER_KEY, INLINE_MIME
from .engines import TYPST_TEXT_WIDTH_IN, run_pandoc, typst_compat
from .qmd import _ANSI_RE, _prose_spans, split_options

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
                    print(f"render_fallback: warning: unresolved cross-reference @{written}", file=sys.stderr)
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


def add_captions(nb) -> None:
    """Number and caption the notebook's figures and tables as Quarto's ipynb output does.

    After a `fig-` chunk's last image comes a Markdown output "Figure N: caption"; a `tbl-` chunk's
    Markdown table gets "Table N: caption" above it. Chunk options are removed from the code.
    """
    import nbformat

    meta = nb.metadata.get(HELPER_KEY, {})
    defaults = meta.get("defaults", {})
    refs = CrossRefs(nb, defaults)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = refs.resolve(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        opts, code = split_options(cell.source)
        opts = {**defaults, **opts}
        cell.source = code
        label = str(opts.get("label", ""))
        kind = label.split("-", 1)[0]
        cap = opts.get(f"{kind}-cap") if kind in ("fig", "tbl") else None
        if not cap or label not in refs.numbers:
            continue
        text = f'<a id="{label}"></a>{refs.caption(label, kind, str(cap))}'
        outputs = cell.get("outputs", [])
        if kind == "fig":
            last = max((i for i, o in enumerate(outputs) if "image/png" in o.get("data", {})), default=None)
            if last is not None:
                outputs.insert(last + 1, nbformat.v4.new_output("display_data", data={"text/markdown": text}))
        else:
            for out in outputs:
                md = out.get("data", {}).get("text/markdown")
                if md is not None and _PIPE_TABLE_RE.search("".join(md)):
                    out["data"]["text/markdown"] = f"{text}\n\n{''.join(md)}"
                    break


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


