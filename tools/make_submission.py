"""`make submission`: the one file a student hands in, `_output/hw3-submission.zip`.

    python tools/make_submission.py [OUTPUT_DIR]

It holds the rendered notebook and PDF (`report.ipynb`, `report.pdf`), the package's source
(`code/hw3/`) and the result store (`cache/`). Unpacked anywhere, the notebook runs top to bottom
with only the runtime packages installed (torch, torchvision, numpy, matplotlib, joblib, pandas,
scipy, tabulate, tqdm and a Jupyter kernel): its first cell puts `code/` on the import path, and
the store is found beside the package. It reads the data from `$HW3_DATA_DIR` or `./data`, and
fetches it the way torchvision does where there is internet.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "hw3-submission.zip"
README = """EE-411 Homework 3, as submitted.

report.ipynb  the homework: open it in Jupyter or Colab and run all cells
report.pdf    the same, rendered
code/hw3/     the package the notebook's listings come from
cache/        the stored results the notebook reads (RETRAIN = True in its first cell retrains them instead)

Needs Python 3.10+ with torch, torchvision, numpy, matplotlib, joblib, pandas, scipy, tabulate and tqdm.
The datasets (FashionMNIST, MNIST) are read from $HW3_DATA_DIR or ./data, and downloaded there by
torchvision when missing and there is internet.
"""


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def build(out: Path, notebook: Path, pdf: Path) -> Path:
    """Write the archive to `out` (a .zip) from the rendered notebook and PDF and this checkout."""
    for required in (notebook, pdf):
        if not required.is_file():
            raise SystemExit(f"make submission: {required} is missing; run `make report` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(notebook, "report.ipynb")
        archive.write(pdf, "report.pdf")
        archive.writestr("README.txt", README)
        for folder in (ROOT / "code" / "hw3", ROOT / "cache"):
            for path in _files(folder):
                archive.write(path, path.relative_to(ROOT).as_posix())
    partial.replace(out)
    return out


def main(argv: list[str]) -> int:
    output = Path(argv[0]) if argv else ROOT / "_output"
    out = build(output / NAME, output / "report.ipynb", output / "report.pdf")
    print(f"make submission: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
