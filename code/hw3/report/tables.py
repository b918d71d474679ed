"""The report's tables: each function takes typed records (`hw3.report.record`) and returns a Markdown
pipe table as a string (or, for the two tables tests inspect, a DataFrame first)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from hw3.report import stats
from hw3.report.prose import num, pct, short_ci
from hw3.report.record import Run


# ----------------------------------------------------------------------------------------------
# Formatting


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$")


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


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table of already formatted cells, kept as written (no re-parsing of '0.100' into '0.1'),
    with numeric columns right-aligned."""
    align = ["right" if all(_NUMBER.match(str(v)) for v in df[c]) else "left" for c in df.columns]
    return df.to_markdown(index=False, disable_numparse=True, colalign=align)


def _interval(correct: np.ndarray) -> str:
    a = stats.accuracy(correct)
    return f"{100 * a.low:.1f}–{100 * a.high:.1f}"


# ----------------------------------------------------------------------------------------------
# Part 2


def fashion_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per Part 2 run, after the last epoch (numbers unformatted)."""
    return pd.DataFrame([{
        "model": r.config.model.upper() + (" perm." if r.config.permuted else ""),
        "optimizer": r.label.replace("SGD+Nesterov", "Nesterov").replace("(0.01, 0.9)", ""),
        "train loss": r.history.last("train", "loss"),
        "val loss": r.on("val").loss,
        "val acc": r.on("val").acc,
        "test loss": r.on("test").loss,
        "test acc": r.on("test").acc,
        "test 95% CI": _interval(r.on("test").correct()),
        "time (s)": r.meta.wall_time_s,
    } for r in runs])


def fashion_table(runs: list[Run]) -> str:
    return markdown_table(format_table(fashion_frame(runs)))


def splits_table(check) -> str:
    """Each FashionMNIST split's size, batches, and one batch's shape and type."""
    rows = [{"split": k, "images": f"{v['images']:,}", "batches of 64": v["batches"], "x batch": f"{tuple(v['x'][0])} {v['x'][1]}",
             "y batch": f"{tuple(v['y'][0])} {v['y'][1]}"} for k, v in check.fashion.items()]
    return markdown_table(pd.DataFrame(rows))


def parameter_table(sizes: dict[str, int]) -> str:
    df = pd.DataFrame({"model": list(sizes), "parameters": [f"{n:,}" for n in sizes.values()]})
    return markdown_table(df)


def live_units_table(dead) -> str:
    """Per ReLU layer of each diverged model, how many units fire on at least one image of each split."""
    names = {"mlp": ["hidden 1", "hidden 2"], "cnn": ["conv1", "conv2", "conv3"]}
    rows = [{"model": model.upper(), "layer": layer, **{split: "{}/{}".format(*per_split[split][i]) for split in ("train", "val", "test")}}
            for model, per_split in dead.live.items() for i, layer in enumerate(names[model])]
    return markdown_table(pd.DataFrame(rows))


def comparison_table(pairs) -> str:
    """Exact McNemar tests of (name A, correct A, name B, correct B) pairs on the same images.

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
    """Welch's t-tests of (name A, per-seed accuracies A, name B, per-seed accuracies B)."""
    rows = []
    for name_a, a, name_b, b in pairs:
        t = stats.welch(a, b)
        verdict = "within seed noise" if t.p_value >= 0.05 else f"{name_a if t.difference > 0 else name_b} better"
        rows.append({"A": name_a, "B": name_b, "A (mean ± sd)": stats.mean_sd(a).removesuffix(" (sd)"),
                     "B (mean ± sd)": stats.mean_sd(b).removesuffix(" (sd)"), "A − B (points)": f"{100 * t.difference:+.2f}",
                     "seeds": f"{len(a)} + {len(b)}", "p": stats.format_p(t.p_value), "verdict": verdict})
    return markdown_table(pd.DataFrame(rows))


# ----------------------------------------------------------------------------------------------
# Bonus


def _seeds(values) -> str:
    return stats.mean_sd(values).removesuffix(" (sd)") if len(values) > 1 else pct(values[0], 2)


def bonus_table(steps: dict[str, list[Run]], baseline: list[Run]) -> str:
    """Validation accuracy of each ablation step (mean ± sd over seeds where there are several), with
    and without flip averaging, beside the Part 2 CNN's seeds (`baseline`)."""
    def row(label: str, runs: list[Run], val: str, tta: str, epochs: int) -> dict:
        return {"step": label, "seeds": len(runs), "val acc": val, "val acc, flip avg.": tta, "epochs": epochs,
                "params": f"{runs[0].meta.num_parameters:,}"}

    rows = [row("Part 2 CNN", baseline, _seeds([r.on("val").acc for r in baseline]), "-", baseline[0].history.n_epochs)]
    rows += [row(label, runs, _seeds([r.on("val").acc for r in runs]), _seeds([r.on("val_tta").acc for r in runs]),
                 runs[0].config.epochs) for label, runs in steps.items()]
    return markdown_table(pd.DataFrame(rows))


