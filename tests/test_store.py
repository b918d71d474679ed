"""The result store (hw3.store): what makes an entry stale, and what must not.

Most tests use a toy package (`toypkg`, written below into a temporary folder) whose experiments
run in milliseconds: two model classes picked from a table, like `hw3.nn.models.MODELS`, a module
constant, a data file per model and a downstream experiment. Every check that follows a code
edit runs in a fresh child process, since the fingerprint reads source files from disk and the
modules are imported once per process. One test makes the same checks on a copy of the real
`hw3` package, without training anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest

from hw3.store import fingerprint, cached
from hw3.store.cached import CacheMissError, config_key, config_name

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE = REPO_ROOT / "code"

TOY_MODELS = '''\
"""Toy models: two classes selected by name through a table, like hw3.nn.models.MODELS."""

try:
    from hw3.store.fingerprint import Table
except ImportError:  # the store before tables (lets the tests show what it got wrong)
    def Table(entries, name=None):
        return entries


class MLP:
    """A toy MLP."""

    def __init__(self, hidden=4):
        self.hidden = hidden

    def forward(self, x):
        return x * self.hidden  # width times input


class CNN:
    """A toy CNN."""

    def __init__(self, channels=2):
        self.channels = channels

    def forward(self, x):
        return x + self.channels


MODELS = Table({"mlp": MLP, "cnn": CNN}, name="models.MODELS")


def build(name):
    return MODELS[name]()
'''

# Like hw3/__init__.py: keep the source each module is compiled from (issue 29).
TOY_INIT = '''\
try:
    from hw3.store import sources
except ImportError:  # the store before issue 29
    pass
else:
    sources.watch(__name__)
'''

TOY_EXP = '''\
"""Toy experiments for tests/test_store.py."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hw3.store.fingerprint import record_data_file
from hw3.environment import data_dir
from hw3.store.cached import RunSettings, experiment

from . import models

SCALE = 3  # a module constant the toy runs read


@dataclass(frozen=True)
class ToyConfig:
    """One toy run."""

    model: str
    lr: float = 0.1
    steps: int = 2


def read_data(name):
    path = data_dir() / name
    record_data_file(path)
    return path.read_bytes()


def zero_grad(state):
    state["grad"] = 0.0


def train(model, data, config):
    """A caricature of a training loop."""
    if config.steps < 0:
        raise ValueError(f"steps must be at least 0, got {config.steps}")
    state = {"grad": 0.0, "w": 0.0}
    for _ in range(config.steps):
        zero_grad(state)
        state["grad"] += model.forward(len(data))
        state["w"] -= config.lr * state["grad"]
    return state["w"]


def noise():
    return int.from_bytes(os.urandom(8), "little")  # every computation gives a distinct output


@experiment("toy", code=lambda config: [models.MODELS[config.model]])
def run_toy(config: ToyConfig, settings: RunSettings) -> dict:
    """Train a toy model on its data file."""
    data = read_data(config.model + ".bin")
    w = train(models.build(config.model), data, config)
    return {"w": w * SCALE, "noise": noise()}


TOY_RUNS = (ToyConfig("mlp"), ToyConfig("mlp", lr=0.5), ToyConfig("cnn"))


@dataclass(frozen=True)
class SummaryConfig:
    runs: tuple[ToyConfig, ...] = TOY_RUNS[:1]


@experiment("summary", depends=lambda config: [(run_toy, c) for c in config.runs],
            code=lambda config: [models.MODELS[c.model] for c in config.runs])
def run_summary(config: SummaryConfig, settings: RunSettings, upstream: dict) -> dict:
    return {"total": sum(r["w"] for r in upstream.values()), "noise": noise()}


@dataclass(frozen=True)
class PlainConfig:
    n: int = 1


@experiment("plain")
def run_plain(config: PlainConfig, settings: RunSettings) -> dict:
    return {"n": config.n}


