"""The report's seed-level comparisons, each family built from the run lists (never from typed names).

A *recipe* (a model, an optimiser, a learning rate) is compared with another over its training
seeds: Welch's t-test on the per-seed final accuracies, Holm-corrected over the family that one
statistics table shows (`hw3.report.stats.seed_family`, `hw3.report.tables.statistics_table`). The
per-image McNemar test (`stats.paired`) stays for statements about two particular trained models.

Effects of one factor on another (the permutation's effect on the CNN against the MLP's, Adam's
against SGD for each model) are compared through per-seed differences: seed s of two configurations
of one model starts from the same initial weights and sees the same batch order, so their
difference is paired by seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hw3.experiments import fashion, multimnist_final
from hw3.report import stats
from hw3.report.record import Run
from hw3.report.runs import group_name, optimizer_key

# Within each model: (A, B) by the optimisers' short names in the run lists; a pair whose optimiser
# a model's list lacks is left out for that model.
OPTIMIZER_QUESTIONS = (
    ("nesterov", "sgd"),  # does momentum with look-ahead beat plain SGD at the same rate?
    ("nesterov", "momentum"),  # is it the look-ahead, or the momentum?
    ("adam", "sgd"),  # Adam(0.01) against SGD(0.01)
    ("adam-lr0.001", "adam"),  # is 0.01 too large for Adam?
)
INTERACTIONS = (("adam", "sgd"),)  # is (A − B) different for the CNN and the MLP?
DIVERGED_BELOW = 0.2  # a configuration whose mean validation accuracy is below this did not learn (10 classes)


def _accs(group: Sequence[Run], split: str) -> list[float]:
    return [r.on(split).acc for r in group]


def _by_key(groups: Mapping[fashion.FashionConfig, Sequence[Run]]) -> dict[tuple[str, str, bool], tuple[fashion.FashionConfig, Sequence[Run]]]:
    return {(c.model, optimizer_key(c), c.permuted): (c, g) for c, g in groups.items()}


def learned(group: Sequence[Run]) -> bool:
    """Did this configuration learn (mean final validation accuracy above chance level's neighbourhood)?"""
    return float(np.mean(_accs(group, "val"))) >= DIVERGED_BELOW


def part2_pairs(groups: Mapping[fashion.FashionConfig, Sequence[Run]], split: str = "test") -> list[tuple]:
    """The Part 2 family's comparisons as (name A, per-seed values A, name B, per-seed values B):

    * per model, each of OPTIMIZER_QUESTIONS whose two optimisers it was trained with;
    * per optimiser that learned with both models: CNN against MLP;
    * per model with permuted runs: original against permuted;
    * the interactions: the permutation's drop for the CNN against the MLP's, and each of
      INTERACTIONS' differences for the CNN against the MLP's (per-seed differences).
    """
    table = _by_key(groups)
    values = {k: _accs(g, split) for k, (_, g) in table.items()}
    name = {k: group_name(c) for k, (c, _) in table.items()}
    models = list(dict.fromkeys(k[0] for k in table))
    pairs = []
    for m in models:
        for a, b in OPTIMIZER_QUESTIONS:
            ka, kb = (m, a, False), (m, b, False)
            if ka in table and kb in table:
                pairs.append((name[ka], values[ka], name[kb], values[kb]))
    if {"cnn", "mlp"} <= set(models):
        for (m, opt, permuted), (_, group) in table.items():
            other = ("mlp", opt, permuted)
            if m == "cnn" and not permuted and other in table and learned(group) and learned(table[other][1]):
                pairs.append((name[(m, opt, permuted)], values[(m, opt, permuted)], name[other], values[other]))
    drops = {}
    for (m, opt, permuted) in table:
        if permuted and (m, opt, False) in table:
            k0, k1 = (m, opt, False), (m, opt, True)
            pairs.append((name[k0], values[k0], name[k1], values[k1]))
            drops[m] = (f"{m.upper()}: original{stats.DIFFERENCE}permuted", np.subtract(values[k0], values[k1]))
    if {"cnn", "mlp"} <= set(drops):
        pairs.append((drops["cnn"][0], drops["cnn"][1], drops["mlp"][0], drops["mlp"][1]))
    for a, b in INTERACTIONS:
        diffs = {m: np.subtract(values[(m, a, False)], values[(m, b, False)])
                 for m in ("cnn", "mlp") if (m, a, False) in table and (m, b, False) in table}
        if len(diffs) == 2:
            label = lambda m: f"{m.upper()}: {fashion.optimizer_label(table[(m, a, False)][0])}{stats.DIFFERENCE}{fashion.optimizer_label(table[(m, b, False)][0])}"
            pairs.append((label("cnn"), diffs["cnn"], label("mlp"), diffs["mlp"]))
    return pairs


def part2_family(groups: Mapping[fashion.FashionConfig, Sequence[Run]], split: str = "test", alpha: float = 0.05) -> stats.SeedFamily:
    """Every Part 2 seed-level comparison of `part2_pairs`, Holm-corrected together (one statistics table)."""
    return stats.seed_family(f"Part 2, {split} accuracy over seeds: optimisers, models, permutation", part2_pairs(groups, split), alpha)


def multimnist_pairs(final: Mapping[str, Sequence[Run]]) -> list[tuple]:
    """Part 3's comparisons on the test canvases over seeds, from the final runs (`runs.multimnist_final_runs`):
    the shared network's left against right digit, and for each digit the shared network against the single-task one."""
    heads = [t for t in multimnist_final.TASKS if t != "both"]
    shared = {h: [r.on("test").accuracy(h).value for r in final["both"]] for h in heads}
    single = {h: [r.on("test").acc for r in final[h]] for h in heads if h in final}
    pairs = [(f"shared, {heads[0]}", shared[heads[0]], f"shared, {heads[1]}", shared[heads[1]])]
    pairs += [(f"shared, {h}", shared[h], f"single-task {h}", single[h]) for h in heads if h in single]
    return pairs


def multimnist_family(final: Mapping[str, Sequence[Run]], alpha: float = 0.05) -> stats.SeedFamily:
    return stats.seed_family("Part 3, test accuracy over seeds: the two digits, shared against single-task", multimnist_pairs(final), alpha)


def means(groups: Mapping[fashion.FashionConfig, Sequence[Run]], split: str = "val") -> dict[fashion.FashionConfig, float]:
    """Each configuration's final accuracy on `split`, averaged over its seeds: what a claim such as
    `claims.is_best(fashion.MLP_NESTEROV, compare.means(mlp_groups), names=runs.group_name)` ranks."""
    return {c: float(np.mean(_accs(g, split))) for c, g in groups.items()}
