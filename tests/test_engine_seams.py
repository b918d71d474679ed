"""The training engine against hand-written references, at every seam where a bug would go unnoticed.

Each test builds a tiny float64 model on CPU and compares what `hw3.nn.train` does with a computation
written out here: the training loop (`fit`), evaluation in eval mode (`evaluate`, `predictions`),
test-time flip averaging, and the objective (label smoothing, several heads).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hw3.nn import train

HEADS2 = ("left", "right")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small tensors, no thread pool


# --------------------------------------------------------------------------- tiny models and data


class Net(nn.Module):
    """Linear → BatchNorm → ReLU → Dropout → Linear on 2×3 images, in float64; one or two heads.

    BatchNorm and dropout make train-mode and eval-mode outputs differ, and the image is not
    mirror-symmetric for the first layer, so flipping it changes the output.
    """

    def __init__(self, heads: int = 1, dropout: float = 0.3, classes: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(dropout))
        self.heads = nn.ModuleList(nn.Linear(8, classes) for _ in range(heads))
        self.double()

    def forward(self, x):
        z = self.body(x)
        out = tuple(h(z) for h in self.heads)
        return out[0] if len(out) == 1 else out


def tiny_model(heads: int = 1, seed: int = 0, dropout: float = 0.3) -> Net:
    torch.manual_seed(seed)
    model = Net(heads, dropout)
    with torch.no_grad():  # running statistics far from the batch statistics: eval mode shows
        bn = model.body[2]
        bn.running_mean.copy_(torch.linspace(-1.0, 1.0, 8, dtype=torch.float64))
        bn.running_var.copy_(torch.linspace(0.5, 3.0, 8, dtype=torch.float64))
    return model


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Linear(6, 4), nn.Linear(6, 4)

    def forward(self, x):
        return self.left(x.flatten(1)), self.right(x.flatten(1))


def flip_sensitive_model(heads: int = 1, seed: int = 0) -> nn.Module:
    """A linear classifier on 2×3 images: its output changes when the image is mirrored."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4)) if heads == 1 else TwoHeads()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.double()


def tiny_data(n: int, heads: int = 1, seed: int = 0, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 3, generator=g, dtype=torch.float64)
    return (x, *(torch.randint(0, classes, (n,), generator=g) for _ in range(heads)))


def assert_same_weights(a: nn.Module, b: nn.Module, what: str) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-12, atol=1e-12,
                                   msg=lambda m, key=key: f"{what}: parameter/buffer {key!r} differs from the reference loop. {m}")


class NoiseAugment:
    """An augmentation that adds noise drawn from the generator it is given, and remembers each draw."""

    def __init__(self):
        self.draws: list[torch.Tensor] = []
        self.generators: list[torch.Generator] = []

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        self.draws.append(noise)
        self.generators.append(gen)
        return x + 0.5 * noise


def reference_fit(model, optimizer, data, *, epochs, batch_size, seed, label_smoothing=0.0, heads=1,
                  augment_draws=None, scheduler=None):
    """The training loop as the homework writes it: shuffle with the seed, forward, loss, zero_grad,
    backward, step, schedule. Returns the loss of every step."""
    order_gen = torch.Generator().manual_seed(seed)
    n = data[0].shape[0]
    losses, step = [], 0
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=order_gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x, targets = data[0][idx], [t[idx] for t in data[1:]]
            if augment_draws is not None:
                x = x + 0.5 * augment_draws[step]
            out = model(x)
            out = (out,) if heads == 1 else out
            loss = sum(F.cross_entropy(z, t, label_smoothing=label_smoothing) for z, t in zip(out, targets)) / heads
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(loss.item())
            step += 1
    return np.array(losses)


# --------------------------------------------------------------------------- fit == the reference loop


def _optimizer(model, kind):
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    return torch.optim.Adam(model.parameters(), lr=0.02)


def _scheduler(optimizer, kind):
    if kind == "per-step":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    return None


