"""Issue 28: recipes compared over seeds. The run lists hold every Part 2 configuration (and the two
controls) from each seed, and the Part 3 final runs; the statistics (mean ± sd, t interval, Welch
with Holm over one family), the family's comparisons and the figures with bands are computed from them."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from hw3.experiments import fashion, multimnist_final, registry
from hw3.report import compare, runs, stats, tables
from hw3.report.record import History


# ----------------------------------------------------------------------------------------------
# Run lists


def test_every_part2_configuration_and_both_controls_have_every_seed():
    groups = fashion.SEED_GROUPS
    assert len(fashion.SEEDS) >= 3
    for model, optimizers in (("mlp", fashion.MLP_OPTIMIZERS), ("cnn", fashion.CNN_OPTIMIZERS)):
        for opt in (*optimizers.values(), *fashion.CONTROLS.values()):
            assert fashion.FashionConfig(model=model, **opt) in groups
    assert set(fashion.PERMUTED) <= set(groups)
    for first, group in groups.items():
        assert first.seed == 0 and [c.seed for c in group] == list(fashion.SEEDS)
        assert {replace(c, seed=0) for c in group} == {first}
    assert {"momentum", "adam-lr0.001"} == set(fashion.CONTROLS)


def test_the_registry_lists_every_seeded_run_once_and_the_final_multimnist_runs():
    names = [registry.name_of(r) for r in registry.all_experiments()]
    assert len(names) == len(set(names))
    configs = {c for _, c in registry.all_experiments()}
    assert set(fashion.SEEDED) <= configs and set(multimnist_final.FINAL) <= configs
    assert {c.task for c in multimnist_final.FINAL} == {"both", "left", "right"}
    assert all(len(g) >= 3 for g in multimnist_final.FINAL_GROUPS.values())


def test_group_names_and_optimizer_keys_come_from_the_run_lists():
    assert runs.group_name(fashion.MLP_PERMUTED) == "MLP perm. SGD+Nesterov(0.01, 0.9)"
    for first in fashion.SEED_GROUPS:
        key = runs.optimizer_key(first)
        assert {**fashion.MLP_OPTIMIZERS, **fashion.CNN_OPTIMIZERS, **fashion.CONTROLS}[key]["lr"] == first.lr
    assert runs.optimizer_key(fashion.FashionConfig(model="cnn", **fashion.CONTROLS["momentum"])) == "momentum"
    with pytest.raises(KeyError):
        runs.optimizer_key(fashion.FashionConfig(model="mlp", optimizer="sgd", lr=0.5))


# ----------------------------------------------------------------------------------------------
# Statistics


def test_seed_summary_mean_sd_and_t_interval():
    scipy_stats = pytest.importorskip("scipy.stats")
    values = [0.881, 0.884, 0.879]
    s = stats.seed_summary(values)
    assert s.n == 3 and s.mean == pytest.approx(np.mean(values)) and s.sd == pytest.approx(np.std(values, ddof=1))
    low, high = scipy_stats.t.interval(0.95, 2, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert s.interval == pytest.approx((low, high))
    assert str(s) == "88.13 ± 0.25"
    assert np.isnan(stats.seed_summary([0.9]).sd) and str(stats.seed_summary([0.9])) == "90.00"


@pytest.mark.parametrize("p", [[0.01, 0.04, 0.03, 0.5], [0.2, 0.001, 0.04, 0.04, 0.9], [0.5], [0.03, 0.03]])
def test_holm_is_statsmodels_holm(p):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    assert stats.holm(p) == pytest.approx(list(multitest.multipletests(p, method="holm")[1]))


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_a_family_corrects_over_all_its_comparisons():
    close = ("e", [0.9, 0.905, 0.91], "f", [0.888, 0.893, 0.898])
    alone = stats.seed_family("one", [close])
    together = stats.seed_family("three", [close, ("a", [0.9, 0.91, 0.92], "b", [0.8, 0.81, 0.82]),
                                           ("c", [0.5, 0.6, 0.7], "d", [0.5, 0.61, 0.69])])
    assert alone.tests[0].p_holm == alone.tests[0].p_value == together[("e", "f")].p_value
    assert together[("e", "f")].p_holm > together[("e", "f")].p_value
    assert alone.tests[0].verdict() == "e better" and together[("e", "f")].verdict() == "within seed noise"
    assert "3 comparisons" in together.statement() and "Holm" in together.statement()
    with pytest.raises(KeyError):
        together[("f", "e")]


def test_a_difference_of_effects_is_larger_not_better():
    drops = stats.seed_family("drops", [("CNN: original − permuted", [0.040, 0.045, 0.050], "MLP: original − permuted", [0.001, 0.003, 0.005])])
    assert drops.tests[0].verdict() == "CNN: original − permuted larger"


def test_a_family_refuses_single_seeds_and_repeated_comparisons():
    with pytest.raises(ValueError, match="at least two seeds"):
        stats.seed_family("x", [("a", [0.9], "b", [0.8, 0.81])])
    with pytest.raises(ValueError, match="twice"):
        stats.seed_family("x", [("a", [0.9, 0.91], "b", [0.8, 0.81])] * 2)


def test_statistics_table_shows_raw_and_holm_p():
    family = stats.seed_family("toy", [("a", [0.90, 0.91, 0.92], "b", [0.80, 0.81, 0.82]),
                                       ("e", [0.9, 0.905, 0.91], "f", [0.888, 0.893, 0.898])])
    table = tables.statistics_table(family)
    assert "p (Holm)" in table and "+10.00" in table and "91.00 ± 1.00" in table
    assert table.count("\n") == 3  # header, rule, two rows


# ----------------------------------------------------------------------------------------------
# The Part 2 family, on stand-in runs (so it is checked before the new runs are computed)


def _run(config, val: float, test: float):
    evaluation = lambda acc: SimpleNamespace(acc=acc, accuracy=lambda head=None: SimpleNamespace(value=acc))
    return SimpleNamespace(config=config, on=lambda split: evaluation(val if split == "val" else test))


def _groups(acc_of):
    return {c: [_run(s, *acc_of(s)) for s in group] for c, group in fashion.SEED_GROUPS.items()}


def _acc(config):
    base = {"sgd": 0.85, "nesterov": 0.88, "momentum": 0.885, "adam": 0.86, "adam-lr0.001": 0.875, "adam-lr1": 0.1}[runs.optimizer_key(config)]
    base += 0.02 * (config.model == "cnn") - (0.05 if config.permuted and config.model == "cnn" else 0.0)
    return base + 0.001 * config.seed, base - 0.005 + 0.001 * config.seed


def test_part2_family_is_built_from_the_run_lists():
    pairs = compare.part2_pairs(_groups(_acc))
    names = [(a, b) for a, _, b, _ in pairs]
    name = lambda model, opt, permuted=False: runs.group_name(fashion.FashionConfig(model=model, permuted=permuted,
                                                                                    **{**fashion.OPTIMIZERS, **fashion.CONTROLS}[opt]))
    for model in ("mlp", "cnn"):
        assert (name(model, "nesterov"), name(model, "momentum")) in names  # look-ahead against momentum alone
        assert (name(model, "adam-lr0.001"), name(model, "adam")) in names
        assert (name(model, "nesterov"), name(model, "nesterov", True)) in names
    assert (name("cnn", "sgd"), name("mlp", "sgd")) in names
    assert not any("Adam(1)" in a or "Adam(1)" in b for a, b in names)  # the diverged configuration is no model comparison
    assert ("CNN: original − permuted", "MLP: original − permuted") in names
    assert len(names) == len(set(names)) == 17
    family = compare.part2_family(_groups(_acc))
    drop = family[("CNN: original − permuted", "MLP: original − permuted")]
    assert drop.difference == pytest.approx(0.05) and drop.summary_a.n == len(fashion.SEEDS)


def test_part2_family_follows_the_run_lists_when_a_configuration_is_missing():
    groups = _groups(_acc)
    momentum = {c for c in groups if c.momentum and not c.nesterov}
    names = [(a, b) for a, _, b, _ in compare.part2_pairs({c: g for c, g in groups.items() if c not in momentum})]
    assert not any("momentum" in a or "momentum" in b for a, b in names)
    assert len(names) == 17 - 2 - 1  # the two look-ahead tests, and the CNN-against-MLP test for momentum


def test_multimnist_family_compares_heads_and_sharing():
    def run(task, seed):
        if task == "both":
            return SimpleNamespace(on=lambda split: SimpleNamespace(accuracy=lambda head: SimpleNamespace(value={"left": 0.97, "right": 0.965}[head] + 0.001 * seed)))
        return SimpleNamespace(on=lambda split: SimpleNamespace(acc={"left": 0.98, "right": 0.975}[task] + 0.001 * seed))

    final = {t: [run(t, s) for s in multimnist_final.SEEDS] for t in multimnist_final.TASKS}
    family = compare.multimnist_family(final)
    assert [(t.a, t.b) for t in family.tests] == [("shared, left", "shared, right"), ("shared, left", "single-task left"),
                                                   ("shared, right", "single-task right")]
    assert family[("shared, left", "single-task left")].difference == pytest.approx(-0.01)


# ----------------------------------------------------------------------------------------------
# Figures: mean over seeds, and a min–max band


def _history(offset: float, epochs: int = 4, steps: int = 40):
    ramp = np.linspace(0.5, 0.9, epochs) + offset
    metrics = lambda: {"loss": list(1.5 - ramp), "acc": list(ramp)}
    return History({"train": metrics(), "val": metrics()}, np.linspace(2.0, 0.5, steps) + offset, [0.01] * epochs)


def test_seed_curves_draw_the_mean_and_the_min_max_band():
    import matplotlib

    matplotlib.use("Agg")
    from hw3.report import plots

    offsets = (0.0, 0.01, 0.05)
    group = [SimpleNamespace(history=_history(o)) for o in offsets]
    fig = plots.seed_curves({"A": group, "B": [SimpleNamespace(history=_history(o - 0.1)) for o in offsets]}, "toy", smooth=5)
    ax_acc = fig.axes[2]
    val_lines = [l for l in ax_acc.get_lines() if l.get_linestyle() == "-"]
    assert np.allclose(val_lines[0].get_ydata(), 100 * np.mean([_history(o)("val", "acc") for o in offsets], 0))
    band = ax_acc.collections[0].get_paths()[0].vertices[:, 1]
    expected = 100 * np.array([_history(o)("val", "acc") for o in offsets])
    assert np.isclose(band.min(), expected.min()) and np.isclose(band.max(), expected.max())
    assert "min–max" in ax_acc.get_title()
    matplotlib.pyplot.close(fig)


def test_permuted_seed_comparison_draws_each_groups_mean():
    import matplotlib

    matplotlib.use("Agg")
    from hw3.report import plots

    offsets = (0.0, 0.02, 0.04)
    group = lambda shift: [SimpleNamespace(history=_history(o + shift)) for o in offsets]
    fig = plots.permuted_seed_comparison({"MLP": (group(0.0), group(-0.01)), "CNN": (group(0.05), group(-0.2))})
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4 and len(fig.axes[0].collections) == 4
    assert np.allclose(lines[3].get_ydata(), 100 * np.mean([_history(o - 0.2)("val", "acc") for o in offsets], 0))
    matplotlib.pyplot.close(fig)


def test_sharing_seed_table_reads_each_digit_from_the_shared_net_and_its_own_baseline():
    def both(seed):
        acc = {"left": 0.97 + 0.001 * seed, "right": 0.96 + 0.001 * seed}
        return SimpleNamespace(on=lambda split: SimpleNamespace(acc=0.94, accuracy=lambda head: SimpleNamespace(value=acc[head])))

    single = lambda acc: SimpleNamespace(on=lambda split: SimpleNamespace(acc=acc))
    final = {"both": [both(s) for s in range(3)], "left": [single(a) for a in (0.98, 0.981, 0.982)],
             "right": [single(a) for a in (0.975, 0.976, 0.977)]}
    table = tables.sharing_seed_table(final).splitlines()
    assert "97.10 ± 0.10" in table[2] and "98.10 ± 0.10" in table[2] and table[2].lstrip("| ").startswith("left")
    assert "96.10 ± 0.10" in table[3] and "97.60 ± 0.10" in table[3]
    assert "94.00 ± 0.00" in table[4]


def test_means_rank_configurations_for_claims():
    from hw3.report import claims

    groups = _groups(_acc)
    mlp = {c: g for c, g in groups.items() if c.model == "mlp" and not c.permuted}
    val = compare.means(mlp)
    assert set(val) == set(mlp) and val[fashion.MLP_NESTEROV] == pytest.approx(0.881)
    assert claims.is_best(fashion.FashionConfig(model="mlp", **fashion.CONTROLS["momentum"]), val, names=runs.group_name)
    check = claims.is_best(fashion.MLP_NESTEROV, val, names=runs.group_name)
    assert not check and "MLP SGD+momentum(0.01, 0.9)" in check.detail


def test_row_references_come_from_the_family():
    from hw3.report import prose

    family = compare.part2_family(_groups(_acc))
    mlp_rows = family.rows(lambda t: t.a.startswith("MLP ") and t.b.startswith("MLP "))
    assert all(family.tests[i - 1].a.startswith("MLP") for i in mlp_rows) and len(mlp_rows) == 5
    assert prose.row_span(mlp_rows) == "rows 1, 2, 3, 4 and 14"  # four optimiser questions, then original against permuted
    assert prose.row_span([3, 1, 2]) == "rows 1–3" and prose.row_span([7]) == "row 7"
    with pytest.raises(ValueError):
        prose.row_span([])


@pytest.mark.committed_cache
def test_the_stored_mlp_groups_and_final_multimnist_runs_feed_the_families():
    """On the committed results: every MLP configuration has its seeds, and both families build."""
    mlp = runs.seed_groups([c for c in fashion.SEED_GROUPS if c.model == "mlp"])
    assert all([r.config.seed for r in g] == list(fashion.SEEDS) for g in mlp.values())
    family = compare.part2_family(mlp)
    momentum = runs.group_name(fashion.FashionConfig(model="mlp", **fashion.CONTROLS["momentum"]))
    assert family[(runs.group_name(fashion.MLP_NESTEROV), momentum)].summary_b.n == len(fashion.SEEDS)
    final = runs.multimnist_final_runs()
    assert all(r.history.n_epochs == r.config.epochs and set(r.evaluations) == {"test"} for g in final.values() for r in g)
    assert len(compare.multimnist_family(final)) == 3
