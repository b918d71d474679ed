"""The result store: every experiment's output, with a fingerprint of everything it depends on.

An experiment is a function `func(config, settings[, upstream])` and a frozen dataclass config.
Its entry lives in `cache/<prefix>/<name>/`: `output.joblib` (the result, plain CPU data, written
with joblib) and `meta.json` (readable: the config, the fingerprint, the machine, the timing).

An entry is *current* when its fingerprint still matches: the normalised source of every package
function and class it reaches, the package constants they read, the content of the data files it
read, and the keys and output hashes of the upstream results it used (see `hw3.fingerprint`).
`status` says which of these changed. Library versions and the machine are recorded too: a
different machine is only reported, and a version difference is reported, counting as stale only
under HW3_STRICT_VERSIONS=1. (Across CPUs the same code gives slightly different floating point,
so "stale" would mean "recompute everything on every laptop"; a torch upgrade changes kernels the
same way. Strict mode is for checking a cache before publishing it.)

Nothing is deleted implicitly: recomputing replaces one entry atomically, and `garbage` lists the
entries no registered experiment reaches, for `python -m hw3 gc` to remove on request.

In cache-only mode (HW3_CACHE_ONLY=1: renders, tests, CI) nothing is computed and nothing is
written; a missing or stale entry raises CacheMissError with the reason and the command that fixes it.
The outputs are pickles: load only caches you trust (your own, or this repository's).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from . import fingerprint
from .paths import cache_dir, data_dir

REFRESH_COMMAND = "make results"

FINGERPRINT_EXEMPT = True  # where and how results are kept is not what they are (see hw3.fingerprint.closure)
OUTPUT, META = "output.joblib", "meta.json"


class CacheMissError(RuntimeError):
    """A result is missing, stale or unreadable, in cache-only mode; the message says why and how to fix it."""


def cache_only() -> bool:
    return os.environ.get("HW3_CACHE_ONLY", "").strip().lower() not in ("", "0", "false", "no")


def strict_versions() -> bool:
    return os.environ.get("HW3_STRICT_VERSIONS", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class RunSettings:
    """How to run, as opposed to what to compute: never part of a result's key or fingerprint."""

    device: str | None = None  # 'cpu', 'cuda', or None for CUDA when available
    progress: Callable[[int, dict], None] | None = None  # called after each epoch with its metrics


# ----------------------------------------------------------------------------------------------
# Keys and names


def _check_config(config: Any) -> None:
    if isinstance(config, type) or not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise TypeError(f"experiments take a frozen dataclass config, got {type(config).__name__}")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def non_default_fields(config: Any) -> dict[str, Any]:
    """The fields that differ from their defaults (and the required ones): what identifies a config.

    Leaving defaults out is what lets a new defaulted field leave every existing key unchanged.
    """
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if getattr(config, f.name) != _default(f)}


def _name_part(field_name: str, value: Any, required: bool) -> str:
    if isinstance(value, bool):
        return field_name if value else f"no-{field_name}"
    if isinstance(value, int):
        return f"{field_name}{value}"
    if isinstance(value, float):  # short (`lr0.01`), unless that would merge two values (`:g` keeps 6 digits)
        short = f"{value:g}"
        return f"{field_name}{short if float(short) == value else repr(value)}"
    if isinstance(value, str):
        return value if required else f"{field_name}-{value}"
    return f"{field_name}-{joblib.hash(value)[:8]}"  # tuples of configs and the like


def config_name(prefix: str, config: Any) -> str:
    """`prefix` then every non-default field, in declaration order: unique, and readable."""
    required = {f.name for f in dataclasses.fields(config) if _default(f) is dataclasses.MISSING}
    parts = [_name_part(k, v, k in required) for k, v in non_default_fields(config).items()]
    return "-".join([prefix, *parts]).replace("/", "_")


def config_key(prefix: str, config: Any) -> str:
    return joblib.hash({"experiment": prefix, "config_class": type(config).__qualname__, "fields": non_default_fields(config)})


# ----------------------------------------------------------------------------------------------
# Status


@dataclass
class Status:
    state: str  # 'cached', 'stale' or 'missing'
    reasons: list[str] = field(default_factory=list)  # why stale (or missing)
    notes: list[str] = field(default_factory=list)  # differences that do not make it stale

    def __str__(self) -> str:
        return "; ".join(self.reasons) if self.reasons else self.state


def _diff(kind: str, stored: dict[str, str], current: dict[str, str]) -> list[str]:
    reasons = []
    for key in sorted(set(stored) | set(current)):
        label = key.replace(":", ".")
        if key not in current:
            reasons.append(f"{label} {'no longer used' if kind == 'code' else 'removed'}")
        elif key not in stored:
            reasons.append(f"{label} newly used")
        elif stored[key] != current[key]:
            reasons.append(f"{label} changed")
    return reasons


