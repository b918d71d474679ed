"""What the notebook computes now, on the real data, with its own cells: whether it can, the tables
of what it built, and how its results agree with the stored ones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from hw3.experiments import registry
from hw3.nn import data
from hw3.report.record import Evaluation, Run
from hw3.report.tables import markdown_table
from hw3.store import fingerprint

NO_DATA = ("The datasets are not available here, so this cell shows the stored result instead of computing it "
           "(set HW3_DATA_DIR to a folder with FashionMNIST/raw and MNIST/raw, or run with internet).")


def data_ready(names: tuple[str, ...] = ("FashionMNIST", "MNIST")) -> bool:
    """True when every dataset is on disk; a missing one is fetched the way torchvision does (fails in
    seconds offline), else one line says where to put it."""
    for name in names:
        try:
            data.download(name)
        except data.DataError as exc:
            print(f"{name}: {str(exc).splitlines()[0]}")
            return False
    return True


def loaders_table(loaders: Mapping[str, torch.utils.data.DataLoader]) -> str:
    """Each DataLoader's images, batches, and the shape and type of its first batch."""
    rows = []
    for split, loader in loaders.items():
        x, y = next(iter(loader))
        rows.append({"split": split, "images": f"{len(loader.dataset):,}", f"batches of {loader.batch_size}": len(loader),
                     "x batch": f"{tuple(x.shape)} {x.dtype}", "y batch": f"{tuple(y.shape)} {y.dtype}"})
    return markdown_table(pd.DataFrame(rows))


def datasets_table(datasets: Mapping[str, torch.utils.data.TensorDataset]) -> str:
    """Each TensorDataset's size and the shape and type of its first canvas."""
    rows = [{"split": split, "canvases": f"{len(ds):,}", "one image": f"{tuple(ds[0][0].shape)} {ds[0][0].dtype}",
             "labels of the first": f"{int(ds[0][1])}, {int(ds[0][2])}"} for split, ds in datasets.items()]
    return markdown_table(pd.DataFrame(rows))


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Run with `n` torch threads (the stored run's), as a float sum depends on how it is split."""
    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# The largest first difference of a step loss that rounding explains: float32 losses of order 1 differ in
# their last bits (about 1e-7) when only the order of a sum changes; an edit of the code moves them by far more.
ROUNDING = 1e-5


def _where(run: Run) -> str:
    meta = registry.experiment_of(run.config).read_meta(run.config) or {}
    cpu = str(meta.get("machine", {}).get("cpu", "an unrecorded CPU")).encode("ascii", "replace").decode()[:80]
    return f"{cpu} with {run.meta.threads or '?'} thread(s)"


def history_agreement(stored: Run, again: dict) -> str:
    """One sentence: do the retrained epochs reproduce the stored run's first epochs?"""
    fresh = Run.from_stored(stored.name, stored.config, again)  # the retrained output, read like a stored one
    epochs, steps = fresh.history.n_epochs, len(fresh.history.step_loss)
    new, old = fresh.history.step_loss, stored.history.step_loss[:steps]
    new_val = fresh.history("val", "acc"), stored.history("val", "acc")[:epochs]
    if np.array_equal(new, old) and np.array_equal(*new_val):
        return (f"Retrained now: the {steps:,} step losses and the validation accuracy of the first {epochs} epoch(s) of "
                f"{stored.name} are identical, bit for bit, to the stored ones.")
    gaps = np.abs(new - old)
    first = int(np.argmax(gaps > 0))
    if gaps[first] > ROUNDING:
        return (f"MISMATCH: retrained now, the first {epochs} epoch(s) of {stored.name} differ from the stored ones from "
                f"step {first + 1} on, by {gaps[first]:.2g} at once: far more than rounding ({ROUNDING:g}), so the code that "
                "ran here is not the code that computed the stored run (an edited cell?). The stored results below are "
                "the package's; set RETRAIN = True to compute them with this notebook's code.")
    return (f"Retrained now, the first {epochs} epoch(s) of {stored.name}: the first {first} step losses are identical "
            f"to the stored ones; step {first + 1} differs by {gaps[first]:.1e}, a rounding difference (below {ROUNDING:g}), "
            f"and such differences grow as training goes on, to at most {gaps.max():.1e} by the end of the epoch (validation "
            f"accuracy {100 * new_val[0][-1]:.2f}% now, {100 * new_val[1][-1]:.2f}% stored). This machine is "
            f"{fingerprint.cpu_model()}; the stored run used {_where(stored)}. The order in which float sums are rounded "
            "depends on the CPU's vector units and on the thread count; on the same CPU with the same thread count the "
            "histories are identical.")


def evaluation_agreement(name: str, stored: Evaluation, predicted: np.ndarray) -> str:
    """One sentence: does evaluating the stored weights now give the stored predictions?"""
    same = int((np.asarray(predicted) == stored.predicted).all(axis=0).sum()) if np.ndim(predicted) > 1 \
        else int((np.asarray(predicted) == stored.predicted).sum())
    n = stored.predicted.shape[-1]
    if n - same > max(3, n // 2000):  # rounding flips only images within a few ulps of a tie between two classes
        return (f"MISMATCH: evaluated now with the stored weights of {name}, {n - same:,} of the {n:,} predictions differ "
                "from the stored ones: more than rounding near a tie explains, so the code or data used here is not what "
                "computed them (an edited cell?).")
    verdict = f"all {n:,}" if same == n else f"{same:,} of the {n:,} ({n - same} differ, by rounding near a tie)"
    return f"Evaluated now with the stored weights of {name}: the predictions match the stored ones on {verdict} images."
