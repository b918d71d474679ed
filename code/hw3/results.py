"""Read cached results and shape them into the tables and numbers the report quotes.

Every function here only loads from the cache (through the experiment functions, so under
HW3_CACHE_ONLY=1 a missing result is a CacheMissError naming it); nothing trains.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from . import experiments, registry
from .experiments import FashionConfig


def load(config) -> dict:
    """The cached result of the experiment with this config (its runner is looked up by name)."""
    func, registered = registry.lookup(config.name)
    return func(registered)


def fashion(model: str, optimizer_index: int, permuted: bool = False) -> dict:
    """A Part 2 run: `optimizer_index` indexes `experiments.OPTIMIZERS` (0 SGD, 1 Nesterov, 2 Adam 0.01, 3 Adam 1)."""
    return load(FashionConfig(model=model, permuted=permuted, **experiments.OPTIMIZERS[optimizer_index]))


def fashion_runs(model: str) -> dict[str, dict]:
    """The four optimiser runs of one model, keyed by a readable optimiser label."""
    configs = [c for c in experiments.FASHION if c.model == model]
    return {c.optimizer_label: load(c) for c in configs}


def pct(x: float, digits: int = 1) -> str:
    """0.8765 → '87.7%' (for the prose)."""
    return f"{100 * x:.{digits}f}%"


def num(x: float, digits: int = 3) -> str:
    """A loss for the prose; 'NaN' and huge values are written as such."""
    if x is None or math.isnan(x):
        return "NaN"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 else f"{x:.{digits}f}"


def _row(config: FashionConfig, result: dict) -> dict:
    ep = result["history"]["epochs"]
    val_acc = np.asarray(ep["val"]["acc"])
    return {
        "model": config.model.upper() + (" (permuted)" if config.permuted else ""),
        "optimizer": config.optimizer_label,
        "train loss": ep["train"]["loss"][-1],
        "val loss": result["final"]["val"]["loss"],
        "val acc": result["final"]["val"]["acc"],
        "best val acc (epoch)": f"{100 * val_acc.max():.2f}% ({int(val_acc.argmax()) + 1})",
        "test loss": result["final"]["test"]["loss"],
        "test acc": result["final"]["test"]["acc"],
        "time (s)": result["meta"]["wall_time_s"],
    }


def fashion_table(configs=None) -> pd.DataFrame:
    """One row per Part 2 run, after the last epoch."""
    configs = configs or experiments.FASHION + experiments.PERMUTED
    return pd.DataFrame([_row(c, load(c)) for c in configs])


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracies as percentages, losses to 3 decimals, seconds as integers, for display."""
    out = df.copy()
    for col in out.columns:
        if col.endswith("acc") and out[col].dtype.kind == "f":
            out[col] = out[col].map(lambda v: f"{100 * v:.2f}%")
        elif "loss" in col and out[col].dtype.kind == "f":
            out[col] = out[col].map(num)
        elif col.startswith("time") and out[col].dtype.kind == "f":
            out[col] = out[col].map(lambda v: f"{v:.0f}")
    return out


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$")


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table of already formatted cells, kept as written (no re-parsing of '0.100' into '0.1'),
    with numeric columns right-aligned."""
    align = ["right" if all(_NUMBER.match(str(v)) for v in df[c]) else "left" for c in df.columns]
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


def markdown(df: pd.DataFrame):
    """Display a table as Markdown: Quarto and the Quarto-free renderer both turn it into a real table."""
    from IPython.display import Markdown

    return Markdown(markdown_table(format_table(df)))


def load_gallery() -> dict:
    """The cached sample images (FashionMNIST, permuted, MultiMNIST)."""
    from . import gallery

    return gallery.run_gallery(gallery.GALLERY)


def first_epoch_reaching(result: dict, accuracy: float) -> str:
    """First epoch whose validation accuracy is at least `accuracy`, or 'more than N'."""
    accs = result["history"]["epochs"]["val"]["acc"]
    for epoch, acc in enumerate(accs, start=1):
        if acc >= accuracy:
            return str(epoch)
    return f"more than {len(accs)}"


def best_epoch(result: dict, metric: str = "loss") -> int:
    """Epoch (1-based) with the lowest validation loss, or the highest validation accuracy."""
    values = np.asarray(result["history"]["epochs"]["val"][metric], dtype=float)
    return int(np.nanargmin(values) if "loss" in metric else np.nanargmax(values)) + 1


def parameter_table(sizes: dict[str, int]) -> str:
    """Markdown table of parameter counts."""
    df = pd.DataFrame({"model": list(sizes), "parameters": [f"{n:,}" for n in sizes.values()]})
    return markdown_table(df)


def provenance_table() -> str:
    """Markdown table: every cached experiment with its wall time, device, threads and torch version."""
    rows = []
    for name, (func, config) in registry.by_name().items():
        meta = func(config).get("meta", {})
        rows.append({"experiment": name, "time (s)": f"{meta['wall_time_s']:.0f}" if "wall_time_s" in meta else "-",
                     "device": meta.get("device", "-"), "threads": meta.get("threads", "-"), "torch": meta.get("torch", "-")})
    return markdown_table(pd.DataFrame(rows))


def multimnist_sweep() -> dict[str, dict]:
    """The MultiMNIST learning-rate runs, keyed by name."""
    from . import multimnist

    return {c.name: load(c) for c in multimnist.SWEEP}


def multimnist_table(sweep: dict[str, dict]) -> str:
    """Markdown: validation metrics of each learning rate (the test set is not shown for the choice)."""
    rows = []
    for name, r in sweep.items():
        v = r["final"]["val"]
        rows.append({"run": name, "lr": f"{r['config']['lr']:g}", "val acc left": pct(v["acc_left"], 2),
                     "val acc right": pct(v["acc_right"], 2), "val both right": pct(v["acc_all"], 2),
                     "val loss": num(v["loss"]), "time (s)": f"{r['meta']['wall_time_s']:.0f}"})
    return markdown_table(pd.DataFrame(rows))


def multimnist_final_table(result: dict) -> str:
    """Markdown: loss and accuracy per task (and both right) of one run, on train (last epoch), val and test."""
    last = {k: v[-1] for k, v in result["history"]["epochs"]["train"].items()}
    rows = []
    for split, m in (("train (last epoch)", last), ("validation", result["final"]["val"]), ("test", result["final"]["test"])):
        rows.append({"split": split, "loss left": num(m["loss_left"]), "acc left": pct(m["acc_left"], 2),
                     "loss right": num(m["loss_right"]), "acc right": pct(m["acc_right"], 2), "both right": pct(m["acc_all"], 2)})
    return markdown_table(pd.DataFrame(rows))


def bonus_ablation() -> dict[str, dict]:
    from . import bonus

    return {c.name: load(c) for c in bonus.ABLATION}


def bonus_final() -> dict:
    from . import bonus

    return load(bonus.FINAL)


def bonus_table(ablation: dict[str, dict], baseline: dict) -> str:
    """Markdown: the ablation ladder, validation accuracy after each added decision (and TTA)."""
    rows = [{"step": "Part 2 CNN, SGD+Nesterov 0.01, 20 epochs", "val acc": pct(baseline["final"]["val"]["acc"], 2),
             "+ flip TTA": "-", "epochs": 20, "params": f"{baseline['meta']['num_parameters']:,}",
             "time (s)": f"{baseline['meta']['wall_time_s']:.0f}"}]
    for name, r in ablation.items():
        rows.append({"step": name, "val acc": pct(r["final"]["val"]["acc"], 2), "+ flip TTA": pct(r["final"]["val_tta"]["acc"], 2),
                     "epochs": r["config"]["epochs"], "params": f"{r['meta']['num_parameters']:,}",
                     "time (s)": f"{r['meta']['wall_time_s']:.0f}"})
    return markdown_table(pd.DataFrame(rows))


def bonus_verdict(test_acc: float, target: float = 0.935, stretch: float = 0.945) -> str:
    """How the test accuracy compares with the issue's target and stretch goal, in words."""
    if test_acc >= stretch:
        return f"above both our target ({pct(target)}) and our stretch goal ({pct(stretch)})"
    if test_acc >= target:
        return f"above our target of {pct(target)}, below our stretch goal of {pct(stretch)}"
    return f"{100 * (target - test_acc):.1f} points short of our target of {pct(target)}"


