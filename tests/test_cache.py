"""The experiment cache: hits and misses, cache-only mode, stale and corrupt entries, interrupted runs,
and results that load on a machine without CUDA (or torch)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

import cached_toy
from cached_toy import MutableConfig, ToyConfig, calls, slow_toy, toy
from hw3 import cache, models, train
from hw3.cache import REFRESH_COMMAND, CacheMissError


@pytest.fixture
def call_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "calls.txt"
    monkeypatch.setenv("HW3_TOY_CALLS", str(log))
    return log


@pytest.fixture
def cache_only(monkeypatch):
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")


def entry_dir(exp: cache.Experiment, config) -> Path:
    func_id, args_id = exp._call_id(config)
    return Path(exp.memorized.store_backend.location) / func_id / args_id


def func_code_file(exp: cache.Experiment) -> Path:
    return Path(exp.memorized.store_backend.location) / exp.memorized.func_id / "func_code.py"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes: to prove that nothing was deleted or rewritten."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- normal mode


def test_private_cache_is_used(private_cache):
    assert cache.cache_dir() == private_cache.resolve()
    assert not cache.cache_only()
    toy(ToyConfig())
    assert entry_dir(toy, ToyConfig()).is_relative_to(private_cache.resolve())
    assert (entry_dir(toy, ToyConfig()) / "output.pkl").is_file()


def test_normal_mode_computes_then_hits(call_log):
    config = ToyConfig(a=3, b="y")
    assert toy.status(config) == "missing"
    first = toy(config)
    assert first["a"] == 3 and first["b"] == "y"
    assert calls(call_log) == ["toy-3-y"]
    assert toy.status(config) == "cached"
    second = toy(config)
    assert second == first  # same random number: it came from the cache
    assert calls(call_log) == ["toy-3-y"]


def test_different_configs_are_different_entries(call_log):
    toy(ToyConfig(a=1))
    toy(ToyConfig(a=2))
    toy(ToyConfig(a=1))
    assert calls(call_log) == ["toy-1-x", "toy-2-x"]
    assert entry_dir(toy, ToyConfig(a=1)) != entry_dir(toy, ToyConfig(a=2))


def test_clear_forgets_one_entry(call_log):
    toy(ToyConfig(a=1))
    toy(ToyConfig(a=2))
    toy.clear(ToyConfig(a=1))
    toy.clear(ToyConfig(a=9))  # clearing a missing entry is a no-op
    assert toy.status(ToyConfig(a=1)) == "missing"
    assert toy.status(ToyConfig(a=2)) == "cached"
    toy(ToyConfig(a=1))
    assert calls(call_log) == ["toy-1-x", "toy-2-x", "toy-1-x"]


@pytest.mark.parametrize("bad", [MutableConfig(), {"a": 1}, 1, "toy", ToyConfig])
def test_non_frozen_dataclass_config_is_a_type_error(bad, call_log):
    with pytest.raises(TypeError, match="frozen dataclass"):
        toy(bad)
    assert calls(call_log) == []


def test_non_frozen_config_is_a_type_error_in_cache_only_mode_too(cache_only):
    with pytest.raises(TypeError, match="frozen dataclass"):
        toy(MutableConfig())


def test_switching_cache_dir_in_one_process_stores_complete_entries(tmp_path, monkeypatch, call_log):
    """joblib remembers checked functions per process: the entry in a second cache folder must still be complete."""
    toy(ToyConfig(a=40))  # first folder
    second = tmp_path / "second-cache"
    monkeypatch.setenv("HW3_CACHE_DIR", str(second))
    assert toy.status(ToyConfig(a=40)) == "missing"
    toy(ToyConfig(a=40))
    assert calls(call_log) == ["toy-40-x", "toy-40-x"]
    assert func_code_file(toy).is_relative_to(second.resolve()) and func_code_file(toy).is_file()
    assert toy.status(ToyConfig(a=40)) == "cached"
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    assert toy(ToyConfig(a=40))["a"] == 40


def test_experiment_name():
    assert cache.experiment_name(ToyConfig(a=4, b="z")) == "toy-4-z"
    assert cache.experiment_name(MutableConfig(a=2)) == "MutableConfig(a=2)"


def test_decorated_function_keeps_its_identity():
    assert toy.__name__ == "toy"
    assert toy.__wrapped__ is toy.func


# --------------------------------------------------------------------------- cache-only mode


def test_cache_only_miss_names_experiment_and_command(cache_only, call_log):
    with pytest.raises(CacheMissError) as info:
        toy(ToyConfig(a=5, b="q"))
    message = str(info.value)
    assert "toy-5-q" in message
    assert REFRESH_COMMAND in message and "make results" in message
    assert "not in the cache" in message
    assert calls(call_log) == []


def test_cache_only_returns_a_hit(monkeypatch, call_log):
    config = ToyConfig(a=6)
    computed = toy(config)
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    assert cache.cache_only()
    assert toy(config) == computed
    assert toy.load_cached(config) == computed
    assert calls(call_log) == ["toy-6-x"]


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("true", True), ("", False), ("0", False),
                                             ("false", False), ("No", False)])
def test_cache_only_flag_parsing(monkeypatch, value, expected):
    monkeypatch.setenv("HW3_CACHE_ONLY", value)
    assert cache.cache_only() is expected


# --------------------------------------------------------------------------- corrupt entries


def corrupt(exp, config) -> Path:
    out = entry_dir(exp, config) / "output.pkl"
    assert out.is_file()
    out.write_bytes(b"\x00garbage, not a pickle\xff" * 7)
    return out


def test_corrupt_entry_is_recomputed_in_normal_mode(call_log, caplog):
    config = ToyConfig(a=7)
    first = toy(config)
    corrupt(toy, config)
    again = toy(config)
    assert "Exception while loading results" in caplog.text  # joblib logs the bad entry, then recomputes it
    assert again["a"] == 7 and again["noise"] != first["noise"]
    assert calls(call_log) == ["toy-7-x", "toy-7-x"]
    assert toy(config) == again  # and the rewritten entry is good
    assert calls(call_log) == ["toy-7-x", "toy-7-x"]


def test_corrupt_entry_is_a_clear_miss_in_cache_only_mode(monkeypatch, call_log, private_cache):
    config = ToyConfig(a=8)
    toy(config)
    corrupt(toy, config)
    before = snapshot(private_cache)
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="toy-8-x") as info:
        toy(config)
    assert "unreadable" in str(info.value)
    assert "python -m hw3 run toy-8-x" in str(info.value)
    assert calls(call_log) == ["toy-8-x"]  # not recomputed
    assert snapshot(private_cache) == before  # and left as it was


def test_truncated_entry_is_a_clear_miss_in_cache_only_mode(monkeypatch):
    config = ToyConfig(a=10)
    toy(config)
    out = entry_dir(toy, config) / "output.pkl"
    out.write_bytes(out.read_bytes()[:10])
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="toy-10-x.*unreadable"):
        toy(config)


# --------------------------------------------------------------------------- status and stale entries


def make_stale(exp) -> None:
    code = func_code_file(exp)
    text = code.read_text()
    first_line, body = text.split("\n", 1)
    assert first_line.startswith("# first line:")
    code.write_text(first_line + "\n" + body.replace("return", "return  # edited since", 1))


def test_status_missing_cached_stale(private_cache):
    config = ToyConfig(a=11)
    assert toy.status(config) == "missing"  # function never run: no func_code.py
    toy(ToyConfig(a=12))
    assert toy.status(config) == "missing"  # function known, this config not
    toy(config)
    assert toy.status(config) == "cached"
    make_stale(toy)
    before = snapshot(private_cache)
    assert toy.status(config) == "stale"
    assert toy.status(ToyConfig(a=12)) == "stale"
    assert toy.status(ToyConfig(a=13)) == "stale"
    assert snapshot(private_cache) == before  # asking never clears anything


def test_stale_entry_in_cache_only_mode_is_a_miss_and_deletes_nothing(monkeypatch, call_log, private_cache):
    config = ToyConfig(a=14)
    toy(config)
    make_stale(toy)
    before = snapshot(private_cache)
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    assert toy.status(config) == "stale"
    with pytest.raises(CacheMissError) as info:
        toy(config)
    assert "toy-14-x" in str(info.value) and "stale" in str(info.value) and "make results" in str(info.value)
    with pytest.raises(CacheMissError, match="stale"):
        toy.load_cached(config)
    assert calls(call_log) == ["toy-14-x"]
    assert snapshot(private_cache) == before


def test_cache_only_miss_deletes_nothing(monkeypatch, private_cache):
    toy(ToyConfig(a=15))
    before = snapshot(private_cache)
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError):
        toy(ToyConfig(a=16))
    assert toy.status(ToyConfig(a=16)) == "missing"
    assert snapshot(private_cache) == before


# --------------------------------------------------------------------------- interrupted run


def test_killed_run_leaves_no_entry_and_rerun_computes_only_it(tmp_path, subprocess_env, call_log, private_cache):
    done, killed = ToyConfig(a=20), ToyConfig(a=21)
    slow_toy(done)  # no sleep: cached before the interrupted run
    assert calls(call_log) == ["toy-20-x"]

    marker = tmp_path / "started"
    env = dict(subprocess_env, HW3_TOY_MARKER=str(marker), HW3_TOY_SLEEP="120", HW3_TOY_CALLS=str(call_log))
    code = "import cached_toy; cached_toy.slow_toy(cached_toy.ToyConfig(a=21)); print('finished')"
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60  # hang guard only
        while not marker.exists():
            assert child.poll() is None, f"child exited early: {child.communicate()}"
            assert time.monotonic() < deadline, "the child never started the experiment"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert b"finished" not in out
    assert calls(call_log) == ["toy-20-x", "toy-21-x"]  # it did start

    assert not (entry_dir(slow_toy, killed) / "output.pkl").exists()
    leftovers = [p for p in private_cache.rglob("output.pkl*") if p.parent != entry_dir(slow_toy, done)]
    assert leftovers == []  # not even a temporary half-written file
    assert slow_toy.status(killed) == "missing"
    assert slow_toy.status(done) == "cached"

    call_log.unlink()
    slow_toy(done)
    result = slow_toy(killed)
    assert result["a"] == 21
    assert calls(call_log) == ["toy-21-x"]  # exactly the interrupted one was computed
    assert slow_toy.status(killed) == "cached"


def test_cache_written_by_another_process_is_a_hit(subprocess_env, call_log):
    env = dict(subprocess_env, HW3_TOY_CALLS=str(call_log))
    code = "import cached_toy; print(cached_toy.toy(cached_toy.ToyConfig(a=30))['noise'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert calls(call_log) == ["toy-30-x"]
    assert toy(ToyConfig(a=30))["noise"] == pytest.approx(float(out.stdout))
    assert calls(call_log) == ["toy-30-x"]


# --------------------------------------------------------------------------- the real experiments, never run


def test_every_registered_experiment_has_a_frozen_config_and_unique_name():
    from hw3 import registry

    runs = registry.all_experiments()
    names = [config.name for _, config in runs]
    assert len(names) == len(set(names))
    for exp, config in runs:
        assert isinstance(exp, cache.Experiment)
        assert dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen
        hash(config)


def test_every_registered_experiment_is_a_miss_in_an_empty_cache(cache_only):
    """In cache-only mode nothing trains: an empty cache turns every experiment into a named CacheMissError."""
    from hw3 import registry

    for exp, config in registry.all_experiments():
        assert exp.status(config) == "missing"
        with pytest.raises(CacheMissError, match=config.name):
            exp(config)


# --------------------------------------------------------------------------- results are plain CPU data


PLAIN_LEAVES = (str, bytes, int, float, bool, type(None), np.ndarray, np.generic)


def assert_plain_cpu(obj, path: str = "result") -> None:
    """Fail on any torch.Tensor (or other non-plain object) anywhere in a result's dicts, lists and tuples."""
    assert not isinstance(obj, torch.Tensor), f"{path} is a torch.Tensor on {obj.device}: results must hold numpy/python data"
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert isinstance(key, (str, int)), f"{path} has a key of type {type(key).__name__}"
            assert_plain_cpu(value, f"{path}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            assert_plain_cpu(value, f"{path}[{i}]")
    else:
        assert isinstance(obj, PLAIN_LEAVES), f"{path} is a {type(obj).__module__}.{type(obj).__name__}"
        if isinstance(obj, np.ndarray):
            assert obj.dtype != object, f"{path} is an object array"


def tiny_result() -> dict:
    started = time.perf_counter()
    torch.manual_seed(0)
    model = models.MLP(in_features=16, hidden=8, num_classes=3)
    x, y = torch.randn(40, 16), torch.randint(0, 3, (40,))
    history = train.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=16, seed=0,
                        evals={"val": (x[:10], y[:10])})
    return {
        "history": history.as_dict(),
        "final": {"val": train.evaluate(model, (x[:10], y[:10]))},
        "state_dict": train.state_dict_numpy(model),
        "meta": train.run_metadata(torch.device("cpu"), started, models.count_parameters(model)),
    }