RUNS = [*((run_toy, c) for c in TOY_RUNS), (run_summary, SummaryConfig()), (run_plain, PlainConfig())]
'''

# Runs one command on the toy package and prints its answer as JSON on the last line. Library
# versions and the machine are stubbed unless TOY_REAL_ENV is set: importing torch in every
# child would cost seconds, and those tests edit the recorded values in meta.json instead.
TOY_DRIVER = '''\
import json, os, sys
from hw3.store import fingerprint, cached
if not os.environ.get("TOY_REAL_ENV"):
    fingerprint.versions = lambda: {"python": "3", "torch": "toy", "numpy": "toy"}
    fingerprint.machine = lambda device="cpu": {"cpu": fingerprint.cpu_model(), "device": device}
from toypkg import exp

runs = {e.name(c): (e, c) for e, c in exp.RUNS}
cmd, args = sys.argv[1], sys.argv[2:]
out = None
if cmd == "compute":  # everything missing or stale, upstream first (RUNS is in dependency order)
    for e, c in exp.RUNS:
        if e.status(c).state != "cached":
            e.compute(c)
    cmd = "status"
elif cmd == "force":
    e, c = runs[args[0]]
    e.compute(c)
elif cmd == "compute-unregistered":
    exp.run_toy.compute(exp.ToyConfig("mlp", lr=float(args[0])))
if cmd == "status":
    out = {n: {"state": s.state, "reasons": s.reasons, "notes": s.notes} for n, s in ((n, e.status(c)) for n, (e, c) in runs.items())}
elif cmd == "call":  # what a render does: exp(config)
    out = {}
    for n, (e, c) in runs.items():
        try:
            out[n] = {"ok": repr(e(c))}
        except cached.CacheMissError as err:
            out[n] = {"error": str(err)}
elif cmd == "identity":
    out = {n: {"key": e.key(c), "folder": str(e.folder(c))} for n, (e, c) in runs.items()}
elif cmd == "garbage":
    from hw3.store import tidy
    out = [str(p) for p in tidy.garbage(exp.RUNS)]
elif cmd == "slow-write":  # recompute NAME, but stop half-way through writing its output
    import joblib, time
    def dump(value, path):
        with open(path, "wb") as f:
            f.write(b"half an output")
        open(os.environ["TOY_MARKER"], "w").close()
        time.sleep(60)
    cached.joblib.dump = dump
    e, c = runs[args[0]]
    e.compute(c)
