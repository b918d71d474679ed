"""Figures for the report. Each function takes typed records (`hw3.report.record`) or arrays and returns a matplotlib Figure."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

from hw3.report.record import Run

# One colour per Part 2 optimiser, in every figure, and colours of their own for the two models.
OPTIMIZER_COLORS = ("C0", "C1", "C2", "C3", "C4", "C5")  # in run-list order: SGD, Nesterov, Adam(0.01), Adam(1), then any added
MODEL_COLORS = {"MLP": "tab:purple", "CNN": "tab:brown"}
LOSS_CEILING = 3.0  # above log 10 ≈ 2.30, the loss of a constant guess: spikes beyond it are clipped, not rescaled


def _plain_log_ticks(*axes) -> None:
    """Loss axes on a log scale read as 0.2, 0.5, 1, 2 rather than 2×10⁻¹."""
    for ax in axes:
        ax.yaxis.set_major_locator(FixedLocator([0.05, 0.1, 0.2, 0.5, 1, 2]))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(ScalarFormatter())


def _integer_epochs(*axes) -> None:
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average (valid part only): per-step minibatch losses are too noisy to compare raw."""
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def image_grid(images: np.ndarray, titles: Sequence[str], ncols: int = 8, size: float = 1.3, fontsize: float = 8) -> Figure:
    """A grid of grey images with a title each (`fontsize` in points at the figure's printed size)."""
    n = len(images)
    nrows = -(-n // ncols)
    lines = max((str(t).count("\n") + 1 for t in titles), default=1)  # room for two-line titles
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.03 * fontsize * lines)), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=fontsize)
    return fig


def side_by_side(originals: np.ndarray, permuted: np.ndarray, n: int = 6) -> Figure:
    """Top row: images; bottom row: the same images after the pixel permutation."""
    fig, axes = plt.subplots(2, n, figsize=(n * 1.3, 2.9), layout="constrained")
    for i in range(n):
        for row, imgs in enumerate((originals, permuted)):
            axes[row, i].imshow(imgs[i], cmap="gray_r", vmin=0, vmax=1)
            axes[row, i].axis("off")
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title("permuted", fontsize=8, loc="left")
    return fig


def _fit(ax, values: list[np.ndarray], pad: float = 0.05) -> None:
    """Y limits that contain every plotted value, with a margin."""
    v = np.concatenate([np.asarray(x, dtype=float).ravel() for x in values])
    v = v[np.isfinite(v)]
    lo, hi = v.min(), v.max()
    ax.set_ylim(lo - pad * (hi - lo), hi + pad * (hi - lo))