def test_assert_plain_cpu_catches_tensors():
    with pytest.raises(AssertionError, match=r"result\['a'\]\[1\] is a torch.Tensor"):
        assert_plain_cpu({"a": [1.0, torch.zeros(2)]})
    with pytest.raises(AssertionError):
        assert_plain_cpu({"a": {"b": (np.zeros(2), torch.tensor(1.0))}})
    assert_plain_cpu({"a": [1.0, np.zeros(2), "s", None, {"b": (2, np.float32(1))}]})


def test_training_outputs_are_plain_cpu_data():
    result = tiny_result()
    assert_plain_cpu(result["history"])
    assert_plain_cpu(result["state_dict"])
    assert_plain_cpu(result["meta"])
    assert_plain_cpu(result)
    assert isinstance(result["history"]["step_loss"], np.ndarray)
    assert all(isinstance(v, np.ndarray) for v in result["state_dict"].values())
    assert result["meta"]["device_type"] == "cpu" and result["meta"]["num_parameters"] == 16 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3


LOAD_WITHOUT_CUDA = r"""
import sys, joblib, numpy as np
result = joblib.load(sys.argv[1])
if "--without-torch" in sys.argv:
    assert "torch" not in sys.modules, "loading the result imported torch"
def walk(obj, path="result"):
    if isinstance(obj, dict):
        for k, v in obj.items():
            walk(v, f"{path}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            walk(v, f"{path}[{i}]")
    else:
        assert isinstance(obj, (str, int, float, bool, type(None), np.ndarray, np.generic)), f"{path}: {type(obj)}"
n = sum(isinstance(v, np.ndarray) for v in result["state_dict"].values())
walk(result)
print("ok", n, result["history"]["step_loss"].shape[0])
"""