# ----------------------------------------------------------------------------------------------
# Experiments


class Experiment:
    """A cached experiment: `exp(config)` returns the current result, computing it unless cache-only.

    prefix: the start of every run's name and the cache folder of its entries.
    depends: config → [(experiment, config)] whose results `func` receives as `upstream`, by name.
    code: config → objects whose code a config selects through a table (see `hw3.fingerprint`).
    """

    def __init__(self, func: Callable, prefix: str, depends: Callable[[Any], list] | None = None,
                 code: Callable[[Any], list] | None = None):
        self.func, self.prefix = func, prefix
        self.depends_on = depends or (lambda config: [])
        self.code_for = code or (lambda config: [])
        self.__wrapped__ = func  # lets the fingerprint walk find the function's code
        self.__name__, self.__doc__ = func.__name__, func.__doc__

    def __repr__(self) -> str:
        return f"Experiment({self.func.__module__}.{self.func.__name__})"

    # identity -------------------------------------------------------------------------------
    def name(self, config: Any) -> str:
        return config_name(self.prefix, config)

    def key(self, config: Any) -> str:
        return config_key(self.prefix, config)

    def folder(self, config: Any, root: Path | None = None) -> Path:
        return (root or cache_dir()) / self.prefix / self.name(config)

    def upstream(self, config: Any) -> list[tuple[Experiment, Any]]:
        return list(self.depends_on(config))

    # fingerprint ----------------------------------------------------------------------------
    def code_fingerprint(self, config: Any, known_fields: Any = None) -> tuple[dict[str, str], dict[str, str]]:
        roots = [self.func, type(config), *self.code_for(config)]
        return fingerprint.closure(roots, fingerprint.source_root(self.func), known_fields)

    def read_meta(self, config: Any) -> dict | None:
        try:
            return json.loads((self.folder(config) / META).read_text())
        except (OSError, ValueError):
            return None

    def status(self, config: Any) -> Status:
        """Is the entry there, and does everything it was computed from still hold? Never writes."""
        _check_config(config)
        meta = self.read_meta(config)
        if meta is None or not (self.folder(config) / OUTPUT).exists():
            return Status("missing", ["not in the cache"])
        if meta.get("key") != self.key(config):
            return Status("missing", ["the cache folder holds a different config"])
        code, constants = self.code_fingerprint(config)
        notes = []
        changed = [(current, k) for current, stored in ((code, meta["code"]), (constants, meta["constants"]))
                   for k in current if k in stored and stored[k] != current[k]]
        if changed:  # a config class (or a constant of configs) that only gained defaulted fields is the same
            lenient = dict(zip(("code", "constants"), self.code_fingerprint(config, _field_names(meta.get("config")))))
            for current, k in changed:
                kind = "code" if current is code else "constants"
                if lenient[kind].get(k) == meta[kind][k]:
                    current[k] = meta[kind][k]
                    notes.append(f"{k.replace(':', '.')} has new defaulted fields")
        reasons = _diff("code", meta["code"], code) + _diff("constants", meta["constants"], constants)
        root = data_dir()
        for rel, stored in sorted(meta["data"].items()):
            now = fingerprint.file_hash(root / rel)
            if now is not None and now != stored:  # absent data (a render without datasets) cannot be checked
                reasons.append(f"data file {rel} changed")
        for exp, cfg in self.upstream(config):
            name = exp.name(cfg)
            up = exp.status(cfg)
            recorded = meta["upstream"].get(name)
            if up.state != "cached":
                reasons.append(f"upstream {name} is {up.state} ({up})")
            elif recorded is None or recorded["output"] != (exp.read_meta(cfg) or {}).get("output_hash"):
                reasons.append(f"upstream {name} changed")
        now_versions = fingerprint.versions()
        version_diff = [f"{k} {v} (now {now_versions.get(k)})" for k, v in meta["versions"].items() if now_versions.get(k) != v]
        if version_diff:
            (reasons if strict_versions() else notes).append("computed with " + ", ".join(version_diff))
        if meta["machine"].get("cpu") != fingerprint.cpu_model() and meta["machine"].get("device", "cpu") == "cpu":
            notes.append(f"computed on another machine: {meta['machine'].get('cpu')}")
        return Status("stale" if reasons else "cached", reasons, notes)

    # reading --------------------------------------------------------------------------------
    def load(self, config: Any) -> Any:
        """The current result, or CacheMissError naming the experiment, the reason and the fix."""
        st = self.status(config)
        name = self.name(config)
        if st.state != "cached":
            raise CacheMissError(f"experiment '{name}' is {st.state}: {st} (cache: {cache_dir()}). "
                                 f"Recompute it with `python -m hw3 run {name}` (or `{REFRESH_COMMAND}`), then commit cache/.")
        return self.load_entry(config)

    def load_entry(self, config: Any) -> Any:
        """The stored output whatever its status (for inspecting old results)."""
        name = self.name(config)
        try:
            return joblib.load(self.folder(config) / OUTPUT)
        except Exception as exc:  # a truncated or corrupt file: say which entry, and how to mend it
            # Its status still reads 'cached' (the meta is fine), so a plain `run` would skip it: --force.
            raise CacheMissError(f"experiment '{name}': its cache entry is unreadable ({type(exc).__name__}: {exc}). "
                                 f"Recompute it with `python -m hw3 run {name} --force`.") from exc

    # computing ------------------------------------------------------------------------------
    def compute(self, config: Any, settings: RunSettings | None = None) -> Any:
        """Run the experiment (its upstream results must be current) and replace its entry atomically."""
        _check_config(config)
        if cache_only():
            raise CacheMissError(f"experiment '{self.name(config)}' would be computed, but HW3_CACHE_ONLY is set")
        settings = settings or RunSettings()
        # Current upstream results are loaded; missing ones are computed first (the runner has already done so).
        upstream = {exp.name(cfg): exp(cfg, settings) for exp, cfg in self.upstream(config)}
        kwargs = {"upstream": upstream} if self.upstream(config) else {}
        started = time.perf_counter()
        with fingerprint.recording_data_files() as files:
            output = self.func(config, settings, **kwargs)
        wall = time.perf_counter() - started
        code, constants = self.code_fingerprint(config)
        root = data_dir()
        meta = {
            "name": self.name(config),
            "experiment": f"{self.func.__module__}.{self.func.__name__}",
            "key": self.key(config),
            "config": _jsonable(dataclasses.asdict(config)),
            "code": code,
            "constants": constants,
            "data": {str(p.relative_to(root)) if p.is_relative_to(root) else str(p): fingerprint.file_hash(p) for p in files},
            "upstream": {exp.name(cfg): {"key": exp.key(cfg), "output": exp.read_meta(cfg)["output_hash"]} for exp, cfg in self.upstream(config)},
            "output_hash": joblib.hash(output),
            "versions": fingerprint.versions(),
            "machine": fingerprint.machine(str(_device_of(output, settings))),
            "wall_time_s": wall,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        self._write(config, output, meta)
        return output

    def _write(self, config: Any, output: Any, meta: dict) -> None:
        folder = self.folder(config)
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the entry, then swap it in: an interrupted run leaves the old entry intact.
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            joblib.dump(output, tmp / OUTPUT)
            (tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
            old = folder.with_name(f".{folder.name}.old")
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def __call__(self, config: Any, settings: RunSettings | None = None) -> Any:
        if cache_only() or self.status(config).state == "cached":
            return self.load(config)
        return self.compute(config, settings)


def experiment(prefix: str, depends: Callable[[Any], list] | None = None, code: Callable[[Any], list] | None = None):
    """Decorator: declare `func(config, settings[, upstream])` an experiment whose runs are named `prefix-...`."""
    def wrap(func: Callable) -> Experiment:
        return Experiment(func, prefix, depends, code)
    return wrap


def _field_names(config: Any) -> set[str]:
    """Every key of the stored (JSON) config, nested configs included: the fields it was computed with."""
    if isinstance(config, dict):
        return set(config).union(*(_field_names(v) for v in config.values()))
    if isinstance(config, list):
        return set().union(*(_field_names(v) for v in config))
    return set()


def _device_of(output: Any, settings: RunSettings) -> str:
    meta = output.get("meta", {}) if isinstance(output, dict) else {}
    return meta.get("device") or settings.device or "cpu"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def garbage(reachable: list[tuple[Experiment, Any]], root: Path | None = None) -> list[Path]:
    """Entry folders under the cache that no registered (experiment, config) owns."""
    root = root or cache_dir()
    wanted = {exp.folder(cfg, root) for exp, cfg in reachable}
    if not root.exists():
        return []
    entries = [p for prefix in sorted(root.iterdir()) if prefix.is_dir() for p in sorted(prefix.iterdir()) if p.is_dir()]
    return [p for p in entries if p not in wanted] + [p for p in sorted(root.iterdir()) if p.is_dir() and not any(p.iterdir())]
