"""Precision is a declared choice: a config field that enters the result's key, applied by the engine."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hw3 import bonus, experiments, multimnist, registry, train
from hw3.store import config_key, config_name

pytestmark = pytest.mark.usefixtures("one_thread")


def _fit(precision: str):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    history = train.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=8, seed=0, precision=precision)
    return history.step_loss


def test_bf16_autocast_is_applied_and_fp32_is_not():
    fp32, again, bf16 = _fit("fp32"), _fit("fp32"), _fit("bf16")
    assert (fp32 == again).all(), "the same fp32 config must give identical step losses"
    assert not (fp32 == bf16).all(), "precision='bf16' must change the arithmetic (autocast), not be ignored"
    assert abs(fp32 - bf16).max() < 0.1, "bf16 autocast should stay close to fp32 on a tiny net"


def test_unknown_precision_is_refused_before_training():
    with pytest.raises(ValueError, match="precision must be one of"):
        _fit("fp8")


@pytest.mark.parametrize("config", [experiments.FASHION[0], multimnist.SWEEP[0], bonus.RUNS[0]], ids=["fashion", "multimnist", "bonus"])
def test_precision_enters_the_key_and_the_name(config):
    other = dataclasses.replace(config, precision="bf16" if config.precision == "fp32" else "fp32")
    assert config_key("x", config) != config_key("x", other), "fp32 and bf16 results must be different cache entries"
    assert config_name("x", config) != config_name("x", other)


def test_homework_runs_are_fp32_and_the_bonus_is_bf16():
    for exp, config in registry.all_experiments():
        if hasattr(config, "precision"):
            expected = "bf16" if isinstance(config, bonus.BonusConfig) else "fp32"
            assert config.precision == expected, f"{exp.name(config)}: the homework's runs stay fp32; the bonus uses bf16"