@pytest.mark.parametrize("opt_kind, sched_kind, smoothing, augment", [
    ("sgd", None, 0.0, False),
    ("sgd", "per-step", 0.1, True),
    ("adam", None, 0.2, False),
    ("adam", "per-step", 0.0, True),
])
def test_fit_follows_the_reference_training_loop(opt_kind, sched_kind, smoothing, augment):
    """Same seed, same initial weights: fit and the loop written out here end with the same weights and step losses
    (this covers zero_grad, optimizer.step, scheduler stepping, the batch order, label smoothing, train mode
    for dropout/BatchNorm, and the augmented batch being the one trained on)."""
    data, val = tiny_data(22), tiny_data(7, seed=1)
    epochs, batch_size, seed = 3, 5, 7

    model = tiny_model().eval()  # fit must switch to train mode itself
    opt = _optimizer(model, opt_kind)
    scheduler = _scheduler(opt, sched_kind)
    aug = NoiseAugment() if augment else None
    torch.manual_seed(123)  # dropout draws from the global generator: same state for both runs
    history = train.fit(model, opt, data, epochs=epochs, batch_size=batch_size, seed=seed, evals={"val": val},
                        label_smoothing=smoothing, augment=aug, scheduler=scheduler)

    ref = tiny_model()
    ref_opt = _optimizer(ref, opt_kind)
    ref_scheduler = _scheduler(ref_opt, sched_kind)
    torch.manual_seed(123)
    ref_losses = reference_fit(ref, ref_opt, data, epochs=epochs, batch_size=batch_size, seed=seed,
                               label_smoothing=smoothing, augment_draws=aug.draws if aug else None,
                               scheduler=ref_scheduler)

    assert len(history.step_loss) == len(ref_losses) == epochs * math.ceil(22 / batch_size), "one step per mini-batch"
    np.testing.assert_allclose(history.step_loss, ref_losses, rtol=1e-5, atol=1e-6,
                               err_msg="fit's per-step losses differ from the reference training loop")
    assert_same_weights(model, ref, "fit")
    assert history.lr[-1] == pytest.approx(ref_opt.param_groups[0]["lr"]), "the recorded learning rate is the optimizer's at the end of the epoch"
    assert model.training, "fit leaves the model in train mode after evaluating on the validation split"


def test_fit_records_the_learning_rate_after_each_epoch():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    per_step = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    history = train.fit(model, opt, tiny_data(20), epochs=2, batch_size=8, seed=0, scheduler=per_step)
    assert history.lr == pytest.approx([0.1 / 4, 0.1 / 7]), "3 steps per epoch, the scheduler stepped after each one"


def test_fit_multi_head_follows_the_reference_loop():
    """Two heads: fit minimises the mean of the heads' cross-entropies, as the reference loop does."""
    data = tiny_data(18, heads=2)
    model, ref = tiny_model(heads=2), tiny_model(heads=2)
    opt, ref_opt = (torch.optim.SGD(m.parameters(), lr=0.2, momentum=0.5) for m in (model, ref))
    torch.manual_seed(5)
    history = train.fit(model, opt, data, epochs=2, batch_size=4, seed=3, heads=HEADS2, label_smoothing=0.1)
    torch.manual_seed(5)
    ref_losses = reference_fit(ref, ref_opt, data, epochs=2, batch_size=4, seed=3, heads=2, label_smoothing=0.1)
    np.testing.assert_allclose(history.step_loss, ref_losses, rtol=1e-5, atol=1e-6,
                               err_msg="multi-head fit: per-step losses are not the mean of the two heads' losses")
    assert_same_weights(model, ref, "multi-head fit")


def test_fit_augmentation_draws_are_seeded_and_private():
    """The augmentation gets a generator that `seed` fixes: same seed, same draws; other seed, other draws;
    and the global RNG (used by dropout and initialisation) does not change them."""

    def draws(seed, global_seed):
        aug = NoiseAugment()
        model = tiny_model()
        torch.manual_seed(global_seed)
        train.fit(model, torch.optim.SGD(model.parameters(), lr=0.01), tiny_data(12), epochs=2, batch_size=5, seed=seed,
                  augment=aug)
        assert all(isinstance(g, torch.Generator) for g in aug.generators)
        assert len({id(g) for g in aug.generators}) == 1, "one augmentation generator for the whole run"
        return torch.cat([d.flatten() for d in aug.draws])

    a = draws(seed=1, global_seed=0)
    assert torch.equal(a, draws(seed=1, global_seed=99)), "augmentation draws must not depend on the global RNG"
    assert not torch.equal(a, draws(seed=2, global_seed=0)), "augmentation draws must depend on fit's seed"


