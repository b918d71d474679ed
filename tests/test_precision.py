"""Precision is a declared choice: a config field that enters the result's key, applied by the engine."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hw3.experiments import bonus, fashion, multimnist, registry
from hw3.nn import train
from hw3.store.cached import config_key, config_name

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


@pytest.mark.parametrize("config", [fashion.FASHION[0], multimnist.SWEEP[0], bonus.RUNS[0]], ids=["fashion", "multimnist", "bonus"])
def test_precision_enters_the_key_and_the_name(config):
    other = dataclasses.replace(config, precision="bf16" if config.precision == "fp32" else "fp32")
    assert config_key("x", config) != config_key("x", other), "fp32 and bf16 results must be different cache entries"
    assert config_name("x", config) != config_name("x", other)


def test_homework_runs_are_fp32_and_the_bonus_is_bf16():
    for exp, config in registry.all_experiments():
        if hasattr(config, "precision"):
            expected = "bf16" if isinstance(config, bonus.BonusConfig) else "fp32"
            assert config.precision == expected, f"{exp.name(config)}: the homework's runs stay fp32; the bonus uses bf16"


def test_logits_are_at_least_float32_and_float64_stays_float64():
    bf16, f64 = torch.zeros(2, 3, dtype=torch.bfloat16), torch.zeros(2, 3, dtype=torch.float64)
    assert train._as_heads(bf16)[0].dtype == torch.float32, "bf16 logits are lifted to float32 for the loss and softmax"
    assert train._as_heads((f64, f64))[1].dtype == torch.float64, "a float64 model keeps its float64 logits"


def test_per_epoch_validation_uses_the_run_precision():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, y = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    history = train.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1, batch_size=8, seed=0,
                        evals={"val": (x, y)}, precision="bf16")
    assert history.epochs["val"]["loss"][-1] == train.evaluate(model, (x, y), precision="bf16").metrics["loss"], \
        "fit must evaluate each epoch in the run's precision"
    assert history.epochs["val"]["loss"][-1] != train.evaluate(model, (x, y), precision="fp32").metrics["loss"]


def test_predictions_of_a_two_head_model_have_one_row_per_head():
    class TwoHeads(torch.nn.Module):
        def forward(self, x):
            flat = x.flatten(1)
            return flat[:, :3], flat[:, 3:6].flip(1)

    x = torch.randn(5, 1, 2, 3)
    predicted = train.evaluate(TwoHeads(), (x, torch.zeros(len(x), dtype=torch.int64)), keep_predictions=True).predicted
    assert predicted.shape == (2, 5), "a multi-head model's predictions are (heads, N)"
    assert (predicted[0] == x.flatten(1)[:, :3].argmax(1).numpy()).all()
    assert (predicted[1] == x.flatten(1)[:, 3:6].flip(1).argmax(1).numpy()).all()
