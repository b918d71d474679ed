"""pandoc and typst: running them, and fixing pandoc's typst math for the typst compiler."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .common import RenderError
from .qmd import INLINE_RE

TYPST_TEXT_WIDTH_IN = (21.0 - 2 * 2.5) / 2.54  # A4 with 2.5 cm margins

def pandoc_path() -> str:
    """The pandoc binary bundled with ``pypandoc-binary`` (falls back to pandoc on PATH)."""
    try:
        import pypandoc

        return pypandoc.get_pandoc_path()
    except Exception:  # pragma: no cover - only without pypandoc-binary
        return "pandoc"


def pandoc_version() -> str:
    out = subprocess.run([pandoc_path(), "--version"], capture_output=True, text=True).stdout
    return out.split("\n", 1)[0].strip()


def run_pandoc(args: list[str], text: str | None = None, cwd: Path | None = None,
               strict: bool = False) -> str:
    """Run pandoc; return its stdout. Raise RenderError on failure (or, when ``strict``, on warnings)."""
    proc = subprocess.run([pandoc_path(), *args], input=text, capture_output=True, text=True,
                          cwd=cwd, encoding="utf-8")
    if proc.returncode != 0:
        raise RenderError(f"pandoc {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    if warnings:
        if strict:
            raise RenderError("pandoc warned:\n" + proc.stderr)
        print(proc.stderr.rstrip(), file=sys.stderr)
    return proc.stdout


# Symbol names that pandoc's TeX-math-to-typst conversion (texmath) still writes but typst 0.14
# (the compiler inside the ``typst`` package) removed: old name -> current name.
TYPST_SYMBOL_RENAMES = {
    "dot.circle.big": "dot.o.big", "plus.circle.big": "plus.o.big", "times.circle.big": "times.o.big",
    "dot.circle": "dot.o", "plus.circle": "plus.o", "minus.circle": "minus.o", "times.circle": "times.o",
    "div.circle": "div.o", "dash.circle": "dash.o", "eq.circle": "eq.o", "ast.circle": "ast.op.o",
    "sect.sq": "inter.sq", "sect": "inter", "angle.l": "chevron.l", "angle.r": "chevron.r",
    "planck.reduce": "planck", "lt.curly": "prec", "gt.curly": "succ",
}
_SYMBOL_RE = re.compile(r"(?<![\w.])(" + "|".join(re.escape(k) for k in TYPST_SYMBOL_RENAMES) + r")(?![\w.])")
_TYPST_RAW_RE = re.compile(r"(`{3,}).*?\1|`[^`\n]*`", re.DOTALL)
_TYPST_MATH_RE = re.compile(r"(?<!\\)\$(?:[^$\\]|\\.)*\$", re.DOTALL)


_SCALED_DELIM_RE = re.compile(r"#scale\(x: \d+%, y: \d+%\)\[(\\.|[^\]\\]+)\]")


def typst_compat(source: str) -> str:
    """Fix pandoc's typst math for the typst compiler we use.

    * Rename the symbols pandoc writes under names typst 0.14 removed (``dot.circle`` -> ``dot.o``).
    * ``\\big(``-style delimiters come out as ``#scale(...)[\\(]`` boxes, which typst sets with
      loose spacing ("sigma ( z )"); the plain delimiter reads better.
    """
    def fix_math(m):
        math = _SYMBOL_RE.sub(lambda s: TYPST_SYMBOL_RENAMES[s.group(1)], m.group(0))
        return _SCALED_DELIM_RE.sub(lambda d: d.group(1), math)

    out, last = [], 0
    for m in _TYPST_RAW_RE.finditer(source):
        out += [_TYPST_MATH_RE.sub(fix_math, source[last:m.start()]), m.group(0)]
        last = m.end()
    out.append(_TYPST_MATH_RE.sub(fix_math, source[last:]))
    return "".join(out)


def compile_typst(source: str, root: str | os.PathLike | None = None) -> bytes:
    """Compile typst source text to PDF bytes (``root``: where images and includes are read)."""
    import typst

    try:
        return typst.compile(source.encode("utf-8"), root=str(root) if root else None, format="pdf")
    except Exception as exc:
        raise RenderError(f"typst failed: {exc}") from exc


def prose_to_typst(qmd_text: str, strict: bool = True) -> str:
    """The report's prose (chunks removed, inline expressions as ``0``) converted to typst by pandoc.

    The reader has ``raw_tex`` off, so LaTeX that is not inside valid ``$...$``/``$$...$$`` math
    comes out as literal text (``\\\\frac``) that :func:`find_raw_latex` sees, instead of being
    dropped silently; ``citations`` is off so ``@fig-x`` stays text. With ``strict``, any pandoc
    warning (e.g. "Could not convert TeX math") is an error.
    """
    text = re.sub(r"\A\s*---\n.*?\n---\s*\n", "", qmd_text, flags=re.DOTALL)
    lines, keep, fence = text.splitlines(), [], None
    for line in lines:
        if fence is None:
            m = re.match(r"^ {0,3}(`{3,})\s*\{python", line)
            if m:
                fence = m.group(1)
                continue
            keep.append(line)
        elif re.match(rf"^ {{0,3}}{fence}`*\s*$", line):
            fence = None
    prose = INLINE_RE.sub("0", "\n".join(keep))
    return typst_compat(run_pandoc(["-f", "markdown-raw_tex-citations", "-t", "typst", "--wrap=none"],
                                   prose, strict=strict))


_RAW_LATEX_RE = re.compile(r"\\\\[A-Za-z]+|\\\$|\\\\[\[\]()]")


def find_raw_latex(typst_source: str) -> list[str]:
    """Snippets of typst source where LaTeX leaked out as text (a broken equation); [] if none.

    Pandoc turns good TeX math into typst math (``frac(``, ``sigma``, ``partial``). LaTeX it could
    not parse, or that was not inside valid math delimiters, is written as escaped text: ``\\\\frac``,
    ``\\\\sigma`` (escaped backslash + command name) and ``\\$`` (a literal dollar, i.e. a ``$`` that
    did not open or close math; pandoc's ``$...$`` needs no space after the opening and before the
    closing ``$``). Comments and raw/code text are ignored.
    """
    src = re.sub(r"/\*.*?\*/", "", typst_source, flags=re.DOTALL)
    src = re.sub(r"(`{3,}).*?\1", "", src, flags=re.DOTALL)
    src = re.sub(r"`[^`\n]*`", "", src)
    src = re.sub(r"#raw\(\"(?:[^\"\\]|\\.)*\"[^)]*\)", "", src)
    hits = []
    for line in src.splitlines():
        line = re.sub(r"(?<![:\\])//.*$", "", line)
        found = list(_RAW_LATEX_RE.finditer(line))
        if found:
            first = found[0]
            hits.append(f"{' '.join(m.group(0) for m in found)} in: ..."
                        f"{line[max(0, first.start() - 60):found[-1].end() + 40]}...")
    return hits