def class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Per-class recall from a confusion matrix (rows: true class)."""
    return np.diag(confusion) / confusion.sum(1)


def top_confusions(confusion: np.ndarray, classes, k: int = 5) -> pd.DataFrame:
    """The k most frequent (true, predicted) mistakes."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1][:k]
    pairs = [np.unravel_index(i, off.shape) for i in flat]
    return pd.DataFrame([{"true": classes[t], "predicted": classes[p], "count": int(off[t, p]),
                          "share of true class": pct(off[t, p] / confusion[t].sum(), 1)} for t, p in pairs])


def adam_lr1_gap(from_epoch: int = 1) -> float:
    """Largest difference between the MLP's and the CNN's validation losses under Adam(lr=1), from `from_epoch` on.

    If every hidden unit is dead, each network outputs its last bias whatever the input, and with
    the same batches Adam moves both biases identically: the gap is then at rounding level.
    """
    mlp, cnn = (np.asarray(fashion(m, 3)["history"]["epochs"]["val"]["loss"]) for m in ("mlp", "cnn"))
    return float(np.max(np.abs(mlp - cnn)[from_epoch - 1:]))


def multimnist_analysis() -> dict:
    from . import multimnist

    return load(multimnist.ANALYSIS)


def worst_classes(per_class_acc: dict[str, list[float]], k: int = 3) -> dict[str, str]:
    """For each head, its k worst digits as prose: '9 (94.7%), 5 (96.4%) and 7 (96.8%)'."""
    out = {}
    for head, accs in per_class_acc.items():
        order = np.argsort(accs)[:k]
        items = [f"{d} ({pct(accs[d])})" for d in order]
        out[head] = ", ".join(items[:-1]) + f" and {items[-1]}"
    return out


