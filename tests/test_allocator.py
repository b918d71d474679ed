"""`hw3.allocator`: freed activations stay in the process (no page faults per step), results unchanged.

Each check runs in a fresh interpreter: malloc settings are process-wide and cannot be undone cleanly.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from hw3.compute import allocator, runner
from hw3.environment import PROJECT_ROOT

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")

FAULTS = """
import json, resource, sys
import torch
import torch.nn.functional as F
from hw3.compute import allocator
from hw3.nn import models
tuned = sys.argv[1] == "tuned" and allocator.keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
model = models.CNN().to(memory_format=torch.channels_last)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x = torch.randn(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (64,))

def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

for _ in range(5):  # warm-up: the first steps fault their memory in whatever the setting
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

LOSSES = """
import json, sys
import torch
from hw3.compute import allocator
from hw3.nn import models, train
if sys.argv[1] == "tuned":
    assert allocator.keep_freed_memory()
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(0)
x, y = torch.randn(256, 1, 28, 28, generator=gen), torch.randint(0, 10, (256,), generator=gen)
torch.manual_seed(0)
model = models.CNN()
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
history = train.fit(model, opt, (x, y), epochs=2, batch_size=64, seed=0)
print(json.dumps(history.step_loss.tolist()))
"""


def run_python(code: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          cwd=PROJECT_ROOT, env={**__import__("os").environ, "PYTHONPATH": str(PROJECT_ROOT / "code")})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


@glibc
def test_keep_freed_memory_stops_the_per_step_page_faults():
    """Twenty Part 2 CNN steps after warm-up: about 3,000 page faults per step with glibc's defaults
    (each step's freed activations went back to the kernel), next to none with the setting."""
    plain, tuned = (json.loads(run_python(FAULTS, mode)) for mode in ("plain", "tuned"))
    assert tuned["tuned"], "keep_freed_memory must succeed on glibc"
    if plain["faults"] < 1000:
        pytest.skip(f"this C library keeps freed memory by default ({plain['faults']} faults): nothing to fix")
    assert tuned["faults"] * 10 < plain["faults"], \
        f"freed activations should be reused without faulting: {tuned['faults']} faults tuned against {plain['faults']} plain"


@glibc
def test_training_is_bit_identical_with_the_allocator_setting():
    plain, tuned = (json.loads(run_python(LOSSES, mode)) for mode in ("plain", "tuned"))
    assert len(plain) == 8 and plain == tuned, "where memory comes from must not change a single loss"


def test_keep_freed_memory_reports_false_without_mallopt(monkeypatch):
    def no_libc(*args, **kwargs):
        raise OSError("no C library here")

    monkeypatch.setattr(allocator.ctypes, "CDLL", no_libc)
    assert allocator.keep_freed_memory() is False


def test_each_runner_worker_applies_the_setting(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(True) or True)

    class Toy:
        def name(self, config):
            return "toy"

        def compute(self, config, settings):
            assert calls, "the allocator must be set up before the experiment computes"

        def folder(self, config):  # where the worker keeps its speed calibration beside the entry
            return tmp_path

    assert runner.run_one(Toy(), object())[0] == "toy"
    assert calls == [True]
