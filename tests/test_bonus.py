"""The bonus optimiser (`bonus._optimizer`): which parameters weight decay touches, and its schedule.

Tested through behaviour: one optimiser step with zero gradients moves a parameter only through
weight decay, so the parameters that shrink are exactly the decayed ones.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from hw3.experiments import bonus
from hw3.nn import models


def decayed_after_one_step(config: bonus.BonusConfig, model: nn.Module) -> dict[str, bool]:
    """name → whether one zero-gradient optimiser step shrank the parameter (it must otherwise stay put)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # nonzero everywhere, so decay shows on every parameter (BN biases start at 0)
            p.copy_(torch.rand(p.shape) + 0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer, _ = bonus._optimizer(config, model, steps_per_epoch=10)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    shrank = {}
    for name, p in model.named_parameters():
        if torch.equal(p, before[name]):
            shrank[name] = False
        else:
            assert (p.abs() < before[name].abs()).all(), f"{name} moved, but not towards zero: only weight decay can act here"
            shrank[name] = True
    return shrank


@pytest.mark.parametrize("optimizer", ["sgd-nesterov", "adamw"])
@pytest.mark.parametrize("batchnorm", [True, False])
def test_weight_decay_touches_exactly_the_weights_with_ndim_above_one(optimizer, batchnorm):
    model = models.BonusCNN(width=2, batchnorm=batchnorm)
    config = bonus.BonusConfig(label="t", width=2, batchnorm=batchnorm, optimizer=optimizer, lr=0.1, weight_decay=0.05)
    shrank = decayed_after_one_step(config, model)
    params = dict(model.named_parameters())
    decayed = sorted(n for n, s in shrank.items() if s)
    expected = sorted(n for n, p in params.items() if p.ndim > 1)
    assert decayed == expected, ("weight decay must shrink the conv/linear weights (ndim > 1) and nothing else "
                                 f"(biases and BatchNorm scales/shifts do not decay); decayed {decayed}")
    assert any("bias" in n for n in params) and any(n not in expected for n in params), "test setup: there are no-decay parameters"
    if batchnorm:
        bn = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
        assert bn and not any(shrank[f"{b}.weight"] or shrank[f"{b}.bias"] for b in bn), "BatchNorm parameters must not decay"


def test_no_weight_decay_means_nothing_moves():
    model = models.BonusCNN(width=2)
    config = bonus.BonusConfig(label="t", width=2, weight_decay=0.0)
    assert not any(decayed_after_one_step(config, model).values()), "with weight_decay=0 a zero-gradient step moves nothing"


def test_decay_amount_is_the_configured_one_for_adamw():
    """AdamW with a zero gradient: p ← p·(1 − lr·wd) on decayed weights."""
    model = models.BonusCNN(width=2)
    weight = model.classifier[-1].weight
    config = bonus.BonusConfig(label="t", width=2, optimizer="adamw", lr=0.1, weight_decay=0.05)
    with torch.no_grad():
        weight.fill_(2.0)
    optimizer, scheduler = bonus._optimizer(config, model, steps_per_epoch=10)
    assert scheduler is None, "the constant schedule has no scheduler"
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(weight, torch.full_like(weight, 2.0 * (1 - 0.1 * 0.05)),
                               msg="AdamW must decay the weights by lr·weight_decay per step")


def test_onecycle_schedule_peaks_at_the_configured_lr_and_spans_the_run():
    model = models.BonusCNN(width=2)
    config = bonus.BonusConfig(label="t", width=2, lr=0.1, schedule="onecycle", epochs=4)
    optimizer, scheduler = bonus._optimizer(config, model, steps_per_epoch=5)
    lrs = []
    for _ in range(4 * 5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(lrs) == pytest.approx(0.1), "one-cycle peaks at config.lr"
    assert lrs.index(max(lrs)) == 4, "one-cycle peaks a quarter of the way through the 20 steps (pct_start=0.25: step 0.25·20 − 1)"
    assert lrs[0] < 0.1 / 10 and lrs[-1] < lrs[0], "one-cycle starts low and ends lower"
    assert all(g["lr"] == optimizer.param_groups[0]["lr"] for g in optimizer.param_groups), "both groups follow the schedule"


@pytest.mark.parametrize("field, value, match", [("optimizer", "rmsprop", "optimizer"), ("schedule", "cosine", "schedule")])
def test_unknown_optimizer_or_schedule_is_a_clear_error(field, value, match):
    config = bonus.BonusConfig(label="t", width=2, **{field: value})
    with pytest.raises(ValueError, match=match):
        bonus._optimizer(config, models.BonusCNN(width=2), steps_per_epoch=1)


def test_sgd_is_nesterov_momentum_0_9_on_every_parameter():
    """Two steps with a constant gradient g: Nesterov momentum 0.9 moves p by lr·(1.9 + 2.71)·g (plain momentum: 2.9)."""
    model = models.BonusCNN(width=2)
    config = bonus.BonusConfig(label="t", width=2, lr=0.01, weight_decay=0.0)
    optimizer, _ = bonus._optimizer(config, model, steps_per_epoch=10)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(2):
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, before[name] - 0.01 * 4.61, msg=lambda m, name=name: f"{name}: not updated by SGD(lr, momentum=0.9, nesterov=True). {m}")


@pytest.mark.parametrize("name, cls", [("bn-cnn", models.BonusCNN), ("wide", models.WideCNN)])
def test_build_model_builds_the_network_the_config_names(name, cls):
    config = bonus.BonusConfig(label="t", model=name, width=4, batchnorm=False, dropout=0.25)
    model = bonus.build_model(config)
    assert type(model) is cls, f"model={name!r} must build {cls.__name__}, got {type(model).__name__}"
    assert min(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)) == 4, "the width must be passed on"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "batchnorm=False must be passed on"
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25], "the dropout must be passed on"


def test_build_model_rejects_an_unknown_model_by_name():
    with pytest.raises(ValueError, match="model must be one of .*'bn-cnn'.*'wide'.*got 'resnet'"):
        bonus.build_model(bonus.BonusConfig(label="t", model="resnet"))


def test_the_late_ablation_steps_each_change_one_thing():
    """The wide step changes only the network, and the smoothing step only the label smoothing, so the
    ablation can credit each to its change alone."""
    step = {c.label: c for c in bonus.ABLATION}
    crop_flip, wide, smoothing = step["crop-flip"], step["wide"], step["smoothing"]
    assert wide.model == "wide" and crop_flip.model == "bn-cnn"
    assert replace(wide, label=crop_flip.label, model=crop_flip.model, width=crop_flip.width) == crop_flip
    assert smoothing.label_smoothing > 0 == wide.label_smoothing
    assert replace(smoothing, label=wide.label, label_smoothing=0.0) == wide


def test_every_step_from_crops_and_flips_on_has_three_seeds():
    seeds = {}
    for c in bonus.RUNS:
        seeds.setdefault(c.label, []).append(c.seed)
    assert [label for label in seeds] == [c.label for c in bonus.ABLATION], "every step is run, in ladder order"
    assert seeds["bn-cnn"] == seeds["onecycle-wd"] == [0]
    assert all(seeds[label] == [0, 1, 2] for label in ("crop-flip", "wide", "smoothing")), seeds
