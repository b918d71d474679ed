"""Read cached results and shape them into the tables and numbers the report quotes.

Every function here only loads from the cache (through the experiment functions, so under
HW3_CACHE_ONLY=1 a missing result is a CacheMissError naming it); nothing trains.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from hw3.experiments import fashion, registry
from hw3.report import stats
from hw3.experiments.fashion import FashionConfig


def load(config) -> dict:
    """The current cached result of the experiment with this config (found by config, never by position)."""
    exp, registered = registry.find(config)
    return exp(registered)


def fashion(model: str, optimizer: str, permuted: bool = False) -> dict:
    """A Part 2 run by model ('mlp', 'cnn') and optimiser name ('sgd', 'nesterov', 'adam', 'adam-lr1')."""
    return load(fashion.fashion_config(model, optimizer, permuted))


def fashion_runs(model: str) -> dict[str, dict]:
    """The four optimiser runs of one model, keyed by a readable optimiser label."""
    configs = [c for c in fashion.FASHION if c.model == model]
    return {c.optimizer_label: load(c) for c in configs}


def correct(result: dict, split: str = "test", head: int | None = None, key: str | None = None) -> np.ndarray:
    """Per-image correctness (boolean array) of a cached run on `split`, from its stored predictions."""
    predicted, truth = result["predictions"][key or split], result["labels"][split]
    if head is not None:
        predicted, truth = predicted[head], truth[head]
    return predicted == truth


def acc_ci(result: dict, split: str = "test", head: int | None = None, key: str | None = None) -> str:
    """'87.65% [87.0, 88.3]': accuracy with its 95% Wilson interval."""
    return str(stats.accuracy(correct(result, split, head, key)))


def compare(a: dict, b: dict, name_a: str, name_b: str, split: str = "test", head_a=None, head_b=None) -> str:
    """Prose verdict of an exact McNemar test between two runs on the same images."""
    return stats.paired(correct(a, split, head_a), correct(b, split, head_b)).verdict(name_a, name_b)


def pct(x: float, digits: int = 1) -> str:
    """0.8765 → '87.7%' (for the prose)."""
    return f"{100 * x:.{digits}f}%"


def num(x: float, digits: int = 3) -> str:
    """A loss for the prose; 'NaN' and huge values are written as such."""
    if x is None or math.isnan(x):
        return "NaN"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 else f"{x:.{digits}f}"


def _row(config: FashionConfig, result: dict) -> dict:
    return {
        "model": config.model.upper() + (" perm." if config.permuted else ""),
        "optimizer": config.optimizer_label.replace("SGD+Nesterov", "Nesterov").replace("(0.01, 0.9)", ""),
        "train loss": result["history"]["epochs"]["train"]["loss"][-1],
        "val loss": result["final"]["val"]["loss"],
        "val acc": result["final"]["val"]["acc"],
        "test loss": result["final"]["test"]["loss"],
        "test acc": result["final"]["test"]["acc"],
        "test 95% CI": "{:.1f}–{:.1f}".format(*(100 * v for v in _interval(result))),
        "time (s)": result["meta"]["wall_time_s"],
    }


def _interval(result: dict, split: str = "test") -> tuple[float, float]:
    a = stats.accuracy(correct(result, split))
    return a.low, a.high


def fashion_table(configs=None) -> pd.DataFrame:
    """One row per Part 2 run, after the last epoch."""
    configs = configs or fashion.FASHION + fashion.PERMUTED
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
    from hw3.experiments import gallery

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
    """Markdown table: every cached experiment with its training time, machine and library versions."""
    rows = []
    for name, (exp, config) in registry.by_name().items():
        meta = exp.read_meta(config) or {}
        machine = meta.get("machine", {})
        rows.append({"experiment": name, "time (s)": f"{meta['wall_time_s']:.0f}" if "wall_time_s" in meta else "-",
                     "device": machine.get("gpu") or machine.get("device", "-"),
                     "CPU (ISA)": f"{machine.get('cpu', '-')} ({machine.get('isa', '-')})",
                     "torch": meta.get("versions", {}).get("torch", "-")})
    return markdown_table(pd.DataFrame(rows))


def compute_hours() -> float:
    """Total recorded wall time of every cached experiment, in hours (runs in parallel take less elapsed time)."""
    return sum((exp.read_meta(config) or {}).get("wall_time_s", 0.0) for exp, config in registry.all_experiments()) / 3600


def _machine_label(meta: dict | None) -> str:
    m = (meta or {}).get("machine", {})
    return f"{m.get('cpu', '?')} ({m.get('isa', '?')}, bf16 units: {m.get('bf16_units', '?')})"


def machine_of(config) -> str:
    """The machine that computed the entry of `config`, as 'CPU (ISA, bf16 units)'."""
    exp, registered = registry.find(config)
    return _machine_label(exp.read_meta(registered))


def machines() -> list[str]:
    """The distinct machines the cache was computed on, as 'CPU (ISA, bf16 units)'."""
    seen = []
    for exp, config in registry.all_experiments():
        label = _machine_label(exp.read_meta(config))
        if label not in seen:
            seen.append(label)
    return seen


def multimnist_sweep() -> dict[str, dict]:
    """The MultiMNIST learning-rate runs, keyed by run name."""
    from hw3.experiments import multimnist

    return {multimnist.run_multimnist.name(c): load(c) for c in multimnist.SWEEP}


def multimnist_table(sweep: dict[str, dict]) -> str:
    """Markdown: validation metrics of each learning rate (the test set is not shown for the choice)."""
    rows = []
    for name, r in sweep.items():
        v = r["final"]["val"]
        rows.append({"lr": f"{r['config']['lr']:g}", "left": pct(v["acc_left"], 2),
                     "right": pct(v["acc_right"], 2), "both right": pct(v["acc_all"], 2),
                     "both, 95% CI": "{:.1f}–{:.1f}".format(*(100 * x for x in _both_interval(r, "val"))),
                     "loss": num(v["loss"]), "time (s)": f"{r['meta']['wall_time_s']:.0f}"})
    return markdown_table(pd.DataFrame(rows))


def both_right(result: dict, split: str) -> np.ndarray:
    """Per-canvas: are both digits right?"""
    return (result["predictions"][split] == result["labels"][split]).all(0)


def _both_interval(result: dict, split: str) -> tuple[float, float]:
    a = stats.accuracy(both_right(result, split))
    return a.low, a.high


def multimnist_final_table(result: dict) -> str:
    """Markdown: loss and accuracy (with 95% intervals) per task, and both right, on train (last epoch), val and test."""
    last = {k: v[-1] for k, v in result["history"]["epochs"]["train"].items()}
    rows = [{"split": "train (last epoch)", "loss left": num(last["loss_left"]), "loss right": num(last["loss_right"]),
             "acc left": pct(last["acc_left"], 2), "acc right": pct(last["acc_right"], 2), "both right": pct(last["acc_all"], 2)}]
    for split, label in (("val", "validation"), ("test", "test")):
        metrics = result["final"][split]
        rows.append({"split": label, "loss left": num(metrics["loss_left"]), "loss right": num(metrics["loss_right"]),
                     "acc left": short_ci(correct(result, split, 0)), "acc right": short_ci(correct(result, split, 1)),
                     "both right": short_ci(both_right(result, split))})
    return markdown_table(pd.DataFrame(rows))


def top_multimnist_confusions(result: dict, split: str = "test", k: int = 3) -> dict[str, list[tuple[int, int, int]]]:
    """Each head's k most frequent (true, predicted, count) mistakes."""
    out = {}
    for h, head in enumerate(("left", "right")):
        cm = np.zeros((10, 10), dtype=np.int64)
        np.add.at(cm, (result["labels"][split][h], result["predictions"][split][h]), 1)
        np.fill_diagonal(cm, 0)
        flat = np.argsort(cm, axis=None, kind="stable")[::-1][:k]
        out[head] = [(int(t), int(p), int(cm[t, p])) for t, p in (np.unravel_index(i, cm.shape) for i in flat)]
    return out