print(json.dumps(out))
'''


# ----------------------------------------------------------------------------------------------
# The toy project


def write_toy(root: Path) -> None:
    pkg = root / "toypkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(TOY_INIT)
    (pkg / "models.py").write_text(TOY_MODELS)
    (pkg / "exp.py").write_text(TOY_EXP)
    (root / "toydriver.py").write_text(TOY_DRIVER)


class Toy:
    """A toy project in tmp_path: source, data and cache folders, and a driver run in child processes."""

    def __init__(self, root: Path):
        self.src, self.data, self.cache = root / "src", root / "data", root / "cache"
        write_toy(self.src)
        self.data.mkdir()
        (self.data / "mlp.bin").write_bytes(bytes(range(10)))
        (self.data / "cnn.bin").write_bytes(bytes(range(7)))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HW3_")}
        env.update(PYTHONPATH=os.pathsep.join([str(self.src), str(CODE)]), HW3_CACHE_DIR=str(self.cache),
                   HW3_DATA_DIR=str(self.data))
        env.update(extra)
        return env

    def run(self, *args: str, **extra: str):
        proc = subprocess.run([sys.executable, str(self.src / "toydriver.py"), *args], env=self.env(**extra),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"toy driver {args} failed:\n{proc.stderr}"
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def status(self, **extra: str) -> dict[str, dict]:
        return self.run("status", **extra)

    def edit(self, module: str, old: str, new: str) -> None:
        path = self.src / "toypkg" / f"{module}.py"
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new))
        # A distinct mtime even on coarse file systems (the fingerprint memo is keyed by it).
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))

    def meta(self, name: str) -> Path:
        return next(self.cache.glob(f"*/{name}/meta.json"))


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file and folder under root (with the files' bytes): to prove that nothing was written."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(root.rglob("*"))}


def stale(status: dict[str, dict]) -> set[str]:
    return {n for n, s in status.items() if s["state"] != "cached"}


ALL = {"toy-mlp", "toy-mlp-lr0.5", "toy-cnn", "summary", "plain"}


@pytest.fixture
def toy(tmp_path) -> Toy:
    t = Toy(tmp_path)
    st = t.run("compute")  # then its status
    assert set(st) == ALL, f"toy names: {sorted(st)}"
    assert stale(st) == set(), f"freshly computed toy entries should be cached: {st}"
    return t


# ----------------------------------------------------------------------------------------------
# What makes an entry stale, and what does not


def test_model_width_change_stales_only_the_runs_of_that_model(toy):
    toy.edit("models", "def __init__(self, hidden=4):", "def __init__(self, hidden=5):")
    st = toy.status()
    assert stale(st) == {"toy-mlp", "toy-mlp-lr0.5", "summary"}, \
        f"an MLP width change must stale exactly the MLP runs and what reads them: {st}"
    for name in ("toy-mlp", "toy-mlp-lr0.5"):
        assert st[name]["reasons"] == ["toypkg.models.MLP changed"], f"the reason should name the class: {st[name]}"
    assert "toypkg.models.MLP changed" in st["summary"]["reasons"], st["summary"]
    assert any(r.startswith("upstream toy-mlp is stale") for r in st["summary"]["reasons"]), st["summary"]


def test_comment_docstring_and_layout_edits_stale_nothing(toy):
    toy.edit("models", '"""A toy MLP."""', '"""A toy MLP, documented at length.\n\n    Really.\n    """')
    toy.edit("models", "# width times input", "# a different comment")
    toy.edit("models", '"""A toy CNN."""\n', "")  # a docstring removed
    toy.edit("models", "def build(name):\n", "def build(name):\n    # a comment line\n\n    \"\"\"Now documented.\"\"\"\n")
    toy.edit("exp", '"""Toy experiments for tests/test_store.py."""', '"""Toy experiments, re-documented."""\n# comment\n\n')
    toy.edit("exp", '"""A caricature of a training loop."""', '"""A caricature."""  # with a comment')
    toy.edit("exp", '"""Train a toy model on its data file."""', "# a comment instead of a docstring")
    toy.edit("exp", "def zero_grad(state):", "\n\n# moved down a few lines\ndef zero_grad(state):")
    st = toy.status()
    assert stale(st) == set(), f"comments, docstrings and line numbers must not make anything stale: {st}"


def test_module_constant_change_stales_its_readers_and_names_it(toy):
    toy.edit("exp", "SCALE = 3", "SCALE = 4")
    st = toy.status()
    assert stale(st) == {"toy-mlp", "toy-mlp-lr0.5", "toy-cnn", "summary"}, f"SCALE is read by the toy runs only: {st}"
    assert st["toy-cnn"]["reasons"] == ["toypkg.exp.SCALE changed"], f"the reason should name the constant: {st['toy-cnn']}"


def test_removing_a_call_in_a_reached_function_stales(toy):
    toy.edit("exp", "        zero_grad(state)\n", "")
    st = toy.status()
    assert stale(st) == {"toy-mlp", "toy-mlp-lr0.5", "toy-cnn", "summary"}, f"dropping zero_grad must stale: {st}"
    assert st["toy-cnn"]["reasons"] == ["toypkg.exp.train changed", "toypkg.exp.zero_grad no longer used"], st["toy-cnn"]


def test_one_byte_of_a_data_file_stales_its_readers_only(toy):
    path = toy.data / "mlp.bin"
    raw = bytearray(path.read_bytes())
    raw[3] ^= 1
    path.write_bytes(bytes(raw))
    st = toy.status()
    assert stale(st) == {"toy-mlp", "toy-mlp-lr0.5", "summary"}, f"only the readers of mlp.bin (and downstream): {st}"
    assert st["toy-mlp"]["reasons"] == ["data file mlp.bin changed"], f"the reason should name the file: {st['toy-mlp']}"
    assert all(r.startswith("upstream ") for r in st["summary"]["reasons"]), st["summary"]


def test_absent_data_file_is_not_a_reason(toy):
    (toy.data / "mlp.bin").unlink()  # a render without the datasets cannot check them, and must still load
    assert stale(toy.status()) == set()


def test_new_defaulted_config_field_keeps_name_key_and_entry(toy):
    before = toy.run("identity")
    toy.edit("exp", "    steps: int = 2\n", "    steps: int = 2\n    seed: int = 0\n")
    toy.edit("exp", "class PlainConfig:\n    n: int = 1\n", "class PlainConfig:\n    n: int = 1\n    verbose: bool = False\n")
    assert toy.run("identity") == before, "a new defaulted field must keep every name, key and folder"
    st = toy.status()
    assert stale(st) == set(), f"a new defaulted config field must keep every entry cached: {st}"
    assert "toypkg.exp.ToyConfig has new defaulted fields" in st["toy-cnn"]["notes"], f"and say so in a note: {st['toy-cnn']}"


def test_changed_default_of_a_config_field_stales(toy):
    toy.edit("exp", "    steps: int = 2\n", "    steps: int = 3\n")
    st = toy.status()
    assert {"toy-mlp", "toy-cnn"} <= stale(st), f"a changed default changes what the runs compute: {st}"
    assert "plain" not in stale(st)


def test_different_upstream_result_stales_downstream(toy):
    toy.run("force", "toy-mlp")  # same code, same config, a different output (the toy's noise)
    st = toy.status()
    assert stale(st) == {"summary"}, f"only what reads the recomputed result: {st}"
    assert st["summary"]["reasons"] == ["upstream toy-mlp changed"], st["summary"]


# ----------------------------------------------------------------------------------------------
# Cache-only mode


def test_cache_only_miss_names_experiment_reason_and_fix(toy):
    toy.edit("models", "def __init__(self, hidden=4):", "def __init__(self, hidden=5):")
    before = snapshot(toy.cache)
    out = toy.run("call", HW3_CACHE_ONLY="1")
    message = out["toy-mlp"].get("error", "")
    assert "'toy-mlp'" in message and "stale" in message, f"the error should name the experiment: {message}"
    assert "toypkg.models.MLP changed" in message, f"the error should give the reason: {message}"
    assert "python -m hw3 run toy-mlp" in message and cached.REFRESH_COMMAND in message, f"and the fix: {message}"
    assert "ok" in out["toy-cnn"] and "ok" in out["plain"], f"current entries still load in cache-only mode: {out}"
    assert snapshot(toy.cache) == before, "cache-only mode must not write, rewrite or delete anything"


@pytest.mark.parametrize("exists", [False, True])
def test_cache_only_computes_nothing_and_writes_nothing_into_a_fresh_cache(tmp_path, exists):
    t = Toy(tmp_path)
    if exists:
        t.cache.mkdir()
    out = t.run("call", HW3_CACHE_ONLY="1")
    assert set(out) == ALL
    for name, answer in out.items():
        assert "not in the cache" in answer.get("error", ""), f"{name}: expected a CacheMissError, got {answer}"
        assert f"python -m hw3 run {name}" in answer["error"], answer
    assert t.cache.exists() == exists and snapshot(t.cache) == {}, \
        f"cache-only mode must create no folder and no file: {snapshot(t.cache)}"


def test_compute_refuses_in_cache_only_mode(tmp_path, monkeypatch, toy_inprocess):
    exp = toy_inprocess
    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError, match="toy-mlp"):
        exp.run_toy.compute(exp.ToyConfig("mlp"))
    assert not cached.cache_dir().exists()


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("true", True), ("", False), ("0", False),
                                             ("false", False), ("No", False)])
def test_cache_only_flag_parsing(monkeypatch, value, expected):
    monkeypatch.setenv("HW3_CACHE_ONLY", value)
    assert cached.cache_only() is expected


# ----------------------------------------------------------------------------------------------
# Versions and machines: notes, not reasons (unless strict)


def edit_meta(toy: Toy, name: str, change) -> None:
    path = toy.meta(name)
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_version_difference_is_a_note_and_stale_only_when_strict(toy):
    edit_meta(toy, "toy-cnn", lambda m: m["versions"].update(torch="0.0.1"))
    st = toy.status()
    assert st["toy-cnn"]["state"] == "cached", f"a version difference alone must not make an entry stale: {st['toy-cnn']}"
    assert any("torch 0.0.1 (now toy)" in n for n in st["toy-cnn"]["notes"]), f"but it must be noted: {st['toy-cnn']}"
    strict = toy.status(HW3_STRICT_VERSIONS="1")
    assert stale(strict) == {"toy-cnn"}, f"HW3_STRICT_VERSIONS=1 makes a version difference stale: {strict}"
    assert any("torch 0.0.1" in r for r in strict["toy-cnn"]["reasons"]), strict["toy-cnn"]


def test_other_cpu_is_a_note_never_stale(toy):
    edit_meta(toy, "toy-cnn", lambda m: m["machine"].update(cpu="Some Other CPU 9000"))
    for extra in ({}, {"HW3_STRICT_VERSIONS": "1"}):
        st = toy.status(**extra)
        assert st["toy-cnn"]["state"] == "cached", f"another CPU must never make an entry stale ({extra}): {st['toy-cnn']}"
        assert st["toy-cnn"]["notes"] == ["computed on another machine: Some Other CPU 9000"], st["toy-cnn"]


def test_versions_record_the_libraries(monkeypatch):
    import types

    import numpy
    import torch

    # (torchvision itself takes seconds to import on a busy machine; its version is read the same way)
    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(__version__="0.toy"))
    v = fingerprint.versions()
    assert v == {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": "0.toy", "numpy": numpy.__version__}
    assert fingerprint.machine()["cpu"] == fingerprint.cpu_model() != ""


# ----------------------------------------------------------------------------------------------
# Garbage, and `python -m hw3 gc`


def test_garbage_lists_unreachable_entries_only(toy):
    toy.run("compute-unregistered", "0.9")
    leftover = toy.cache / "toy" / ".toy-mlp.abc123"  # what a killed write leaves beside the entry
    leftover.mkdir()
    reachable = {Path(v["folder"]) for v in toy.run("identity").values()}
    listed = {Path(p) for p in toy.run("garbage")}
    assert listed == {toy.cache / "toy" / "toy-mlp-lr0.9", leftover}, f"garbage must list exactly the unused entries: {listed}"
    assert not listed & reachable, "garbage must never list a registered entry"
    assert stale(toy.status()) == set()


def test_gc_is_a_dry_run_and_delete_removes_only_unused(private_cache, capsys):
    from hw3 import cli
    from hw3.experiments import registry

    used = [exp.folder(cfg) for exp, cfg in registry.all_experiments()[:3]]
    unused = [private_cache / "fashion" / "fashion-retired-run", private_cache / "joblib" / "hw3",
              private_cache / "fashion" / ".fashion-mlp-sgd-lr0.01.tmp123"]
    for folder in used + unused:
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text("{}")
    before = snapshot(private_cache)
    assert cli.main(["gc"]) == 0
    printed = capsys.readouterr().out
    assert snapshot(private_cache) == before, "`gc` without --delete must not remove anything"
    for folder in unused:
        assert f"unused: {folder}" in printed, f"{folder} should be listed: {printed}"
    for folder in used:
        assert str(folder) not in printed, f"a registered entry was listed as unused: {folder}"
    assert cli.main(["gc", "--delete", "--yes"]) == 0
    assert all(f.is_dir() for f in used), "`gc --delete` removed a registered entry"
    assert not any(f.exists() for f in unused), "`gc --delete` left an unused entry"
    capsys.readouterr()
    assert cli.main(["gc"]) == 0
    again = [line.removeprefix("unused: ") for line in capsys.readouterr().out.splitlines() if line.startswith("unused: ")]
    assert all(not any(Path(p).iterdir()) for p in again), f"after --delete only emptied folders may be left: {again}"


# ----------------------------------------------------------------------------------------------
# Writes: atomic, and readable failures


@pytest.fixture(scope="session")
def toy_src(tmp_path_factory) -> Path:
    # One folder per session, whichever test module asks (tests/test_store_truth.py shares this fixture):
    # `toypkg` is imported once per process.
    root = tmp_path_factory.getbasetemp() / "toysrc"
    if not root.exists():
        write_toy(root)
    return root


@pytest.fixture
def toy_inprocess(toy_src, tmp_path, monkeypatch):
    """The (never edited) toy package imported in this process, with private data and cache folders."""
    monkeypatch.syspath_prepend(str(toy_src))
    data = tmp_path / "data"
    data.mkdir()
    (data / "mlp.bin").write_bytes(bytes(range(10)))
    (data / "cnn.bin").write_bytes(bytes(range(7)))
    monkeypatch.setenv("HW3_DATA_DIR", str(data))
    monkeypatch.setattr(fingerprint, "versions", lambda: {"python": "3", "torch": "toy"})
    monkeypatch.setattr(fingerprint, "machine", lambda device="cpu": {"cpu": fingerprint.cpu_model(), "device": device})
    from toypkg import exp

    assert Path(exp.__file__).is_relative_to(toy_src)
    return exp


def test_compute_then_hit_and_atomic_replace(toy_inprocess, private_cache, monkeypatch):
    exp = toy_inprocess
    config = exp.ToyConfig("mlp")
    assert exp.run_toy.status(config).state == "missing"
    first = exp.run_toy(config)
    assert exp.run_toy(config) == first, "a current entry must be loaded, not recomputed"
    folder = exp.run_toy.folder(config)
    assert folder == private_cache.resolve() / "toy" / "toy-mlp"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "output.joblib"]

    def broken_dump(value, path):  # fails half-way through writing the new output
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(cached.joblib, "dump", broken_dump)
        with pytest.raises(KeyboardInterrupt):
            exp.run_toy.compute(config)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["toy-mlp"], "an interrupted write must leave no temporary folder"
    assert exp.run_toy.load(config) == first, "an interrupted write must leave the old entry intact"


def test_killed_write_leaves_the_old_entry(toy):
    old = json.loads(toy.meta("toy-mlp").read_text())["output_hash"]
    marker = toy.src / "writing"
    child = subprocess.Popen([sys.executable, str(toy.src / "toydriver.py"), "slow-write", "toy-mlp"],
                             env=toy.env(TOY_MARKER=str(marker)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, f"child exited early: {child.communicate()}"
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.02)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    assert json.loads(toy.meta("toy-mlp").read_text())["output_hash"] == old, "a killed write replaced the entry"
    assert stale(toy.status()) == set(), "after a killed write every entry is still current"
    leftovers = [Path(p).name for p in toy.run("garbage")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".toy-mlp."), f"the half write is garbage, and only it: {leftovers}"


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_corrupt_entry_is_a_clear_error_naming_the_experiment(toy_inprocess, private_cache, monkeypatch, damage):
    exp = toy_inprocess
    config = exp.ToyConfig("cnn")
    exp.run_toy(config)
    out = exp.run_toy.folder(config) / cached.OUTPUT
    out.write_bytes(b"\x00garbage, not a pickle\xff" * 7 if damage == "garbage" else out.read_bytes()[:10])
    before = snapshot(private_cache)
    for cache_only in ("1", ""):
        monkeypatch.setenv("HW3_CACHE_ONLY", cache_only)
        with pytest.raises(CacheMissError, match="toy-cnn") as info:
            exp.run_toy(config)
        assert "unreadable" in str(info.value), info.value
        fix = re.search(r"`(python -m hw3 run [^`]*)`", str(info.value))
        assert fix, f"the error should say how to recompute it: {info.value}"
        assert snapshot(private_cache) == before, "a corrupt entry must be left for the user to see"
    # The command it names must really recompute it (a plain `run` skips entries whose status is current).
    from hw3.compute import plan, runner

    command = fix.group(1).split()
    assert plan.to_compute([(exp.run_toy, config)], force="--force" in command), \
        f"`{fix.group(1)}` would not recompute the unreadable entry"


def test_config_must_be_a_frozen_dataclass(toy_inprocess):
    @dataclasses.dataclass
    class Mutable:
        a: int = 1

    for bad in (Mutable(), {"model": "mlp"}, 1, toy_inprocess.ToyConfig):
        with pytest.raises(TypeError, match="frozen dataclass"):
            toy_inprocess.run_toy(bad)


# ----------------------------------------------------------------------------------------------
# Names and keys


@dataclasses.dataclass(frozen=True)
class NameConfig:
    model: str
    lr: float = 0.01
    epochs: int = 20
    nesterov: bool = False
    batchnorm: bool = True
    label: str = "base"
    runs: tuple = ()


def variants(config) -> list:
    """`config` with each field changed in turn (to a value of the same type)."""
    out = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, (int, float)):
            new = value * 3 + 1
        elif isinstance(value, str):
            new = value + "x"
        elif isinstance(value, tuple):
            new = value[:-1] if value else (config,)
        else:
            raise AssertionError(f"no variant for {f.name}={value!r}")
        out.append((f.name, dataclasses.replace(config, **{f.name: new})))
    return out


def test_names_show_every_non_default_field():
    c = NameConfig("mlp", lr=0.5, nesterov=True, batchnorm=False, label="aug")
    assert config_name("x", c) == "x-mlp-lr0.5-nesterov-no-batchnorm-label-aug"
    assert config_name("x", NameConfig("cnn")) == "x-cnn"


@pytest.mark.parametrize("a, b", [
    (NameConfig("mlp", lr=1e-3), NameConfig("mlp", lr=1.0000001e-3)),   # beyond 6 significant digits
    (NameConfig("mlp", epochs=1234567), NameConfig("mlp", epochs=1234568)),
    (NameConfig("mlp", runs=(NameConfig("a"),)), NameConfig("mlp", runs=(NameConfig("b"),))),
])
def test_configs_that_differ_have_different_names(a, b):
    assert config_key("x", a) != config_key("x", b)
    assert config_name("x", a) != config_name("x", b), f"two configs share the folder {config_name('x', a)}"


def test_registered_names_are_unique_and_cover_every_field():
    from hw3.experiments import registry

    runs = registry.all_experiments()
    names = [exp.name(cfg) for exp, cfg in runs]
    assert len(names) == len(set(names)), f"duplicate experiment names: {sorted(n for n in names if names.count(n) > 1)}"
    keys = [exp.key(cfg) for exp, cfg in runs]
    assert len(keys) == len(set(keys))
    for exp, cfg in runs:
        assert isinstance(exp, cached.Experiment)
        assert dataclasses.is_dataclass(cfg) and cfg.__dataclass_params__.frozen
        for field_name, other in variants(cfg):
            assert exp.name(other) != exp.name(cfg), f"{exp.name(cfg)}: changing {field_name} keeps the name"
            assert exp.key(other) != exp.key(cfg), f"{exp.name(cfg)}: changing {field_name} keeps the key"
    assert registry.by_name().keys() == set(names)


def test_every_registered_experiment_is_a_miss_in_an_empty_cache(monkeypatch, private_cache):
    """In cache-only mode nothing trains: an empty cache makes every experiment a named CacheMissError."""
    from hw3.experiments import registry

    monkeypatch.setenv("HW3_CACHE_ONLY", "1")
    for exp, config in registry.all_experiments():
        assert exp.status(config).state == "missing"
        with pytest.raises(CacheMissError, match=re.escape(exp.name(config))):
            exp(config)
    assert not private_cache.exists()


# ----------------------------------------------------------------------------------------------
# The real package: an MLP width change reaches exactly the MLP experiments


FINGERPRINTS = '''\
import json
from hw3.experiments import registry
print(json.dumps({e.name(c): e.code_fingerprint(c) for e, c in registry.all_experiments()}))
'''


def real_fingerprints(code_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HW3_")}
    env.update(PYTHONPATH=str(code_dir), HW3_CACHE_ONLY="1", HW3_CACHE_DIR=str(code_dir / "no-cache"))
    proc = subprocess.run([sys.executable, "-c", FINGERPRINTS], env=env, capture_output=True, text=True, timeout=300,
                          cwd=code_dir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def edit_real(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} should occur once in {path}"
    path.write_text(text.replace(old, new))


def test_real_mlp_width_change_reaches_exactly_the_mlp_experiments(tmp_path):
    copy = tmp_path / "code"
    shutil.copytree(CODE / "hw3", copy / "hw3", ignore=shutil.ignore_patterns("__pycache__"))
    edit_real(copy / "hw3" / "nn" / "models.py", "hidden: int = 100,", "hidden: int = 101,")
    # Comment and docstring edits in train.py, in and around `fit`, which every training run reaches.
    edit_real(copy / "hw3" / "nn" / "train.py", '    """Train for `epochs` passes over `train`,', '    """Train (edited) for `epochs` passes over `train`,')
    edit_real(copy / "hw3" / "nn" / "train.py", "    if epochs <= 0:", "    # a new comment\n\n    if epochs <= 0:")
    edit_real(copy / "hw3" / "nn" / "train.py", "\ndef fit(", "\n# a comment above fit\n\n\ndef fit(")
    edited = real_fingerprints(copy)
    original = {}
    from hw3.experiments import registry

    for exp, cfg in registry.all_experiments():
        code, constants = exp.code_fingerprint(cfg)
        original[exp.name(cfg)] = [code, constants]
    assert edited.keys() == original.keys()
    changed = {}
    for name, (code, constants) in original.items():
        new_code, new_constants = edited[name]
        assert new_constants == constants, f"{name}: constants changed: {sorted(set(constants.items()) ^ set(new_constants.items()))}"
        diff = sorted(k for k in set(code) | set(new_code) if code.get(k) != new_code.get(k))
        if diff:
            changed[name] = diff
    expected = {n for n in original if n.startswith("fashion-mlp-")} | {"dead-units"}
    assert len(expected) > 5, sorted(original)
    assert set(changed) == expected, f"an MLP width change must change exactly the MLP experiments: {sorted(changed)}"
    assert all(diff == ["hw3.nn.models:MLP"] for diff in changed.values()), \
        f"and only through hw3.nn.models.MLP (the train.py comment/docstring edits must change nothing): {changed}"
    assert all("hw3.nn.train:fit" in original[n][0] for n in original if n.startswith("fashion-")), "fit must be reached"


def test_real_wide_net_change_reaches_exactly_the_wide_bonus_runs_and_the_final(tmp_path):
    """The bonus selects its network through `models.BONUS_MODELS`: a change to the wide net must
    stale the runs that train it (the wide and smoothing steps) and the final evaluation, and leave
    the BN-CNN steps current."""
    copy = tmp_path / "code"
    shutil.copytree(CODE / "hw3", copy / "hw3", ignore=shutil.ignore_patterns("__pycache__"))
    edit_real(copy / "hw3" / "nn" / "models.py", "nn.AdaptiveMaxPool2d(1)", "nn.AdaptiveAvgPool2d(1)")
    edited = real_fingerprints(copy)
    from hw3.experiments import registry

    changed = set()
    for exp, cfg in registry.all_experiments():
        code, _ = exp.code_fingerprint(cfg)
        if edited[exp.name(cfg)][0] != code:
            changed.add(exp.name(cfg))
    from hw3.experiments import bonus

    expected = {bonus.run_bonus.name(c) for c in bonus.RUNS if c.model == "wide"} | {"bonus-final"}
    assert len(expected) == 7, sorted(expected)
    assert changed == expected, f"a wide-net change must change exactly the wide-net runs and bonus-final: {sorted(changed)}"
