"""Benchmarks: our training engine against the conventional torchvision pipeline, and the report's timings.

    python benchmarks/bench.py [--steps 300] [--skip-parallel] [--skip-report] [--skip-render]   (`make bench`)
    python benchmarks/bench.py --only render     the render section alone (benchmarks/render_bench.py), about 6 min

(a) conventional: torchvision dataset with per-sample ToTensor()/Normalize (for MultiMNIST, a
    Dataset that builds each canvas with make_new_sample), DataLoader(batch_size=64, shuffle=True).
(b) ours: tensors prepared once and kept in memory, index batches (hw3.nn.data.TensorBatches),
    channels-last conv nets (hw3.train), and freed memory kept in the process (hw3.allocator, as
    `make results` workers do). The conventional pipeline is also timed with that allocator
    setting, so the table shows how much of the ratio the setting alone buys.
Both train the same model with the same optimiser for the same number of steps. Then: fp32
against bf16 autocast (`train.fit(..., precision="bf16")`) for each model, which pays only on CPUs
with bf16 units (the CPU and its units are printed), and the evaluation batch size. The figures
are printed, never asserted: timing depends on the machine. On a CPU without bf16 units the bf16
measurements are skipped, with the reason (there bf16 is emulated, 5-10× slower than fp32: the
wide network's alone did not finish in 20 min). Last, the render section (benchmarks/render_bench.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import torch
import torch.nn.functional as F

from hw3.compute import allocator
from hw3.nn import data, models, multimnist_data, train
from hw3.store import fingerprint
from hw3.environment import PROJECT_ROOT, data_dir


def _steps_per_second(model, batches, steps: int, channels_last: bool, heads: int, repeats: int = 3) -> float:
    """Best rate over `repeats` timed runs of `steps` SGD steps each (after 10 warm-up steps).

    Batches come from the iterable `batches`, restarted when exhausted. The best of several runs,
    as `timeit` does, because other processes on the machine can only slow a run down.
    """
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def stream():
        while True:
            yield from batches

    it = stream()

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            batch = next(it)
            x, targets = batch[0], batch[1:]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = model(x)
            out = out if isinstance(out, tuple) else (out,)
            loss = torch.stack([F.cross_entropy(o, t) for o, t in zip(out, targets[:heads])]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return n / (time.perf_counter() - start)

    run(10)
    return max(run(steps) for _ in range(repeats))


class _CanvasDataset(torch.utils.data.Dataset):
    """The conventional MultiMNIST dataset: each item builds its canvas from two PIL digits on demand."""

    def __init__(self, mnist, left, right, transform):
        self.mnist, self.left, self.right, self.transform = mnist, left, right, transform

    def __len__(self):
        return len(self.left)

    def __getitem__(self, i):
        (a, ya), (b, yb) = self.mnist[int(self.left[i])], self.mnist[int(self.right[i])]
        canvas = multimnist_data.make_new_sample(self.transform(a), self.transform(b))
        return canvas, ya, yb


def _pipelines(name: str):
    """(model factory, conventional batches, our batches, heads) for 'mlp', 'cnn' or 'multimnist'."""
    from torchvision import datasets, transforms

    root = str(data_dir())
    if name in ("mlp", "cnn"):
        splits = data.image_splits("FashionMNIST")
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((splits.mean,), (splits.std,))])
        conventional = torch.utils.data.DataLoader(datasets.FashionMNIST(root, train=True, transform=tf), batch_size=64, shuffle=True)
        ours = data.TensorBatches(splits.train, 64, shuffle=True)
        return {"mlp": models.MLP, "cnn": models.CNN}[name], conventional, ours, 1
    splits = multimnist_data.multimnist_splits()
    mnist = datasets.MNIST(root, train=True)
    left, right = multimnist_data.random_pairs(len(mnist), 0)
    conventional = torch.utils.data.DataLoader(_CanvasDataset(mnist, left, right, transforms.ToTensor()), batch_size=64, shuffle=True)
    ours = data.TensorBatches((data.to_float(splits.train[0]), splits.train[1], splits.train[2]), 64, shuffle=True)
    return models.MultiMNISTNet, conventional, ours, 2


def _measure(name: str, pipeline: str, channels_last: bool, steps: int, threads: int, keep_memory: bool, out) -> None:
    """Subprocess body: samples/s of one model on one pipeline ('conventional' or 'ours')."""
    torch.set_num_threads(threads)
    if keep_memory:
        allocator.keep_freed_memory()
    factory, conventional, ours, heads = _pipelines(name)
    torch.manual_seed(0)
    batches = conventional if pipeline == "conventional" else ours
    out.put(64 * _steps_per_second(factory(), batches, steps, channels_last=channels_last, heads=heads))


def _in_fresh_processes(target, args_list: list[tuple]) -> float:
    """Run `target(*args, queue)` in one spawned process per args (concurrently) and sum their rates.

    Every measurement gets a fresh interpreter, so no pipeline inherits another's memory, threads
    or allocator state (measured in one process, the second pipeline ran up to 1.5× slower).
    """
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, q)) for args in args_list]
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return total


def throughput(steps: int, threads: int) -> list[dict]:
    rows = []
    for name in ("mlp", "cnn", "multimnist"):
        conv = name != "mlp"
        a = _in_fresh_processes(_measure, [(name, "conventional", False, steps, threads, False)])
        b = _in_fresh_processes(_measure, [(name, "ours", conv, steps, threads, True)])
        rows.append({"model": name, "conventional": a, "ours": b, "ratio": b / a})
        print(f"  {name:11} conventional {a:9.0f} samples/s   ours {b:9.0f} samples/s   ratio {b / a:5.2f}×", flush=True)
        # Each of our choices, measured by undoing it alone; and the allocator setting given to the conventional pipeline.
        a_kept = _in_fresh_processes(_measure, [(name, "conventional", False, steps, threads, True)])
        b_freed = _in_fresh_processes(_measure, [(name, "ours", conv, steps, threads, False)])
        print(f"  {'':11} conventional with the allocator setting {a_kept:9.0f} samples/s   ours / that {b / a_kept:5.2f}×", flush=True)
        print(f"  {'':11} ours without the allocator setting {b_freed:9.0f} samples/s   its speed-up {b / b_freed:5.2f}×", flush=True)
        if conv:  # the layout choice that hw3.train makes for conv nets, measured
            c = _in_fresh_processes(_measure, [(name, "ours", False, steps, threads, True)])
            print(f"  {'':11} ours without channels-last {c:9.0f} samples/s   channels-last speed-up {b / c:5.2f}×", flush=True)
    return rows


def _fit_inputs(name: str):
    """(model factory, training tensors, heads) of our engine for 'mlp', 'cnn', 'multimnist' or 'bonus'."""
    if name == "multimnist":
        sets, _ = multimnist_data.prepared(0, torch.device("cpu"))
        return models.MultiMNISTNet, sets["train"], multimnist_data.HEADS
    factory = {"mlp": models.MLP, "cnn": models.CNN, "bn-cnn": lambda: models.BonusCNN(16),
               "wide": lambda: models.WideCNN(32)}[name]
    return factory, data.image_splits("FashionMNIST").train, ("label",)


def _measure_precision(name: str, precision: str, steps: int, threads: int, out, repeats: int = 3) -> None:
    """Subprocess body: samples/s of `train.fit` (our engine, batch 64, no evaluation) in fp32 or bf16 autocast."""
    torch.set_num_threads(threads)
    allocator.keep_freed_memory()
    factory, tensors, heads = _fit_inputs(name)
    torch.manual_seed(0)
    model = factory()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def run(n: int) -> float:
        subset = tuple(t[:n] for t in tensors)
        start = time.perf_counter()
        train.fit(model, opt, subset, epochs=1, batch_size=64, seed=0, heads=heads, precision=precision)
        return len(subset[0]) / (time.perf_counter() - start)

    run(64 * 10)  # warm-up: 10 steps
    out.put(max(run(64 * steps) for _ in range(repeats)))


def precision_ratios(steps: int, threads: int) -> list[dict]:
    """Training samples/s in fp32 and in bf16 autocast, per model, each in a fresh process."""
    rows = []
    for name in ("mlp", "cnn", "multimnist", "bn-cnn", "wide"):
        fp32 = _in_fresh_processes(_measure_precision, [(name, "fp32", steps, threads)])
        bf16 = _in_fresh_processes(_measure_precision, [(name, "bf16", steps, threads)])
        rows.append({"model": name, "fp32": fp32, "bf16": bf16, "ratio": bf16 / fp32})
        label = {"bn-cnn": "bonus BN-CNN", "wide": "bonus wide"}.get(name, name)
        print(f"  {label:12} fp32 {fp32:9.0f} samples/s   bf16 {bf16:9.0f} samples/s   bf16/fp32 {bf16 / fp32:5.2f}×", flush=True)
    return rows


def bonus_recipe_epoch(threads: int, out) -> None:
    """Subprocess body: seconds of one training epoch (50k images, augmentation, no evaluation) of
    the bonus's last ablation step, with all the machine's threads: the budget check for one run."""
    from hw3.experiments import bonus
    from hw3.nn.augment import Augmentation

    torch.set_num_threads(threads)
    allocator.keep_freed_memory()
    config = bonus.ABLATION[-1]
    splits = data.image_splits("FashionMNIST")
    torch.manual_seed(0)
    model = bonus.build_model(config)
    opt, sched = bonus._optimizer(config, model, -(-len(splits.train[0]) // config.batch_size))
    fill = float(-splits.mean / splits.std)
    augment = Augmentation(config.crop_padding, config.hflip, config.erasing, fill)
    start = time.perf_counter()
    train.fit(model, opt, splits.train, epochs=1, batch_size=config.batch_size, seed=0, augment=augment,
              scheduler=sched, precision=config.precision)
    out.put(time.perf_counter() - start)


def eval_batches(batch_sizes=(64, 256, 2048)) -> None:
    """Samples/s of `train.evaluate` (inference mode) on the 10k validation images, per evaluation batch size."""
    splits = data.image_splits("FashionMNIST")
    torch.manual_seed(0)
    model = models.CNN()
    train.evaluate(model, splits.val, batch_size=256)  # warm-up
    for bs in batch_sizes:
        seconds = []
        for _ in range(3):  # best of three
            start = time.perf_counter()
            train.evaluate(model, splits.val, batch_size=bs)
            seconds.append(time.perf_counter() - start)
        print(f"  CNN evaluation, batch {bs:5}: {len(splits.val[0]) / min(seconds):9.0f} samples/s", flush=True)


def workload() -> dict[str, int]:
    """Training samples each model processes over all the report's Part 2 and Part 3 experiments."""
    from hw3.experiments import registry
    from hw3.experiments.fashion import FashionConfig
    from hw3.experiments.multimnist import MultiMNISTConfig, SingleTaskConfig

    totals = {"mlp": 0, "cnn": 0, "multimnist": 0}
    for _, config in registry.all_experiments():
        if isinstance(config, FashionConfig):
            totals[config.model] += config.epochs * 50_000
        elif isinstance(config, (MultiMNISTConfig, SingleTaskConfig)):
            totals["multimnist"] += config.epochs * 50_000
    return totals


