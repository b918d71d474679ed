"""Issue 19: the store serves no wrong result as current, and stales nothing for a change that cannot matter.

The toy package and its driver come from tests/test_store.py. The four "served as current" scenarios,
the bad-input errors (one line, exit code 2 from the CLI), the no-recompute rules (on the toy, and the
fifth optimiser on a copy of the real package) and the freshness of the per-process status memo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hw3 import cli
from hw3.store import fingerprint, cached
from hw3.store.cached import CacheMissError
from test_store import CODE, Toy, edit_real, real_fingerprints, snapshot, stale, toy, toy_inprocess, toy_src  # noqa: F401

# A second driver for the toy: commands that need more than one step in one process.
TRUTH_DRIVER = '''\
import json, os, sys, time
from pathlib import Path
from hw3.store import fingerprint, cached
fingerprint.versions = lambda: {"python": "3", "torch": "toy", "numpy": "toy"}
fingerprint.machine = lambda device="cpu": {"cpu": fingerprint.cpu_model(), "device": device}
from toypkg import exp

runs = {e.name(c): (e, c) for e, c in exp.RUNS}
cmd, args = sys.argv[1], sys.argv[2:]

def bump(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))

def status():
    return {n: e.status(c).state for n, (e, c) in runs.items()}

if cmd == "edit-while-running":  # recompute NAME; edit a source file while it computes
    import contextlib
    e, c = runs[args[0]]
    recording = fingerprint.recording_data_files
    @contextlib.contextmanager
    def edit_then_record():  # entered just before the experiment's function runs
        path = Path(exp.__file__).with_name("models.py")
        path.write_text(path.read_text().replace("return x * self.hidden", "return x * self.hidden * 2"))
        bump(path)
        with recording() as files:
            yield files
    fingerprint.recording_data_files = edit_then_record
    try:
        e.compute(c)
        print(json.dumps({"written": True}))
    except cached.StoreError as err:
        print(json.dumps({"error": str(err)}))
elif cmd == "memo":  # the same process sees each change: data, meta.json, code
    out = [status()]
    data = Path(os.environ["HW3_DATA_DIR"]) / "cnn.bin"
    data.write_bytes(b"other bytes")
    out.append(status())
    data.write_bytes(bytes(range(7)))
    bump(data)
    out.append(status())
    models = Path(exp.__file__).with_name("models.py")
    models.write_text(models.read_text().replace("return x + self.channels", "return x - self.channels"))
    bump(models)
    out.append(status())
    print(json.dumps(out))
'''


def truth(t: Toy, *args: str, **extra: str):
    driver = t.src / "truthdriver.py"
    driver.write_text(TRUTH_DRIVER)
    proc = subprocess.run([sys.executable, str(driver), *args], env=t.env(**extra), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def one_line_error(capsys, argv: list[str]) -> str:
    assert cli.main(argv) == 2, f"{argv} should exit with 2"
    err = capsys.readouterr().err.strip()
    # (progress bars may precede it on stderr once computing has started)
    assert "Traceback" not in err and "error: " in err, f"a one-line error expected: {err!r}"
    line = err[err.rindex("error: "):]
    assert "\n" not in line, f"one line expected: {line!r}"
    return line


# ----------------------------------------------------------------------------------------------
# Served as current, although wrong (each fails on the store before issue 19)


def test_code_edited_while_running_is_not_stamped_onto_the_result(toy):
    before = snapshot(toy.cache)
    out = truth(toy, "edit-while-running", "toy-mlp")
    assert "error" in out, f"a result computed by code that changed during the run must not be written: {out}"
    assert "toypkg.models.MLP changed while it ran" in out["error"] and "python -m hw3 run toy-mlp" in out["error"], out
    assert snapshot(toy.cache) == before, "nothing may be written"
    assert toy.status()["toy-mlp"]["state"] == "stale", "the old entry is stale for the new code"


@pytest.mark.parametrize("module, addition", [
    ("models", "\nMLP.forward = CNN.forward\n"),  # a class attribute overridden after the class
    ("models", "\nimport functools\nMLP.__init__ = functools.partialmethod(MLP.__init__, hidden=7)\n"),
    ("exp", "\nmodels.MODELS['mlp'] = models.CNN\n"),  # an item assignment at module level
])
def test_module_level_code_counts(toy, module, addition):
    path = toy.src / "toypkg" / f"{module}.py"
    toy.edit(module, path.read_text(), path.read_text() + addition)
    st = toy.status()
    assert {"toy-mlp", "toy-mlp-lr0.5", "summary"} <= stale(st), f"module-level code must count: {st}"
    assert any(f"module-level code of toypkg.{module}" in r for r in st["toy-mlp"]["reasons"]), st["toy-mlp"]


def test_module_level_partial_binding_counts(toy):
    toy.edit("exp", "SCALE = 3  #", "import functools\n_scale = functools.partial(int.__mul__, 3)\nSCALE = 3  #")
    toy.edit("exp", '"w": w * SCALE', '"w": _scale(int(w)) * SCALE')
    toy.run("compute")
    toy.edit("exp", "functools.partial(int.__mul__, 3)", "functools.partial(int.__mul__, 4)")
    st = toy.status()
    assert "toypkg.exp._scale changed" in st["toy-cnn"]["reasons"], f"a partial's arguments are code: {st['toy-cnn']}"


@pytest.mark.needs_data
def test_legacy_processed_folder_does_not_replace_the_raw_files(fashion_dir, tmp_path, monkeypatch):
    import torch

    from hw3.nn import data

    root = tmp_path / "data"
    (root / "FashionMNIST" / "raw").mkdir(parents=True)
    for f in fashion_dir.iterdir():
        (root / "FashionMNIST" / "raw" / f.name).symlink_to(f)
    images, labels = data.load_raw("FashionMNIST", train=True)
    (root / "FashionMNIST" / "processed").mkdir()
    torch.save((255 - images, labels), root / "FashionMNIST" / "processed" / "training.pt")  # inverted images
    test_images, test_labels = data.load_raw("FashionMNIST", train=False)
    torch.save((255 - test_images, test_labels), root / "FashionMNIST" / "processed" / "test.pt")  # torchvision wants both
    monkeypatch.setenv("HW3_DATA_DIR", str(root))
    served, _ = data.load_raw("FashionMNIST", train=True)
    assert torch.equal(served, images), "the images served must be the raw IDX files the store hashes"


@pytest.mark.parametrize("damage", ["swap", "edit"])
def test_output_that_does_not_match_its_recorded_hash_is_unreadable(toy_inprocess, private_cache, damage):
    exp = toy_inprocess
    a, b = exp.ToyConfig("cnn"), exp.ToyConfig("mlp")
    exp.run_toy(a), exp.run_toy(b)
    target = exp.run_toy.folder(a) / cached.OUTPUT
    if damage == "swap":  # another entry's output
        shutil.copy(exp.run_toy.folder(b) / cached.OUTPUT, target)
    else:  # a valid pickle with one stored value edited
        import joblib

        joblib.dump({**joblib.load(target), "w": 123.0}, target)
    st = exp.run_toy.status(a)
    assert st.state == "unreadable" and "does not match the hash recorded" in str(st), st
    with pytest.raises(CacheMissError, match="python -m hw3 run toy-cnn`"):
        exp.run_toy.load(a)
    assert exp.run_toy.status(b).state == "cached"


# ----------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, and nothing computed is lost


@pytest.mark.needs_data
def test_label_out_of_range_is_a_one_line_data_error(fashion_dir, tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    for name in ("FashionMNIST", "MNIST"):
        (root / name / "raw").mkdir(parents=True)
        for f in (fashion_dir.parents[1] / name / "raw").iterdir():
            (root / name / "raw" / f.name).symlink_to(f)
    labels = root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8 + 5] = 255
    labels.unlink()
    labels.write_bytes(bytes(raw))
    monkeypatch.setenv("HW3_DATA_DIR", str(root))
    from hw3.nn import data

    data._load_cached.cache_clear()
    err = one_line_error(capsys, ["run", "data-check", "--jobs", "1"])
    assert "label(s) outside 0-9" in err and "255" in err and "index 5" in err, err


@pytest.mark.parametrize("content", ['["a", "list"]', '{"key": "x"}', "not json", "__no_code__", "__data_null__"])
def test_malformed_meta_is_unreadable_and_the_listing_goes_on(private_cache, capsys, content):
    from hw3.experiments import registry

    (exp, config), (other, other_config) = registry.all_experiments()[:2]
    folder = exp.folder(config)
    folder.mkdir(parents=True)
    (folder / cached.OUTPUT).write_bytes(b"x")
    if content.startswith("__"):
        meta = {"key": exp.key(config), "config": {}, "code": {}, "constants": {}, "data": {}, "upstream": {},
                "versions": {}, "machine": {}, "output_hash": "h"}
        meta.pop("code") if content == "__no_code__" else meta.update(data=None)
        content = json.dumps(meta)
    (folder / cached.META).write_text(content)
    st = exp.status(config)
    assert st.state == "unreadable" and "meta.json is malformed" in str(st), st
    with pytest.raises(CacheMissError, match="is unreadable: its meta.json is malformed"):
        exp.load(config)
    assert cli.main(["results"]) == 0
    out = capsys.readouterr().out
    assert "unreadable" in out and other.name(other_config) in out, out


def test_stale_old_folder_is_cleared_before_computing(toy_inprocess, private_cache):
    exp = toy_inprocess
    config = exp.ToyConfig("mlp")
    exp.run_toy(config)
    old = exp.run_toy.folder(config).with_name(".toy-mlp.old")
    old.mkdir()
    (old / "leftover").write_text("x")
    exp.run_toy.compute(config)
    assert not old.exists() and exp.run_toy.status(config).state == "cached"


def test_interrupted_swap_restores_the_previous_entry(toy_inprocess, private_cache):
    exp = toy_inprocess
    config = exp.ToyConfig("mlp")
    first = exp.run_toy(config)
    folder = exp.run_toy.folder(config)
    folder.rename(folder.with_name(".toy-mlp.old"))  # killed between the two renames
    cached.prepare_folder(folder)
    assert exp.run_toy.load(config) == first


def test_unwritable_cache_fails_before_computing(toy_inprocess, tmp_path, monkeypatch, capsys):
    exp = toy_inprocess
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HW3_CACHE_DIR", str(blocker / "cache"))
    calls = []
    monkeypatch.setattr(exp.run_toy, "func", lambda *a, **k: calls.append(1))
    with pytest.raises(cached.StoreError, match="cannot write to the cache folder .* nothing was computed"):
        exp.run_toy.compute(exp.ToyConfig("mlp"))
    assert calls == [], "nothing may be computed when the result cannot be written"
    err = one_line_error(capsys, ["run", "gallery", "--jobs", "1"])
    assert "cannot write to the cache folder" in err


def test_truncated_output_is_recomputed_by_the_command_its_message_names(toy_inprocess, private_cache):
    from hw3.compute import plan, runner

    exp = toy_inprocess
    config = exp.ToyConfig("cnn")
    exp.run_toy(config)
    out = exp.run_toy.folder(config) / cached.OUTPUT
    out.write_bytes(out.read_bytes()[:10])
    with pytest.raises(CacheMissError) as info:
        exp.run_toy.load(config)
    assert "`python -m hw3 run toy-cnn`" in str(info.value), info.value
    assert plan.to_compute([(exp.run_toy, config)]) == [(exp.run_toy, config)], "a plain `run NAME` must recompute it"


@pytest.mark.parametrize("argv, message", [
    (["run", "gallery", "--jobs", "0"], "--jobs must be at least 1, got 0"),
    (["run", "gallery", "--jobs", "-5"], "--jobs must be at least 1, got -5"),
    (["run", "gallery", "--device", "tpu"], "--device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    (["run", "no-such-experiment"], "no experiment named 'no-such-experiment'"),
])
def test_bad_run_arguments_are_one_line_errors(capsys, private_cache, argv, message):
    assert message in one_line_error(capsys, argv)
    assert not private_cache.exists(), "nothing may be computed or written"


def test_cuda_without_a_gpu_is_refused_for_every_experiment(capsys, private_cache):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for name in ("gallery", "data-check"):  # they never move a tensor, and used to record "cuda"
        assert "CUDA is not available here" in one_line_error(capsys, ["run", name, "--device", "cuda"])
    assert not private_cache.exists()


def test_recorded_device_is_the_device_used(toy_inprocess, private_cache):
    exp = toy_inprocess
    config = exp.ToyConfig("mlp")
    exp.run_toy.compute(config, cached.RunSettings(device="cuda"))  # the toy never moves a tensor
    assert exp.run_toy.read_meta(config)["machine"]["device"] == "cpu"


@pytest.mark.parametrize("value, expected", [("off", False), ("OFF", False), ("0", False), ("false", False), ("no", False),
                                             ("", False), ("on", True), ("1", True), ("yes", True), ("true", True)])
def test_environment_flags_accept_the_usual_values(monkeypatch, value, expected):
    monkeypatch.setenv("HW3_CACHE_ONLY", value)
    monkeypatch.setenv("HW3_STRICT_VERSIONS", value)
    assert cached.cache_only() is expected and cached.strict_versions() is expected


def test_unknown_flag_value_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv("HW3_CACHE_ONLY", "maybe")
    assert "HW3_CACHE_ONLY='maybe' is not an on/off value" in one_line_error(capsys, ["run", "gallery"])


def test_absent_data_is_said_in_one_line(toy):
    for f in toy.data.iterdir():
        f.unlink()
    st = toy.status()
    assert stale(st) == set()
    notes = {n for s in st.values() for n in s["notes"]}
    assert notes == {f"data files not found under {toy.data}: not checked (set HW3_DATA_DIR to check them)"}, notes


def test_empty_batches_and_mixed_dtypes_are_rejected():
    import torch

    from hw3 import backprop
    from hw3.nn.multimnist_data import make_new_sample

    W = backprop.init_weights()
    X, y = np.zeros((0, 5)), np.zeros(0)
    for call in (lambda: backprop.gradient(X, y, W), lambda: backprop.stable_logistic_loss(y, np.zeros(0)),
                 lambda: backprop.logistic_loss(y, np.zeros(0))):
        with pytest.raises(ValueError, match="empty batch"):
            call()
    with pytest.raises(ValueError, match="same dtype"):
        make_new_sample(torch.zeros(28, 28, dtype=torch.uint8), torch.rand(28, 28))


# ----------------------------------------------------------------------------------------------
# No recompute for a change that cannot change a result


def test_renaming_a_local_variable_stales_nothing(toy):
    path = toy.src / "toypkg" / "exp.py"
    text = path.read_text()
    start, end = text.index("def train("), text.index("def noise(")
    toy.edit("exp", text[start:end], text[start:end].replace("state", "s"))
    assert stale(toy.status()) == set()


def test_editing_an_error_message_stales_nothing(toy):
    toy.edit("exp", 'f"steps must be at least 0, got {config.steps}"', 'f"config.steps must be >= 0 (it is {config.steps})"')
    assert stale(toy.status()) == set()


def test_editing_annotations_stales_nothing(toy):
    toy.edit("exp", "def train(model, data, config):", 'def train(model: "models.MLP", data: bytes, config: ToyConfig) -> float:')
    toy.edit("exp", "    lr: float = 0.1\n", '    lr: "float | int" = 0.1\n')
    toy.edit("exp", "def read_data(name):", "def read_data(name: str) -> bytes:")
    assert stale(toy.status()) == set()


def test_a_dataclass_field_annotation_still_makes_a_field():
    import ast

    def h(body: str) -> str:
        return fingerprint.normalised_source_hash(ast.parse(f"@dataclass\nclass C:\n    {body}\n").body[0])

    assert h("x: int = 1") == h("x: 'float | None' = 1"), "the annotation's text does not matter"
    assert h("x: int = 1") != h("x = 1"), "but whether there is one does: it makes the field"
    assert h("x: int = 1") != h("x: ClassVar[int] = 1"), "and ClassVar makes it a class attribute"


def _move_zero_grad(toy, grad: str) -> None:
    """Move `zero_grad` from the experiment module to `models`, setting the gradient to `grad` there."""
    toy.edit("exp", 'def zero_grad(state):\n    state["grad"] = 0.0\n', "")
    toy.edit("exp", "from . import models\n", "from . import models\nfrom .models import zero_grad\n")
    toy.edit("models", "def build(name):", f'def zero_grad(state):\n    state["grad"] = {grad}\n\n\ndef build(name):')


def test_moving_a_definition_to_another_module_stales_nothing(toy):
    _move_zero_grad(toy, "0.0")
    assert stale(toy.status()) == set()


def test_a_moved_definition_that_changed_is_named(toy):
    _move_zero_grad(toy, "1.0")
    st = toy.status()
    assert "toypkg.models.zero_grad changed" in st["toy-cnn"]["reasons"], st["toy-cnn"]


def test_a_new_model_and_a_new_run_stale_nothing_that_existed(toy):
    toy.edit("models", 'MODELS = Table({"mlp": MLP, "cnn": CNN}', 'class RNN:\n    def forward(self, x):\n        return -x\n\n\n'
                                                               'MODELS = Table({"mlp": MLP, "cnn": CNN, "rnn": RNN}')
    toy.edit("exp", 'ToyConfig("cnn"))\n', 'ToyConfig("cnn"), ToyConfig("rnn"))\n')
    st = toy.status()
    assert st.pop("toy-rnn")["state"] == "missing"
    assert stale(st) == set(), st


def test_an_undeclared_table_lookup_is_refused(toy_inprocess, private_cache, monkeypatch):
    exp = toy_inprocess
    monkeypatch.setattr(exp.run_toy, "code_for", lambda config: [])
    with pytest.raises(cached.StoreError, match=r"used models.MODELS\['mlp'\] without declaring it"):
        exp.run_toy.compute(exp.ToyConfig("mlp"))
    assert not exp.run_toy.folder(exp.ToyConfig("mlp")).exists()


def test_real_mlp_only_optimiser_touches_one_module_and_stales_no_existing_entry(tmp_path):
    """Issue 21's walkthrough (docs/adding-an-optimiser.md), on a copy of the package: RMSprop for the
    MLP alone is an edit of hw3/experiments/fashion.py only, and adds exactly its seed group: one MLP
    run per seed of fashion.SEEDS (issue 28), and no CNN run."""
    copy = tmp_path / "code"
    shutil.copytree(CODE / "hw3", copy / "hw3", ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "hw3" / "experiments" / "fashion.py"
    edit_real(path, 'optimizer: Literal["sgd", "adam"]', 'optimizer: Literal["sgd", "adam", "rmsprop"]')
    edit_real(path, "# The optimisers by", "def _rmsprop(config, params):\n    return torch.optim.RMSprop(params, lr=config.lr)\n\n\n# The optimisers by")
    edit_real(path, '"adam": _adam}', '"adam": _adam, "rmsprop": _rmsprop}')
    edit_real(path, 'OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}', 'OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}')
    edit_real(path, "MLP_OPTIMIZERS = OPTIMIZERS\n", 'MLP_OPTIMIZERS = {**OPTIMIZERS, "rmsprop": dict(optimizer="rmsprop", lr=0.001)}\n')
    edited = real_fingerprints(copy)
    from hw3.experiments import registry

    from hw3.experiments import fashion

    new = set(edited) - set(registry.by_name())
    seeds = {"fashion-mlp-rmsprop-lr0.001" + (f"-seed{s}" if s else "") for s in fashion.SEEDS}
    assert len(seeds) == 3 and new == seeds, f"one new MLP run per seed and no CNN run: {new}"
    changed = [exp.name(cfg) for exp, cfg in registry.all_experiments() if list(exp.code_fingerprint(cfg)) != edited[exp.name(cfg)]]
    assert changed == [], f"a new optimiser must leave every existing run current: {changed}"
    label = subprocess.run([sys.executable, "-c", "from hw3.experiments import fashion; "
                            "print(fashion.optimizer_label(fashion.fashion_config('mlp', 'rmsprop')), len(fashion.MLP_RUNS))"],
                           env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True, check=True).stdout.split()
    assert label == ["RMSprop(0.001)", "5"], label


# ----------------------------------------------------------------------------------------------
# The status memo (issue 22): once per process, but never stale


def test_the_same_process_sees_data_meta_and_code_changes(toy):
    first, data_changed, data_back, code_changed = truth(toy, "memo")
    assert set(first.values()) == {"cached"}
    assert data_changed["toy-cnn"] == "stale" and data_changed["toy-mlp"] == "cached"
    assert data_back["toy-cnn"] == "cached"
    assert code_changed["toy-cnn"] == "stale" and code_changed["toy-mlp"] == "cached"


def test_status_memo_sees_a_rewritten_entry(toy_inprocess, private_cache):
    exp = toy_inprocess
    config = exp.ToyConfig("mlp")
    exp.run_toy(config)
    assert exp.run_toy.status(config).state == "cached"
    (exp.run_toy.folder(config) / cached.OUTPUT).write_bytes(b"replaced")
    assert exp.run_toy.status(config).state == "unreadable"
    shutil.rmtree(exp.run_toy.folder(config))
    assert exp.run_toy.status(config).state == "missing"
