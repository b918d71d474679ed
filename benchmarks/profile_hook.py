"""The cost of recording which package functions ran (issue 29, hw3.store.runtime) on real training epochs.

    python benchmarks/profile_hook.py [--repeats 5] [--cnn-images 10000]

Three modes, side by side in one process, interleaved (rotating order), so machine load hits all alike:
- `plain`: `hw3.nn.{data,models,train}` compiled the usual way (fresh copies of the modules, exec'd from
  their files), no recording: the baseline;
- `instrumented`: the package as imported (hw3.store.sources compiles each function to note that it
  ran), trained inside `runtime.recording("hw3")`, as `make results` does;
- `traced`: the plain copies inside a recording in trace mode (a global `sys.settrace` function), the
  fallback for a package whose modules are not instrumented.
Each trains the MLP for one full FashionMNIST epoch (50k images, batch 64, validation included) and the
CNN on the first `--cnn-images` training images, on one thread. Prints every time, the medians and the
minima. Nothing is asserted: timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types

import torch

from hw3.nn import data, models, train
from hw3.store import runtime, sources

NAMES = ("hw3.nn.data", "hw3.nn.models", "hw3.nn.train")  # in import order: what a training step runs


def plain_copies() -> dict[str, types.ModuleType]:
    """The modules of NAMES compiled without instrumentation, importing each other (not the instrumented ones)."""
    saved = {n: sys.modules[n] for n in NAMES}
    try:
        for name in NAMES:
            module = types.ModuleType(name)
            module.__file__, module.__package__ = saved[name].__file__, name.rpartition(".")[0]
            sys.modules[name] = module
            with open(module.__file__, encoding="utf-8") as f:
                exec(compile(f.read(), module.__file__, "exec", dont_inherit=True), vars(module))
        return {n: sys.modules[n] for n in NAMES}
    finally:
        sys.modules.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cnn-images", type=int, default=10_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain = plain_copies()
    assert sources.instrumented("hw3.nn.train") and "__hw3_ran__" not in plain["hw3.nn.train"].fit.__code__.co_names
    splits = data.image_splits("FashionMNIST")
    modes = ("plain", "instrumented", "traced")
    for model_name, n_train, n_val in (("mlp", None, None), ("cnn", args.cnn_images, 2000)):
        sets = {"train": tuple(t[:n_train] for t in splits.train), "val": tuple(t[:n_val] for t in splits.val)}
        times = {m: [] for m in modes}
        for i in range(args.repeats):
            for mode in modes[i % 3:] + modes[:i % 3]:
                mods, tr = (models, train) if mode == "instrumented" else (plain["hw3.nn.models"], plain["hw3.nn.train"])
                torch.manual_seed(0)
                model = mods.build(model_name)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
                started = time.perf_counter()
                if mode == "plain":
                    tr.fit(model, optimizer, sets["train"], epochs=1, batch_size=64, seed=0, evals={"val": sets["val"]})
                else:
                    with runtime.recording("hw3" if mode == "instrumented" else None) as rec:
                        tr.fit(model, optimizer, sets["train"], epochs=1, batch_size=64, seed=0, evals={"val": sets["val"]})
                    seen = ("hw3.nn.train", train.fit.__code__.co_firstlineno) in rec.ran if mode == "instrumented" else \
                        tr.fit.__code__ in rec.codes
                    assert seen, f"{mode}: the recording must see fit"
                times[mode].append(time.perf_counter() - started)
        base = statistics.median(times["plain"])
        print(f"{model_name}: " + "; ".join(
            f"{m} {[round(t, 2) for t in times[m]]} s (median {statistics.median(times[m]):.2f} s, "
            f"{100 * (statistics.median(times[m]) / base - 1):+.1f}%; min {min(times[m]):.2f} s)" for m in modes), flush=True)


if __name__ == "__main__":
    main()