def bonus_runs() -> dict[str, list[dict]]:
    """The bonus ablation: step label → its runs (one per seed)."""
    from hw3.experiments import bonus

    steps: dict[str, list[dict]] = {}
    for c in bonus.RUNS:
        steps.setdefault(c.label, []).append(load(c))
    return steps


def bonus_final() -> dict:
    from hw3.experiments import bonus

    return load(bonus.FINAL)


def short_ci(correct_images: np.ndarray) -> str:
    """'98.12 (97.8–98.4)': accuracy in % with its 95% Wilson interval, narrow enough for a table cell."""
    a = stats.accuracy(correct_images)
    return f"{100 * a.value:.2f} ({100 * a.low:.1f}–{100 * a.high:.1f})"


def comparison_table(pairs) -> str:
    """Markdown: exact McNemar tests of (name A, correct A, name B, correct B) pairs on the same images.

    One row per pair: the images only A gets right, only B gets right, A − B in points, p, verdict.
    """
    rows = []
    for name_a, a, name_b, b in pairs:
        t = stats.paired(a, b)
        verdict = "within noise" if t.p_value >= 0.05 else f"{name_a if t.difference > 0 else name_b} better"
        rows.append({"A": name_a, "B": name_b, "only A right": str(t.a_only), "only B right": str(t.b_only),
                     "A − B (points)": f"{100 * t.difference:+.2f}", "p": stats.format_p(t.p_value), "verdict": verdict})
    return markdown_table(pd.DataFrame(rows))


def seed_table(pairs) -> str:
    """Markdown: Welch's t-tests of (name A, per-seed accuracies A, name B, per-seed accuracies B)."""
    rows = []
    for name_a, a, name_b, b in pairs:
        t = stats.welch(a, b)
        verdict = "within seed noise" if t.p_value >= 0.05 else f"{name_a if t.difference > 0 else name_b} better"
        rows.append({"A": name_a, "B": name_b, "A (mean ± sd)": stats.mean_sd(a).removesuffix(" (sd)"),
                     "B (mean ± sd)": stats.mean_sd(b).removesuffix(" (sd)"), "A − B (points)": f"{100 * t.difference:+.2f}",
                     "seeds": f"{len(a)} + {len(b)}", "p": stats.format_p(t.p_value), "verdict": verdict})
    return markdown_table(pd.DataFrame(rows))


