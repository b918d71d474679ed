"""`python -m render_fallback`: render report.qmd without the Quarto CLI."""

from __future__ import annotations

import argparse
import sys

from .common import DEFAULT_REPORT, DEFAULT_TIMEOUT, FORMATS, NOT_REPRODUCED, RenderError
from .engines import pandoc_version
from .write import render

def _summary(written: dict) -> str:
    from importlib.metadata import version

    engines = {"ipynb": "jupytext+nbclient", "html": f"{pandoc_version()}, MathML",
               "pdf": f"{pandoc_version()} -t typst + typst {version('typst')}"}
    files = "; ".join(f"{fmt}: {p} [{engines[fmt]}]" for fmt, p in written.items())
    return (f"render_fallback: Quarto-free path (not `quarto render`; not reproduced: {NOT_REPRODUCED}). "
            f"Wrote {files}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m render_fallback",
        description="Execute report.qmd and render it to ipynb/HTML/PDF without the Quarto CLI.")
    parser.add_argument("input", nargs="?", default=str(DEFAULT_REPORT), help="qmd file (default: %(default)s)")
    parser.add_argument("--to", default=",".join(FORMATS), help="comma-separated formats (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: _output beside the qmd)")
    parser.add_argument("--no-cache-only", dest="cache_only", action="store_false",
                        help="let the report compute missing results (default: HW3_CACHE_ONLY=1)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per cell (default: %(default)s)")
    parser.add_argument("--keep-intermediate", action="store_true",
                        help="also keep the pandoc markdown, typst source and figures in the output folder")
    args = parser.parse_args(argv)
    try:
        written = render(args.input, args.to, args.out, cache_only=args.cache_only, timeout=args.timeout,
                         keep_intermediate=args.keep_intermediate)
    except RenderError as exc:
        print(f"render_fallback: error: {exc}", file=sys.stderr)
        return 1
    print(_summary(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