def multitask_curves(run: Run, heads: Sequence[str] = ("left", "right")) -> Figure:
    """Per-task loss and accuracy per epoch (train dashed, validation solid), plus both-right accuracy."""
    hist = run.history
    epochs = np.arange(1, hist.n_epochs + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for i, head in enumerate(heads):
        for split, ls in (("train", "--"), ("val", "-")):
            ax_loss.plot(epochs, hist(split, f"loss_{head}"), color=f"C{i}", ls=ls, marker="." if split == "val" else None, label=f"{head} ({split})")
            ax_acc.plot(epochs, 100 * hist(split, f"acc_{head}"), color=f"C{i}", ls=ls, marker="." if split == "val" else None, label=f"{head} ({split})")
    ax_acc.plot(epochs, 100 * hist("val", "acc_all"), color="C2", marker=".", label="both right (val)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss per task")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy per task")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _integer_epochs(ax_loss, ax_acc)
    return fig


def _band(ax, x, runs_values: np.ndarray, color, **line) -> None:
    """The mean over seeds (rows) as a line, and the min–max over seeds as a shaded band."""
    values = np.asarray(runs_values, dtype=float)
    ax.fill_between(x, np.nanmin(values, 0), np.nanmax(values, 0), color=color, alpha=0.2, lw=0)
    ax.plot(x, np.nanmean(values, 0), color=color, **line)


def seed_curves(groups: Mapping[str, Sequence[Run]], title: str, smooth: int = 100) -> Figure:
    """One model, several optimisers, over seeds: each line is the mean over a configuration's seeds,
    and the band around it spans the lowest to the highest seed (min–max, not a confidence interval).

    `groups` maps a label (the optimiser) to its runs, one per seed (`runs.seed_groups`); colours
    follow its order. Losses are on a log axis clipped at LOSS_CEILING, so a diverged run's early
    spike does not squeeze the runs that learned. Top: the training loss per step (`smooth`-step moving
    average, then averaged over seeds) and the validation loss per epoch (dots, mean over seeds).
    Bottom: loss and accuracy per epoch, train dashed, validation solid with its band. Configurations
    whose mean final validation accuracy is near chance are drawn only in the 0–100% inset.
    """
    fig = plt.figure(figsize=(11, 5.4), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(1, 1))
    ax_step = fig.add_subplot(grid[0, :])
    ax_loss, ax_acc = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    inset = ax_acc.inset_axes([0.58, 0.08, 0.4, 0.4])
    learned_acc, lowest, clipped = [], np.inf, []
    for color, (label, group) in zip(itertools.cycle(OPTIMIZER_COLORS), groups.items()):
        histories = [r.history for r in group]
        smoothed = np.stack([_smooth(np.asarray(h.step_loss, dtype=float), smooth) for h in histories])
        val_loss = np.stack([h("val", "loss") for h in histories])
        train_loss = np.stack([h("train", "loss") for h in histories])
        epochs = np.arange(1, val_loss.shape[1] + 1)
        steps_per_epoch = len(histories[0].step_loss) // len(epochs)
        mean_smoothed = np.nanmean(smoothed, 0)
        lowest = min(lowest, np.nanmin(mean_smoothed), np.nanmin(train_loss))
        if np.nanmax(mean_smoothed) > LOSS_CEILING:
            clipped.append(label)
        _band(ax_step, np.arange(smoothed.shape[1]) + smooth, smoothed, color, lw=1, label=f"{label} ({len(group)} seeds)")
        ax_step.plot(epochs * steps_per_epoch, np.nanmean(val_loss, 0), color=color, ls="none", marker="o", ms=4)
        ax_loss.plot(epochs, np.nanmean(train_loss, 0), color=color, ls="--", lw=1)
        _band(ax_loss, epochs, val_loss, color, lw=1.5, marker=".")
        accs = {split: 100 * np.stack([h(split, "acc") for h in histories]) for split in ("train", "val")}
        for split, ls in (("train", "--"), ("val", "-")):
            inset.plot(epochs, np.nanmean(accs[split], 0), color=color, ls=ls, lw=1)
        diverged = float(np.mean([h.last("val", "acc") for h in histories])) < 0.2
        if not diverged:
            ax_acc.plot(epochs, np.nanmean(accs["train"], 0), color=color, ls="--", lw=1)
            _band(ax_acc, epochs, accs["val"], color, lw=1.5, marker=".")
            learned_acc += [accs["train"].mean(0), accs["val"]]
    note = f"; {', '.join(clipped)} clipped at {LOSS_CEILING:g}" if clipped else ""
    ax_step.set(xlabel="step (mini-batch)", ylabel="cross-entropy (log scale)", yscale="log", ylim=(0.8 * lowest, LOSS_CEILING),
                title=f"mean over seeds: training loss ({smooth}-step moving average), validation loss (dots){note}")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy (log scale)", yscale="log", ylim=(0.8 * lowest, LOSS_CEILING),
                title="loss per epoch (dashed: train; solid: val, band min–max)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy per epoch, runs that learned (band: min–max)")
    if learned_acc:
        _fit(ax_acc, learned_acc)
    inset.set(ylim=(0, 100), title="all runs, 0–100%", xticks=[], yticks=[0, 50, 100])
    inset.title.set_fontsize(9)
    inset.tick_params(labelsize=8)
    _integer_epochs(ax_loss, ax_acc)
    _plain_log_ticks(ax_step, ax_loss)
    for ax in (ax_step, ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.legend(*ax_step.get_legend_handles_labels(), loc="outside upper center", ncol=min(len(groups), 3), fontsize=9, title=title)
    return fig


def permuted_seed_comparison(pairs: Mapping[str, tuple[Sequence[Run], Sequence[Run]]]) -> Figure:
    """Each model's validation accuracy per epoch on original (solid) and permuted (dashed) pixels,
    the mean over its seeds with a min–max band."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
    for label, (original, permuted) in pairs.items():
        for group, ls, kind in ((original, "-", "original"), (permuted, "--", "permuted")):
            acc = 100 * np.stack([r.history("val", "acc") for r in group])
            _band(ax, np.arange(1, acc.shape[1] + 1), acc, MODEL_COLORS.get(label, "k"), ls=ls, marker=".",
                  label=f"{label}, {kind} ({len(group)} seeds)")
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)",
           title="SGD + Nesterov, original vs permuted (seed mean; band: min–max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _integer_epochs(ax)
    return fig