def join_names(names) -> str:
    """['a', 'b', 'c'] → 'a, b and c' (for prose)."""
    names = [n.lower() if n[0].isupper() and not n.isupper() else n for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def single_task_runs() -> dict[str, dict]:
    """The one-digit baselines, keyed by task ('left', 'right')."""
    from . import multimnist

    return {c.task: load(c) for c in multimnist.SINGLE_TASK}


def sharing_table(multi: dict, single: dict[str, dict]) -> str:
    """Markdown: each digit's accuracy from two single-task networks against the shared two-head one."""
    rows = []
    for task, r in single.items():
        rows.append({"digit": task, "single-task val": pct(r["final"]["val"]["acc"], 2), "shared val": pct(multi["final"]["val"][f"acc_{task}"], 2),
                     "single-task test": pct(r["final"]["test"]["acc"], 2), "shared test": pct(multi["final"]["test"][f"acc_{task}"], 2)})
    params_single = sum(r["meta"]["num_parameters"] for r in single.values())
    time_single = sum(r["meta"]["wall_time_s"] for r in single.values())
    rows.append({"digit": "cost", "single-task val": f"{params_single:,} parameters", "shared val": f"{multi['meta']['num_parameters']:,} parameters",
                 "single-task test": f"{time_single:.0f} s training", "shared test": f"{multi['meta']['wall_time_s']:.0f} s training"})
    return markdown_table(pd.DataFrame(rows))


def cnn_wins() -> str:
    """'k/3': for how many of the three non-diverged optimisers the CNN beats the MLP on both val and test accuracy."""
    wins = 0
    for i in range(3):
        mlp, cnn = fashion("mlp", i)["final"], fashion("cnn", i)["final"]
        wins += all(cnn[s]["acc"] > mlp[s]["acc"] for s in ("val", "test"))
    return f"{wins}/3"