def parallel(steps: int, cores: int) -> None:
    """Aggregate samples/s: one process with `cores` threads against `cores` single-threaded processes."""
    for name in ("cnn", "multimnist"):
        one = _in_fresh_processes(_measure, [(name, "ours", True, steps, cores, True)])
        many = _in_fresh_processes(_measure, [(name, "ours", True, steps, 1, True)] * cores)
        print(f"  {name:11} 1 process × {cores} threads {one:8.0f} samples/s   {cores} processes × 1 thread {many:8.0f} samples/s   ratio {many / one:5.2f}×", flush=True)


def report_timings() -> None:
    """Warm-cache execution of the report, and the cold recompute it replaces.

    The report is rendered to a notebook by Quarto (tools/render_quarto.py, executing, not reusing a
    stored execution) in a child process; the time includes Quarto's start and the kernel start.
    """
    import subprocess
    import sys
    import tempfile

    from hw3.experiments import registry

    tools = PROJECT_ROOT / "tools"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tools), os.environ.get("PYTHONPATH")])),
           "HW3_CACHE_ONLY": "1"}
    env.setdefault("QUARTO_PYTHON", sys.executable)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, str(tools / "render_quarto.py"), "report.qmd", "--no-freeze",
                               "--to", "ipynb", "--output-dir", out], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        total = time.perf_counter() - started
    if proc.returncode == 0:
        print(f"  report execution to a notebook, warm cache, including kernel start: {total:.1f} s")
    else:
        print(f"  report execution failed: {proc.stderr.strip()[-500:]}")
    metas = [exp.read_meta(config) or {} for exp, config in registry.all_experiments()]  # meta.json only: never computes
    seconds = sum(m.get("wall_time_s", 0.0) for m in metas)
    print(f"  cold recompute: the cached experiments took {seconds / 60:.1f} min of worker time in total "
          f"(run in parallel by `make results`; its wall-clock total is printed at the end of that command)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per pipeline and repeat (best of 3, after 10 warm-up steps)")
    parser.add_argument("--skip-parallel", action="store_true")
    parser.add_argument("--skip-report", action="store_true")
    parser.add_argument("--skip-render", action="store_true")
    parser.add_argument("--only", choices=["render"], help="run one section alone")
    args = parser.parse_args(argv)
    if args.only == "render":
        import render_bench

        render_bench.main()
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {fingerprint.cpu_model()}, {cores} cores, torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}; threads {torch.get_num_threads()}")
    print(f"training throughput, batch 64, {args.steps} steps (a: conventional DataLoader, b: our engine):")
    rows = throughput(args.steps, torch.get_num_threads())
    weights = workload()
    by_model = {r["model"]: r for r in rows}
    time_a = sum(n / by_model[m]["conventional"] for m, n in weights.items())
    time_b = sum(n / by_model[m]["ours"] for m, n in weights.items())
    print(f"  the report's Part 2 + Part 3 training workload ({', '.join(f'{m}: {n / 1e6:.1f}M samples' for m, n in weights.items())}): "
          f"{time_a / 60:.1f} min conventional, {time_b / 60:.1f} min ours, ratio {time_a / time_b:.2f}× (single process)")
    print(f"training precision, batch 64, {args.steps} steps (our engine; bf16 = autocast, `precision=\"bf16\"`):")
    units = fingerprint.cpu_bf16_units()
    print(f"  CPU: {fingerprint.cpu_model()}; bf16 units: {units} "
          f"(bf16 pays only with amx_bf16 or avx512_bf16; without them expect a ratio below 1)")
    from hw3.experiments import bonus

    last = bonus.ABLATION[-1]
    if units == "none":
        print("  skipped, with the bonus-recipe epoch below: this CPU has no bf16 units, so bf16 is emulated "
              "(5-10× slower than fp32 on a 2-core AMD EPYC; the wide network's measurement alone ran past 20 min)", flush=True)
    else:
        precision_ratios(args.steps, torch.get_num_threads())
        seconds = _in_fresh_processes(bonus_recipe_epoch, [(torch.get_num_threads(),)])
        print(f"bonus recipe '{last.label}' ({last.precision}, batch {last.batch_size}), one epoch of 50k images on "
              f"{torch.get_num_threads()} threads: {seconds:.0f} s; its {last.epochs} epochs: {last.epochs * seconds / 60:.1f} min "
              f"(plus one validation pass per epoch)", flush=True)
    print("evaluation batch size (CNN, fp32, inference mode):")
    eval_batches()
    if not args.skip_parallel and cores > 1:
        print(f"parallel workers (our engine, {args.steps} steps each):")
        parallel(args.steps, cores)
    if not args.skip_report:
        print("report:")
        report_timings()
    if not args.skip_render:
        import render_bench

        render_bench.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