def _seeds(values) -> str:
    return stats.mean_sd(values).removesuffix(" (sd)") if len(values) > 1 else pct(values[0], 2)


def bonus_table(steps: dict[str, list[dict]], baseline: dict) -> str:
    """Markdown: validation accuracy of each ablation step (mean ± sd over seeds where there are several),
    with and without flip averaging, and the mean wall time of a run."""
    def row(label: str, runs: list[dict], seeds: int, val: str, tta: str, epochs: int) -> dict:
        meta = [r["meta"] for r in runs]
        return {"step": label, "seeds": seeds, "val acc": val, "val acc, flip avg.": tta, "epochs": epochs,
                "params": f"{meta[0]['num_parameters']:,}", "min/run": f"{np.mean([m['wall_time_s'] for m in meta]) / 60:.1f}"}

    rows = [row("Part 2 CNN", [baseline], 1, pct(baseline["final"]["val"]["acc"], 2), "-",
                len(baseline["history"]["epochs"]["val"]["acc"]))]
    for label, runs in steps.items():
        rows.append(row(label, runs, len(runs), _seeds([x["final"]["val"]["acc"] for x in runs]),
                        _seeds([x["final"]["val_tta"]["acc"] for x in runs]), runs[0]["config"]["epochs"]))
    return markdown_table(pd.DataFrame(rows))


def class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Per-class recall from a confusion matrix (rows: true class)."""
    return np.diag(confusion) / confusion.sum(1)


def top_confusions(confusion: np.ndarray, classes, k: int = 5) -> pd.DataFrame:
    """The k most frequent (true, predicted) mistakes, and every mistake tied with the k-th (no silent tie-break)."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1]
    cut = off.flat[order[k - 1]]
    flat = [i for i in order if off.flat[i] >= cut and off.flat[i] > 0]
    pairs = [np.unravel_index(i, off.shape) for i in flat]
    return pd.DataFrame([{"true": classes[t], "predicted": classes[p], "count": int(off[t, p]),
                          "share of true class": pct(off[t, p] / confusion[t].sum(), 1)} for t, p in pairs])


def multimnist_analysis() -> dict:
    from hw3.experiments import multimnist

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


def dead_units() -> dict:
    """Live ReLU units of the Adam(lr=1) runs per layer and split, and the classes they predict."""
    return load(fashion.DEAD_UNITS)


def single_task_runs() -> dict[str, dict]:
    """The one-digit baselines, keyed by task ('left', 'right')."""
    from hw3.experiments import multimnist

    return {c.task: load(c) for c in multimnist.SINGLE_TASK}


def sharing_table(multi: dict, single: dict[str, dict]) -> str:
    """Markdown: each digit's accuracy from two single-task networks against the shared two-head one."""
    rows = []
    for task, r in single.items():
        rows.append({"digit": task, "single-task val": pct(r["final"]["val"]["acc"], 2), "shared val": pct(multi["final"]["val"][f"acc_{task}"], 2),
                     "single-task test": pct(r["final"]["test"]["acc"], 2), "shared test": pct(multi["final"]["test"][f"acc_{task}"], 2)})
    return markdown_table(pd.DataFrame(rows))


def data_check() -> dict:
    from hw3.experiments import gallery

    return load(gallery.DATA_CHECK)


def splits_table(check: dict) -> str:
    """Markdown: each FashionMNIST split's size, batches, and one batch's shape and type."""
    rows = [{"split": k, "images": f"{v['images']:,}", "batches of 64": v["batches"], "x batch": f"{tuple(v['x'][0])} {v['x'][1]}",
             "y batch": f"{tuple(v['y'][0])} {v['y'][1]}"} for k, v in check["fashion"].items()]
    return markdown_table(pd.DataFrame(rows))


def live_units_table(dead: dict) -> str:
    """Markdown: per ReLU layer of each Adam(lr=1) model, how many units fire on at least one image of each split."""
    names = {"mlp": ["hidden 1", "hidden 2"], "cnn": ["conv1", "conv2", "conv3"]}
    rows = []
    for model, per_split in dead.items():
        for i, layer in enumerate(names[model]):
            rows.append({"model": model.upper(), "layer": layer,
                         **{split: "{}/{}".format(*per_split[split][i]) for split in ("train", "val", "test")}})
    return markdown_table(pd.DataFrame(rows))


def multimnist_sizes_table(check: dict) -> str:
    """Markdown: canvases per MultiMNIST split and the shape and type of one canvas."""
    rows = [{"split": k, "canvases": f"{v['canvases']:,}", "one image": f"{tuple(v['x'][0])} {v['x'][1]}"} for k, v in check.items()]
    return markdown_table(pd.DataFrame(rows))