def top_confusions(confusion: np.ndarray, classes, k: int = 5) -> str:
    """The k most frequent (true, predicted) mistakes, and every mistake tied with the k-th (no silent tie-break)."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1]
    cut = off.flat[order[k - 1]]
    pairs = [np.unravel_index(i, off.shape) for i in order if off.flat[i] >= cut and off.flat[i] > 0]
    return markdown_table(pd.DataFrame([{"true": classes[t], "predicted": classes[p], "count": str(int(off[t, p])),
                                         "share of true class": pct(off[t, p] / confusion[t].sum(), 1)} for t, p in pairs]))


# ----------------------------------------------------------------------------------------------
# Part 3


def multimnist_sizes_table(check) -> str:
    """Canvases per MultiMNIST split and the shape and type of one canvas."""
    rows = [{"split": k, "canvases": f"{v['canvases']:,}", "one image": f"{tuple(v['x'][0])} {v['x'][1]}"}
            for k, v in check.multimnist.items()]
    return markdown_table(pd.DataFrame(rows))


def multimnist_table(sweep: dict[str, Run]) -> str:
    """Validation metrics of each learning rate (the test set is not shown for the choice)."""
    rows = []
    for r in sweep.values():
        v = r.on("val")
        rows.append({"lr": f"{r.config.lr:g}", "left": pct(v.accuracy("left").value, 2), "right": pct(v.accuracy("right").value, 2),
                     "both right": pct(v.acc, 2), "both, 95% CI": _interval(v.correct()),
                     "loss": num(v.loss)})
    return markdown_table(pd.DataFrame(rows))


def multimnist_final_table(run: Run) -> str:
    """Loss and accuracy (with 95% intervals) per task, and both right, on train (last epoch), val and test."""
    h = run.history
    rows = [{"split": "train (last epoch)", "loss left": num(h.last("train", "loss_left")), "loss right": num(h.last("train", "loss_right")),
             "acc left": pct(h.last("train", "acc_left"), 2), "acc right": pct(h.last("train", "acc_right"), 2),
             "both right": pct(h.last("train", "acc_all"), 2)}]
    for split, label in (("val", "validation"), ("test", "test")):
        e = run.on(split)
        rows.append({"split": label, "loss left": num(e.head_loss("left")), "loss right": num(e.head_loss("right")),
                     "acc left": short_ci(e.correct("left")), "acc right": short_ci(e.correct("right")),
                     "both right": short_ci(e.correct())})
    return markdown_table(pd.DataFrame(rows))


def sharing_table(multi: Run, single: dict[str, Run]) -> str:
    """Each digit's accuracy from two single-task networks against the shared two-head one."""
    rows = [{"digit": task, "single-task val": pct(r.on("val").acc, 2), "shared val": pct(multi.on("val").accuracy(task).value, 2),
             "single-task test": pct(r.on("test").acc, 2), "shared test": pct(multi.on("test").accuracy(task).value, 2)}
            for task, r in single.items()]
    return markdown_table(pd.DataFrame(rows))


# ----------------------------------------------------------------------------------------------
# Over seeds


def seed_summary_table(groups, label=None) -> str:
    """One row per configuration trained from several seeds: final validation and test accuracy as
    mean ± sd over its seeds (percentage points), and the test mean's 95% t interval.

    `groups` maps a row name to the configuration's runs, one per seed (`runs.seed_groups`).
    """
    rows = []
    for name, group in groups.items():
        val = stats.seed_summary([r.on("val").acc for r in group])
        test = stats.seed_summary([r.on("test").acc for r in group])
        low, high = test.interval
        rows.append({"configuration": name, "seeds": str(test.n), "val acc (mean ± sd)": str(val),
                     "test acc (mean ± sd)": str(test), "test mean, 95% t interval": f"{100 * low:.2f}–{100 * high:.2f}"})
    return markdown_table(pd.DataFrame(rows))


def statistics_table(family: stats.SeedFamily) -> str:
    """The family's comparisons in one table: each side's mean ± sd over seeds, A − B in points,
    Welch's p, Holm's adjusted p and the verdict at the family's alpha (state `family.statement()` once)."""
    rows = [{"A": t.a, "B": t.b, "A (mean ± sd)": str(t.summary_a), "B (mean ± sd)": str(t.summary_b),
             "A − B (points)": f"{100 * t.difference:+.2f}", "seeds": f"{t.summary_a.n} + {t.summary_b.n}",
             "p": stats.format_p(t.p_value), "p (Holm)": stats.format_p(t.p_holm), "verdict": t.verdict(family.alpha)}
            for t in family.tests]
    return markdown_table(pd.DataFrame(rows))


def sharing_seed_table(final) -> str:
    """Part 3's final runs (all 60,000 training canvases) over seeds: each digit's test accuracy from the
    single-task networks against the shared two-head one, and both right (mean ± sd over seeds, points).

    `final` maps a task ('both', 'left', 'right') to its runs, one per seed (`runs.multimnist_final_runs`).
    """
    shared = final["both"]
    rows = [{"digit": task, "seeds": f"{len(final[task])} + {len(shared)}",
             "single-task test": str(stats.seed_summary([r.on("test").acc for r in final[task]])),
             "shared test": str(stats.seed_summary([r.on("test").accuracy(task).value for r in shared]))}
            for task in final if task != "both"]
    rows.append({"digit": "both right", "seeds": str(len(shared)), "single-task test": "-",
                 "shared test": str(stats.seed_summary([r.on("test").acc for r in shared]))})
    return markdown_table(pd.DataFrame(rows))
