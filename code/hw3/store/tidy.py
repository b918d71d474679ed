"""Tidying the cache: is it a folder, which entries does no experiment use, and removing those safely.

Nothing else in the package deletes an entry (`python -m hw3 gc --delete`, after asking). A cache
may be received from anyone, so a symbolic link in it is never followed: a committed `cache/up -> ..`
would otherwise make the rest of the repository look like unused entries.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from hw3.environment import cache_dir
from hw3.store.cached import Experiment, StoreError

FINGERPRINT_EXEMPT = True  # where and how results are kept is not what they are (see hw3.store.fingerprint.closure)


def check_cache_dir() -> Path:
    """The cache folder, or StoreError when HW3_CACHE_DIR names something that is not a folder."""
    root = cache_dir()
    if root.exists() and not root.is_dir():
        raise StoreError(f"the cache folder {root} is not a folder (HW3_CACHE_DIR={os.environ.get('HW3_CACHE_DIR', '')!r}): "
                         "point HW3_CACHE_DIR at a folder, or unset it")
    return root


def garbage(reachable: list[tuple[Experiment, Any]], root: Path | None = None) -> list[Path]:
    """Entry folders under the cache that no registered (experiment, config) owns, and empty prefixes.

    A link in the cache is listed itself, as unused, and never followed.
    """
    root = root or check_cache_dir()
    wanted = {exp.folder(cfg, root) for exp, cfg in reachable}
    if not root.is_dir():
        return []
    unused = []
    for prefix in sorted(root.iterdir()):
        if prefix.is_symlink():
            unused.append(prefix)
        elif prefix.is_dir():
            children = sorted(prefix.iterdir())
            unused += [p for p in children if p.is_symlink() or (p.is_dir() and p not in wanted)]
            if not children:
                unused.append(prefix)
    return unused


def delete_garbage(path: Path, root: Path | None = None) -> None:
    """Remove one path `garbage` listed: a link itself (never what it points to), else a folder inside the cache."""
    root = root or check_cache_dir()
    if path.is_symlink():
        path.unlink()
        return
    if root not in (path.parent, path.parent.parent) or not path.resolve().is_relative_to(root):
        raise StoreError(f"refusing to delete {path}: not an entry of the cache folder {root}")
    shutil.rmtree(path)  # removes links inside the entry, never follows them
