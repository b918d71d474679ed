"""The training engine on tiny random data: it learns, it records what it says, and it is deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw3.nn import train
from hw3.nn.models import CNN, MLP, MultiMNISTNet


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small tensors, no thread pool


def random_images(n: int, size: int = 28, classes: int = 10, seed: int = 0, heads: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    return (x, *(torch.randint(0, classes, (n,), generator=g) for _ in range(heads)))


def sgd(model, lr=0.05, **kwargs):
    return torch.optim.SGD(model.parameters(), lr=lr, **kwargs)


# --------------------------------------------------------------------------- it learns


@pytest.mark.parametrize("make, epochs", [(MLP, 15)])
def test_fit_memorises_a_tiny_dataset(make, epochs):
    torch.manual_seed(0)
    model = make()
    data = random_images(32)
    before = train.evaluate(model, data).metrics["loss"]
    history = train.fit(model, torch.optim.Adam(model.parameters(), lr=3e-3), data, epochs=epochs, batch_size=8, seed=0)
    assert history.epochs["train"]["loss"][-1] < history.epochs["train"]["loss"][0], "fit must lower the training loss"
    assert train.evaluate(model, data).metrics["loss"] < before, "the trained model must fit its training data better than before"
    assert train.evaluate(model, data).metrics["acc"] > 0.9, "fit must memorise 32 random images"


# --------------------------------------------------------------------------- what fit records


@pytest.mark.parametrize("n, batch_size, epochs", [(50, 16, 3), (32, 8, 2), (5, 64, 2)])
def test_fit_history_shapes(n, batch_size, epochs):
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=16)
    data = random_images(n, size=8)
    evals = {"val": random_images(7, size=8, seed=1), "test": random_images(9, size=8, seed=2)}
    history = train.fit(model, sgd(model), data, epochs=epochs, batch_size=batch_size, seed=0, evals=evals)
    assert isinstance(history, train.History)
    assert isinstance(history.step_loss, np.ndarray)
    assert history.step_loss.shape == (epochs * math.ceil(n / batch_size),)
    assert np.all(np.isfinite(history.step_loss))
    assert set(history.epochs) == {"train", "val", "test"}
    for split, metrics in history.epochs.items():
        assert set(metrics) == {"loss", "acc"}, split
        for name, values in metrics.items():
            assert len(values) == epochs, (split, name)
            assert all(isinstance(v, float) and math.isfinite(v) for v in values)
        assert all(0.0 <= a <= 1.0 for a in metrics["acc"])
    assert history.lr == [0.05] * epochs
    assert set(history.as_dict()) == {"step_loss", "epochs", "lr"}


def test_fit_train_loss_is_the_mean_of_its_steps():
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=16)
    history = train.fit(model, sgd(model), random_images(48, size=8), epochs=2, batch_size=16, seed=0)
    for epoch, steps in enumerate(history.step_loss.reshape(2, 3)):
        assert history.epochs["train"]["loss"][epoch] == pytest.approx(float(steps.mean()), rel=1e-5)


def test_fit_eval_metrics_match_evaluate_after_the_last_epoch():
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=16)
    val = random_images(20, size=8, seed=1)
    history = train.fit(model, sgd(model), random_images(40, size=8), epochs=2, batch_size=16, seed=0, evals={"val": val})
    final = train.evaluate(model, val).metrics
    assert history.epochs["val"]["loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
    assert history.epochs["val"]["acc"][-1] == final["acc"]


def test_fit_calls_progress_once_per_epoch():
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=16)
    seen = []
    train.fit(model, sgd(model), random_images(20, size=8), epochs=3, batch_size=8, seed=0,
              evals={"val": random_images(6, size=8)}, progress=lambda epoch, record: seen.append((epoch, sorted(record))))
    assert seen == [(0, ["train", "val"]), (1, ["train", "val"]), (2, ["train", "val"])]


def test_fit_steps_the_scheduler_after_every_mini_batch():
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=16)
    opt = sgd(model, lr=0.1)
    per_step = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    history = train.fit(model, opt, random_images(20, size=8), epochs=2, batch_size=8, seed=0, scheduler=per_step)
    assert history.lr == pytest.approx([0.1 / 4, 0.1 / 7])  # 3 steps per epoch


def test_fit_applies_augmentation_with_its_own_generator():
    torch.manual_seed(0)
    model = MLP(in_features=64, hidden=16)
    calls = []

    def augment(x, generator):
        assert isinstance(generator, torch.Generator)
        calls.append(x.shape[0])
        return x + 0.01 * torch.randn(x.shape, generator=generator)

    train.fit(model, sgd(model), random_images(20, size=8), epochs=2, batch_size=8, seed=0, augment=augment)
    assert calls == [8, 8, 4, 8, 8, 4]


def test_fit_rejects_non_positive_epochs():
    model = MLP(in_features=64, hidden=16)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, sgd(model), random_images(4, size=8), epochs=0, batch_size=2, seed=0)


# --------------------------------------------------------------------------- determinism


def run_tiny(make, seed: int, data_seed: int = 0):
    torch.manual_seed(seed)
    model = make()
    size = 36 if make is MultiMNISTNet else 28
    heads = ("left", "right") if make is MultiMNISTNet else ("label",)
    data = random_images(24, size=size, seed=data_seed, heads=len(heads))
    val = random_images(8, size=size, seed=data_seed + 1, heads=len(heads))
    history = train.fit(model, sgd(model, momentum=0.9, nesterov=True), data, epochs=2, batch_size=8, seed=seed,
                        evals={"val": val}, heads=heads)
    return history, train.state_dict_numpy(model)


@pytest.mark.parametrize("make", [MLP, CNN, MultiMNISTNet])
def test_same_seed_same_history(make):
    (h1, w1), (h2, w2) = run_tiny(make, seed=3), run_tiny(make, seed=3)
    np.testing.assert_array_equal(h1.step_loss, h2.step_loss)
    assert h1.epochs == h2.epochs
    assert h1.lr == h2.lr
    assert w1.keys() == w2.keys()
    for key in w1:
        np.testing.assert_array_equal(w1[key], w2[key])


def test_different_seed_different_history():
    (h1, _), (h2, _) = run_tiny(MLP, seed=3), run_tiny(MLP, seed=4)
    assert not np.array_equal(h1.step_loss, h2.step_loss)


def test_fit_seed_fixes_the_batch_order():
    """Same initial weights, different `seed` for fit: only the batch order differs, and it shows."""
    histories = []
    for seed in (0, 0, 1):
        torch.manual_seed(0)
        model = MLP(in_features=64, hidden=16)
        histories.append(train.fit(model, sgd(model), random_images(24, size=8), epochs=1, batch_size=8, seed=seed))
    np.testing.assert_array_equal(histories[0].step_loss, histories[1].step_loss)
    assert not np.array_equal(histories[0].step_loss, histories[2].step_loss)


# --------------------------------------------------------------------------- several heads


def test_multi_head_fit_records_per_head_metrics():
    torch.manual_seed(0)
    model = MultiMNISTNet()
    data = random_images(20, size=36, heads=2)
    val = random_images(6, size=36, seed=1, heads=2)
    history = train.fit(model, sgd(model), data, epochs=2, batch_size=8, seed=0, evals={"val": val}, heads=("left", "right"))
    expected = {"loss", "loss_left", "loss_right", "acc_left", "acc_right", "acc_all"}
    assert history.step_loss.shape == (2 * 3,)
    for split in ("train", "val"):
        metrics = history.epochs[split]
        assert set(metrics) == expected, split
        assert all(len(v) == 2 for v in metrics.values())
        for epoch in range(2):
            assert metrics["acc_all"][epoch] <= min(metrics["acc_left"][epoch], metrics["acc_right"][epoch])
            assert metrics["loss"][epoch] == pytest.approx((metrics["loss_left"][epoch] + metrics["loss_right"][epoch]) / 2)


# --------------------------------------------------------------------------- evaluate: metrics and predictions


@pytest.mark.parametrize("make", [MLP, CNN])
def test_evaluate_is_perfect_on_the_models_own_labels(make):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(30, 1, 28, 28)
    predicted = train.evaluate(model, (x, torch.zeros(len(x), dtype=torch.int64)), batch_size=7, keep_predictions=True).predicted
    assert predicted.shape == (30,) and predicted.dtype == np.uint8, "predictions are stored as small integer arrays"
    y = torch.from_numpy(predicted).long()
    result = train.evaluate(model, (x, y), batch_size=7).metrics
    assert result["acc"] == 1.0
    with torch.no_grad():
        model.eval()
        expected_loss = F.cross_entropy(model(x), y).item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    wrong = (y + 1) % 10
    assert train.evaluate(model, (x, wrong)).metrics["acc"] == 0.0


def test_evaluate_multi_head_on_own_labels():
    torch.manual_seed(0)
    model = MultiMNISTNet().eval()
    x = torch.randn(12, 1, 36, 36)
    with torch.no_grad():
        left, right = model(x)
    targets = (left.argmax(1), right.argmax(1))
    result = train.evaluate(model, (x, *targets), heads=("left", "right"), batch_size=5).metrics
    assert result["acc_left"] == result["acc_right"] == result["acc_all"] == 1.0
    swapped = train.evaluate(model, (x, targets[0], (targets[1] + 1) % 10), heads=("left", "right")).metrics
    assert swapped["acc_left"] == 1.0 and swapped["acc_right"] == 0.0 and swapped["acc_all"] == 0.0


def test_evaluate_does_not_depend_on_batch_size_and_restores_mode():
    torch.manual_seed(0)
    model = CNN()
    data = random_images(25)
    model.train()
    a = train.evaluate(model, data, batch_size=4).metrics
    b = train.evaluate(model, data, batch_size=100).metrics
    assert model.training
    assert a["acc"] == b["acc"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_pick_device():
    assert train.pick_device("cpu") == torch.device("cpu")
    assert train.pick_device(None).type in ("cpu", "cuda")
    assert train.pick_device("") == train.pick_device("auto") == train.pick_device(None), "'' and 'auto' mean the default device"
    if not torch.cuda.is_available():
        assert train.pick_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            train.pick_device("cuda")


@pytest.mark.parametrize("tta_flip", [False, True])
def test_one_evaluation_pass_gives_the_metrics_and_the_predictions(tta_flip):
    """keep_predictions adds the predicted classes without changing the metrics, and they are the
    argmax of the (flip-averaged) softmax, computed here separately."""
    torch.manual_seed(0)
    model = MultiMNISTNet().eval()
    x = torch.randn(13, 1, 36, 36)
    targets = (torch.randint(0, 10, (13,)), torch.randint(0, 10, (13,)))
    plain = train.evaluate(model, (x, *targets), heads=("left", "right"), batch_size=4, tta_flip=tta_flip)
    kept = train.evaluate(model, (x, *targets), heads=("left", "right"), batch_size=4, tta_flip=tta_flip, keep_predictions=True)
    assert plain.predicted is None and kept.metrics == plain.metrics
    with torch.no_grad():
        probs = [z.softmax(1) for z in model(x)]
        if tta_flip:
            probs = [(p + f.softmax(1)) / 2 for p, f in zip(probs, model(x.flip(-1)))]
    expected = torch.stack([p.argmax(1) for p in probs]).numpy()
    assert kept.predicted.dtype == np.uint8 and kept.predicted.shape == (2, 13)
    np.testing.assert_array_equal(kept.predicted, expected)
    assert kept.metrics["acc_all"] == pytest.approx(((expected[0] == targets[0].numpy()) & (expected[1] == targets[1].numpy())).mean())
