"""The runs each part of the report reads, by the names its prose uses, as typed records (`hw3.report.record`)."""

from __future__ import annotations

from hw3.experiments import bonus, fashion, gallery, multimnist, multimnist_final
from hw3.report.record import DataCheck, DeadUnits, DigitAnalysis, FinalTest, Gallery, Run, load


def fashion_run(model: str, optimizer: str, permuted: bool = False) -> Run:
    """A Part 2 run by model ('mlp', 'cnn') and optimiser name ('sgd', 'nesterov', 'adam', 'adam-lr1', ...)."""
    return load(fashion.fashion_config(model, optimizer, permuted))


def group_name(config: fashion.FashionConfig) -> str:
    """How tables and claims name a Part 2 configuration (any seed): 'MLP SGD+Nesterov(0.01, 0.9)', 'CNN perm. Adam(0.01)'."""
    return f"{config.model.upper()}{' perm.' if config.permuted else ''} {fashion.optimizer_label(config)}"


def optimizer_key(config: fashion.FashionConfig) -> str:
    """The short name of a Part 2 config's optimiser in the run lists ('sgd', 'nesterov', 'momentum', ...)."""
    lists = {"mlp": fashion.MLP_OPTIMIZERS, "cnn": fashion.CNN_OPTIMIZERS}[config.model]
    settings = {"optimizer": config.optimizer, "lr": config.lr, "momentum": config.momentum, "nesterov": config.nesterov}
    defaults = {"momentum": 0.0, "nesterov": False}
    for key, opt in {**lists, **fashion.CONTROLS}.items():
        if {**defaults, **opt} == settings:
            return key
    raise KeyError(f"{fashion.optimizer_label(config)} is in no optimiser list")


def seed_groups(configs=None) -> dict[fashion.FashionConfig, list[Run]]:
    """Part 2 configurations trained from every seed of `fashion.SEEDS`: seed-0 config → its runs, seed order.

    `configs` picks groups by their seed-0 configs (default: every group of `fashion.SEED_GROUPS`, in its order).
    """
    keys = fashion.SEED_GROUPS if configs is None else configs
    return {c: runs(fashion.SEED_GROUPS[c]) for c in keys}


def fashion_group(model: str, optimizer: str, permuted: bool = False) -> list[Run]:
    """A Part 2 configuration's runs, one per seed: by model, optimiser short name (the controls included)."""
    optimizers = {**{"mlp": fashion.MLP_OPTIMIZERS, "cnn": fashion.CNN_OPTIMIZERS}[model], **fashion.CONTROLS}
    if optimizer not in optimizers:
        raise KeyError(f"optimizer must be one of {sorted(optimizers)}, got {optimizer!r}")
    return runs(fashion.SEED_GROUPS[fashion.FashionConfig(model=model, permuted=permuted, **optimizers[optimizer])])


def multimnist_final_runs() -> dict[str, list[Run]]:
    """Part 3's final runs on all 60,000 training canvases: task ('both', 'left', 'right') → its runs, one per seed."""
    return {task: runs(group) for task, group in multimnist_final.FINAL_GROUPS.items()}


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