def load_in_child_without_cuda(result: dict, tmp_path: Path, env: dict, *flags: str) -> None:
    path = tmp_path / "result.pkl"
    joblib.dump(result, path)
    env = dict(env, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_CUDA, str(path), *flags], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", str(len(result["state_dict"])), str(len(result["history"]["step_loss"]))]


def test_result_pickle_loads_without_cuda(tmp_path, subprocess_env):
    """Simulates 'computed on a GPU machine, loaded on a CPU one': the pickle holds numpy/python data only."""
    load_in_child_without_cuda(tiny_result(), tmp_path, subprocess_env)


def test_result_pickle_without_metadata_loads_without_torch(tmp_path, subprocess_env):
    result = tiny_result()
    del result["meta"]
    load_in_child_without_cuda(result, tmp_path, subprocess_env, "--without-torch")


def test_run_metadata_is_torch_free(tmp_path, subprocess_env):
    meta = tiny_result()["meta"]
    for key, value in meta.items():
        assert not type(value).__module__.startswith("torch"), f"meta[{key!r}] is a {type(value).__module__}.{type(value).__name__}"
    load_in_child_without_cuda(tiny_result(), tmp_path, subprocess_env, "--without-torch")


def test_state_dict_numpy_round_trip():
    torch.manual_seed(0)
    model = models.CNN()
    state = train.state_dict_numpy(model)
    torch.manual_seed(1)
    other = train.load_state_dict_numpy(models.CNN(), state)
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), state[key])
    # the numpy copy does not alias the live weights
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert not np.array_equal(state["classifier.weight"], model.classifier.weight.detach().numpy())


def test_cached_toy_module_is_importable_by_name():
    # the interrupted-run test relies on the child and this process giving the function the same cache id
    assert cached_toy.__name__ == "cached_toy"
    assert toy.memorized.func_id.startswith("cached_toy")
