"""The runs each part of the report reads, by the names its prose uses, as typed records (`hw3.report.record`)."""

from __future__ import annotations

from hw3.experiments import bonus, fashion, gallery, multimnist
from hw3.report.record import DataCheck, DeadUnits, DigitAnalysis, FinalTest, Gallery, Run, load


def fashion_run(model: str, optimizer: str, permuted: bool = False) -> Run:
    """A Part 2 run by model ('mlp', 'cnn') and optimiser name ('sgd', 'nesterov', 'adam', 'adam-lr1', ...)."""
    return load(fashion.fashion_config(model, optimizer, permuted))


def runs(configs) -> list[Run]:
    return [load(c) for c in configs]


def by_label(configs) -> dict[str, Run]:
    """Runs keyed by their optimiser label ('SGD(0.01)', ...) or step label."""
    loaded = runs(configs)
    return {r.label: r for r in loaded}


def bonus_steps() -> dict[str, list[Run]]:
    """The bonus ablation: step label → its runs, one per seed, in the ladder's order."""
    steps: dict[str, list[Run]] = {}
    for c in bonus.RUNS:
        steps.setdefault(c.label, []).append(load(c))
    return steps


def bonus_final() -> FinalTest:
    return load(bonus.FINAL)


def multimnist_sweep() -> dict[str, Run]:
    """The MultiMNIST learning-rate runs, keyed by run name."""
    return {multimnist.run_multimnist.name(c): load(c) for c in multimnist.SWEEP}


def single_task_runs() -> dict[str, Run]:
    """The one-digit baselines, keyed by task ('left', 'right')."""
    return {c.task: load(c) for c in multimnist.SINGLE_TASK}


def digit_analysis() -> DigitAnalysis:
    return load(multimnist.ANALYSIS)


def dead_units() -> DeadUnits:
    return load(fashion.DEAD_UNITS)


def samples() -> Gallery:
    """The cached sample images (FashionMNIST, permuted, MultiMNIST)."""
    return load(gallery.GALLERY)


def data_check() -> DataCheck:
    return load(gallery.DATA_CHECK)