def test_fit_batch_order_differs_from_epoch_to_epoch_and_covers_every_sample():
    """Every epoch visits every sample once, in a fresh order; the order depends on `seed` only."""
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(4, dtype=torch.float64))

        def forward(self, x):
            seen.append(x[:, 0].clone())
            return self.w.expand(len(x), 4) + 0 * x[:, :1]

    x = torch.arange(10, dtype=torch.float64)[:, None]
    y = torch.zeros(10, dtype=torch.int64)

    def order(seed):
        seen.clear()
        model = Spy()
        train.fit(model, torch.optim.SGD(model.parameters(), lr=0.0), (x, y), epochs=2, batch_size=3, seed=seed)
        return [torch.cat(seen[:4]).long().tolist(), torch.cat(seen[4:]).long().tolist()]

    first, second = order(0)
    assert sorted(first) == sorted(second) == list(range(10)), "an epoch visits every sample exactly once"
    assert first != second, "the batch order is reshuffled every epoch"
    assert order(0) == [first, second], "the batch order is fixed by the seed"
    assert order(1) != [first, second], "another seed gives another batch order"


# --------------------------------------------------------------------------- evaluate (metrics and predictions): eval mode


def eval_mode_reference(model, data, heads=1):
    """Loss and accuracy per head, computed in eval mode without the engine."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(data[0])
    model.train(was)
    out = (out,) if heads == 1 else out
    return [(F.cross_entropy(z, t).item(), (z.argmax(1) == t).double().mean().item(), z.argmax(1)) for z, t in zip(out, data[1:])]


@pytest.mark.parametrize("start_in_train_mode", [True, False])
def test_evaluate_uses_eval_mode_and_restores_the_mode(start_in_train_mode):
    model = tiny_model()
    data = tiny_data(40, seed=2)
    (loss, acc, _), = eval_mode_reference(model, data)
    model.train(start_in_train_mode)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    result = train.evaluate(model, data, batch_size=16).metrics
    assert result["loss"] == pytest.approx(loss, rel=1e-6), "evaluate's loss must be the eval-mode loss (BatchNorm running stats, no dropout)"
    assert result["acc"] == pytest.approx(acc), "evaluate's accuracy must be the eval-mode accuracy"
    assert model.training == start_in_train_mode, "evaluate must restore the model's train/eval mode"
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"evaluate must not change the model ({key} changed)"


def test_evaluate_multi_head_uses_eval_mode():
    model = tiny_model(heads=2)
    data = tiny_data(30, heads=2, seed=4)
    (l_loss, l_acc, l_pred), (r_loss, r_acc, r_pred) = eval_mode_reference(model, data, heads=2)
    model.train()
    result = train.evaluate(model, data, heads=HEADS2, batch_size=7).metrics
    assert model.training, "evaluate must restore train mode"
    assert result["loss_left"] == pytest.approx(l_loss, rel=1e-6), "left head loss in eval mode"
    assert result["loss_right"] == pytest.approx(r_loss, rel=1e-6), "right head loss in eval mode"
    assert result["loss"] == pytest.approx((l_loss + r_loss) / 2, rel=1e-6), "multi-head loss is the mean of the heads' losses"
    assert result["acc_left"] == pytest.approx(l_acc) and result["acc_right"] == pytest.approx(r_acc), "per-head accuracy in eval mode"
    both = ((l_pred == data[1]) & (r_pred == data[2])).double().mean().item()
    assert result["acc_all"] == pytest.approx(both), "acc_all counts the samples with every head right"


@pytest.mark.parametrize("start_in_train_mode", [True, False])
def test_predictions_use_eval_mode_and_restore_the_mode(start_in_train_mode):
    model = tiny_model()
    x = tiny_data(40, seed=3)[0]
    (_, _, expected), = eval_mode_reference(model, (x, torch.zeros(40, dtype=torch.int64)))
    model.train(start_in_train_mode)
    torch.manual_seed(0)
    got = train.evaluate(model, (x, torch.zeros(len(x), dtype=torch.int64)), batch_size=16, keep_predictions=True).predicted
    assert isinstance(got, np.ndarray) and got.shape == (40,)
    np.testing.assert_array_equal(got, expected.numpy(), err_msg="predictions must be the eval-mode argmax")
    assert model.training == start_in_train_mode, "predictions must restore the model's train/eval mode"


@pytest.mark.parametrize("use", ["evaluate", "predictions"])
def test_a_conv_model_evaluated_before_training_can_still_be_trained(use):
    """evaluate puts conv nets in channels-last layout inside inference mode; the weights must stay
    ordinary tensors, or the model can never be trained afterwards (e.g. accuracy before training, then fit)."""
    from hw3.nn.models import CNN

    torch.manual_seed(0)
    model = CNN()
    x, y = torch.randn(6, 1, 28, 28), torch.arange(6)
    if use == "evaluate":
        train.evaluate(model, (x, y))
    else:
        train.evaluate(model, (x, torch.zeros(len(x), dtype=torch.int64)), keep_predictions=True).predicted
    assert not any(p.is_inference() for p in model.parameters()), f"{use} turned the weights into inference tensors"
    history = train.fit(model, torch.optim.SGD(model.parameters(), lr=0.01), (x, y), epochs=1, batch_size=3, seed=0)
    assert np.isfinite(history.step_loss).all(), f"the model must train after {use}"


# --------------------------------------------------------------------------- test-time flip averaging


def flip_averaged(model, x):
    """Hand computation: the mean of the softmax of each image and of its left-right mirror image, in eval mode."""
    model.eval()
    with torch.no_grad():
        out, mirrored = model(x), model(x.flip(-1))
    out = (out,) if isinstance(out, torch.Tensor) else out
    mirrored = (mirrored,) if isinstance(mirrored, torch.Tensor) else mirrored
    return [(a.softmax(1) + b.softmax(1)) / 2 for a, b in zip(out, mirrored)]


def test_flip_averaging_in_evaluate_and_predictions_matches_the_hand_computation():
    model = flip_sensitive_model()
    x, y = tiny_data(64, seed=5)
    (p,) = flip_averaged(model, x)
    with torch.no_grad():
        plain = model(x).argmax(1)
    assert (p.argmax(1) != plain).any(), "test setup: flip averaging must change some predictions of this model"

    got = train.evaluate(model, (x, torch.zeros(len(x), dtype=torch.int64)), batch_size=10, tta_flip=True, keep_predictions=True).predicted
    np.testing.assert_array_equal(got, p.argmax(1).numpy(),
                                  err_msg="predictions(tta_flip=True) must average the image's softmax with its mirror image's")
    result = train.evaluate(model, (x, y), batch_size=10, tta_flip=True).metrics
    loss = F.nll_loss(p.log(), y).item()
    assert result["loss"] == pytest.approx(loss, rel=1e-6), "evaluate(tta_flip=True): loss of the image/mirror-averaged probabilities"
    assert result["acc"] == pytest.approx((p.argmax(1) == y).double().mean().item()), "evaluate(tta_flip=True): accuracy of the averaged probabilities"
    plain_result = train.evaluate(model, (x, y), batch_size=10).metrics
    assert plain_result["loss"] != pytest.approx(result["loss"]), "tta_flip=False must not average with the mirror"


def test_flip_averaging_multi_head():
    model = flip_sensitive_model(heads=2)
    data = tiny_data(50, heads=2, seed=6)
    p_left, p_right = flip_averaged(model, data[0])
    result = train.evaluate(model, data, heads=HEADS2, batch_size=9, tta_flip=True).metrics
    assert result["loss_left"] == pytest.approx(F.nll_loss(p_left.log(), data[1]).item(), rel=1e-6), "left head: flip-averaged loss"
    assert result["loss_right"] == pytest.approx(F.nll_loss(p_right.log(), data[2]).item(), rel=1e-6), "right head: flip-averaged loss"


def test_flip_averaged_predictions_are_mirror_invariant():
    """Averaging an image with its mirror gives the same answer for the mirror image (on a flip-sensitive model)."""
    model = flip_sensitive_model()
    x = tiny_data(64, seed=7)[0]
    with torch.no_grad():
        model.eval()
        assert (model(x).argmax(1) != model(x.flip(-1)).argmax(1)).any(), "test setup: the model must be flip-sensitive"
    np.testing.assert_array_equal(train.evaluate(model, (x, torch.zeros(len(x), dtype=torch.int64)), tta_flip=True, keep_predictions=True).predicted, train.evaluate(model, (x.flip(-1), torch.zeros(len(x.flip(-1)), dtype=torch.int64)), tta_flip=True, keep_predictions=True).predicted,
                                  err_msg="flip-averaged predictions must not change when the image is mirrored")


# --------------------------------------------------------------------------- the objective


def smoothed_cross_entropy(z, t, eps):
    """Label smoothing by hand: the target puts 1 − ε on the label and ε/K on every class."""
    logp = z.log_softmax(1)
    k = z.shape[1]
    return -((1 - eps) * logp.gather(1, t[:, None])[:, 0] + eps / k * logp.sum(1)).mean()


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_objective_label_smoothing_changes_the_loss_by_the_analytic_amount(eps):
    g = torch.Generator().manual_seed(0)
    z, t = torch.randn(9, 5, generator=g, dtype=torch.float64), torch.randint(0, 5, (9,), generator=g)
    plain = train.Objective()((z,), (t,))
    smoothed = train.Objective(label_smoothing=eps)((z,), (t,))
    logp = z.log_softmax(1)
    # smoothed − plain = ε · mean over samples of (−mean_k log p_k + log p_label)
    expected_change = eps * (-logp.mean(1) + logp.gather(1, t[:, None])[:, 0]).mean()
    assert plain.item() == pytest.approx(F.cross_entropy(z, t).item(), rel=1e-12), "without smoothing: plain cross-entropy"
    assert (smoothed - plain).item() == pytest.approx(expected_change.item(), rel=1e-9), \
        f"label smoothing {eps} must change the loss by ε·(mean uniform NLL − NLL of the label)"
    assert smoothed.item() == pytest.approx(smoothed_cross_entropy(z, t, eps).item(), rel=1e-12)


def test_objective_multi_head_is_the_mean_of_the_heads_losses():
    g = torch.Generator().manual_seed(1)
    zs = [torch.randn(6, 10, generator=g, dtype=torch.float64) for _ in range(3)]
    ts = [torch.randint(0, 10, (6,), generator=g) for _ in range(3)]
    two = train.Objective(HEADS2)(tuple(zs[:2]), ts[:2])
    each = [F.cross_entropy(z, t).item() for z, t in zip(zs, ts)]
    assert each[0] != pytest.approx(each[1]), "test setup: the heads' losses differ"
    assert two.item() == pytest.approx((each[0] + each[1]) / 2, rel=1e-12), "two heads: the objective is the mean of the two cross-entropies"
    three = train.Objective(("a", "b", "c"))(tuple(zs), ts)
    assert three.item() == pytest.approx(sum(each) / 3, rel=1e-12), "three heads: the mean of the three cross-entropies"
    smoothed = train.Objective(HEADS2, label_smoothing=0.2)(tuple(zs[:2]), ts[:2])
    expected = (smoothed_cross_entropy(zs[0], ts[0], 0.2) + smoothed_cross_entropy(zs[1], ts[1], 0.2)) / 2
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-12), "label smoothing applies to every head"


def test_objective_is_differentiable_through_every_head():
    zs = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    ts = [torch.tensor([0, 1, 2, 0])] * 2
    train.Objective(HEADS2)(tuple(zs), ts).backward()
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in zs), "every head gets a gradient"


@pytest.mark.parametrize("n_logits, n_targets", [(1, 2), (2, 1), (3, 3), (1, 1)])
def test_objective_rejects_a_wrong_number_of_heads(n_logits, n_targets):
    z, t = torch.randn(4, 10), torch.randint(0, 10, (4,))
    with pytest.raises(ValueError, match="expected 2 heads"):
        train.Objective(HEADS2)((z,) * n_logits, (t,) * n_targets)


# --------------------------------------------------------------------------- memory layout (a speed choice, not a numerical one)


class LayoutSpy(nn.Module):
    """Records whether each input arrives in channels-last layout; optionally has a convolution."""

    def __init__(self, conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1) if conv else None
        self.lin = nn.Linear(2 * 4 * 4, 3)
        self.channels_last_inputs: list[bool] = []

    def forward(self, x):
        self.channels_last_inputs.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return self.lin((self.conv(x) if self.conv is not None else x).flatten(1))


@pytest.mark.parametrize("conv", [True, False])
def test_conv_nets_train_and_evaluate_in_channels_last_layout(conv):
    """Conv nets get channels-last weights and inputs in fit and evaluate; other nets are left alone."""
    torch.manual_seed(0)
    model = LayoutSpy(conv)
    x, y = torch.randn(8, 2, 4, 4), torch.randint(0, 3, (8,))  # two channels: with one, both layouts coincide
    train.fit(model, torch.optim.SGD(model.parameters(), lr=0.01), (x, y), epochs=1, batch_size=4, seed=0, evals={"val": (x, y)})
    train.evaluate(model, (x, torch.zeros(len(x), dtype=torch.int64)), batch_size=4, keep_predictions=True).predicted
    assert model.channels_last_inputs == [conv] * 5, "conv nets see channels-last batches (fit, evaluate, predictions), others their input as is"
    if conv:
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) and not model.conv.weight.is_contiguous(), \
            "fit puts a conv net's weights in channels-last layout"
