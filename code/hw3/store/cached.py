"""Cached experiments: each run's output kept in cache/ with a fingerprint of everything it depends on.

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

Nothing is deleted implicitly: recomputing replaces one entry atomically, and `hw3.store.tidy.garbage` lists the
entries no registered experiment reaches, for `python -m hw3 gc` to remove on request.

In cache-only mode (HW3_CACHE_ONLY=1: renders, tests, CI) nothing is computed and nothing is
written; a missing or stale entry raises CacheMissError with the reason and the command that fixes it.

A cache may come from anyone: outputs are read by a restricted unpickler that builds only plain data
(`hw3.store.safeload`), meta.json is size- and depth-checked and its data keys must stay inside the
data folder, and its texts are escaped wherever they are shown (`hw3.store.untrusted`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

from hw3.store import fingerprint, runtime, safeload, sources, swap
from hw3.environment import cache_dir, cache_only, data_dir, strict_versions

REFRESH_COMMAND = "make results"

FINGERPRINT_EXEMPT = True  # where and how results are kept is not what they are (see hw3.store.fingerprint.closure)
OUTPUT, META = swap.OUTPUT, swap.META

# Keys of an output's "meta" dict (what experiments.skeleton returns) that describe the run, not the
# result: they differ between two bit-identical runs, so they are kept in meta.json only, and a
# recompute that gives the same result leaves output.joblib byte-identical.
RUN_FACTS = ("wall_time_s", "threads")

# Free space needed before computing: the largest entry (about 5 MiB) with its rescue copy, with a wide margin.
MIN_FREE_BYTES = 64 * 2**20


class CacheMissError(RuntimeError):
    """A result is missing, stale or unreadable, in cache-only mode; the message says why and how to fix it."""


class StoreError(RuntimeError):
    """A result was not written (the code changed while it ran, the cache is not writable, ...); the message says why."""


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


def _per_config(func: Callable[[str, Any], str]) -> Callable[[str, Any], str]:
    """Memoise `func(prefix, config)`: configs are frozen, so an equal config gives the same answer
    (every load and status asks for its name and key; joblib.hash costs ~1 ms). An unhashable
    config is computed each time."""
    memo = functools.lru_cache(maxsize=4096)(func)

    @functools.wraps(func)
    def call(prefix: str, config: Any) -> str:
        try:
            return memo(prefix, config)
        except TypeError:
            return func(prefix, config)

    return call


@_per_config
def config_name(prefix: str, config: Any) -> str:
    """`prefix` then every non-default field, in declaration order: unique, and readable."""
    required = {f.name for f in dataclasses.fields(config) if _default(f) is dataclasses.MISSING}
    parts = [_name_part(k, v, k in required) for k, v in non_default_fields(config).items()]
    return "-".join([prefix, *parts]).replace("/", "_")


@_per_config
def config_key(prefix: str, config: Any) -> str:
    return joblib.hash({"experiment": prefix, "config_class": type(config).__qualname__, "fields": non_default_fields(config)})


# ----------------------------------------------------------------------------------------------
# Status


@dataclass
class Status:
    state: str  # 'cached', 'stale', 'missing' or 'unreadable'
    reasons: list[str] = field(default_factory=list)  # why stale (or missing, or unreadable)
    notes: list[str] = field(default_factory=list)  # differences that do not make it stale

    def __str__(self) -> str:
        return "; ".join(self.reasons) if self.reasons else self.state


def _label(key: str) -> str:
    module, _, name = key.partition(":")
    return f"module-level code of {module}" if name == fingerprint.MODULE_CODE else f"{module}.{name}"


def _same(stored: dict[str, str], current: dict[str, str]) -> bool:
    """Equal as multisets of hashes: definitions are identified by content, not by name or module
    (a rename or a move with its callers changes no hash), and a copy elsewhere cannot stand in for an edit."""
    return Counter(stored.values()) == Counter(current.values())


def _diff(kind: str, stored: dict[str, str], current: dict[str, str], stored_local: dict | None = None,
          current_local: dict | None = None) -> list[str]:
    """Reasons, by name, for the hashes of `current` that `stored` does not hold (and the reverse).

    Hashes are paired first (the same key, then any key): what is left changed. With the definitions' own
    hashes (`*_local`), a definition is named only when its own text changed, not when only something it
    reaches did (unless nothing else would be named)."""
    left_s, left_c = dict(stored), dict(current)
    for k in list(left_c):
        if left_s.get(k) == left_c[k]:
            del left_s[k], left_c[k]
    by_hash: dict[str, list[str]] = {}
    for k, h in sorted(left_s.items()):
        by_hash.setdefault(h, []).append(k)
    for k, h in sorted(left_c.items()):
        if by_hash.get(h):
            del left_s[by_hash[h].pop()], left_c[k]
    stored_by_name = {}
    for k in left_s:
        stored_by_name.setdefault(k.partition(":")[2], k)
    current_names = {k.partition(":")[2] for k in left_c}
    named, own = [], []
    for key in sorted(set(left_s) | set(left_c)):
        name = key.partition(":")[2]
        if key in left_c:
            before = key if key in left_s else stored_by_name.get(name)
            if before is None:
                reason = f"{_label(key)} newly used"
            else:
                reason = f"{_label(key)} changed"
                if stored_local is not None and current_local is not None and before in stored_local \
                        and stored_local[before] == current_local.get(key):
                    named.append(reason)
                    continue  # its own text is the same: something it reaches changed, and is named
        elif name not in current_names:  # else reported as changed under its new module
            reason = f"{_label(key)} {'no longer used' if kind == 'code' else 'removed'}"
        else:
            continue
        named.append(reason)
        own.append(reason)
    return own or named


def _config_value(value: Any, known: frozenset[str] | None) -> Any:
    """`_jsonable(asdict(config))`, without the defaulted fields not in `known` (new since it was stored)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _config_value(getattr(value, f.name), known) for f in dataclasses.fields(value)
                if known is None or f.name in known or getattr(value, f.name) != _default(f)}
    if isinstance(value, (list, tuple)):
        return [_config_value(v, known) for v in value]
    if isinstance(value, dict):
        return {str(k): _config_value(v, known) for k, v in value.items()}
    return _jsonable(value)


def _config_reasons(stored: dict, config: Any) -> list[str]:
    """The fields whose value differs from the stored config: defaults count (the key holds only non-defaults)."""
    now = _config_value(config, frozenset(_field_names(stored)))
    return [f"config field {k} changed (default now {now.get(k)!r})" for k in sorted(set(stored) | set(now))
            if stored.get(k) != now.get(k)]


_META_FIELDS = {"key": str, "config": dict, "code": dict, "constants": dict, "data": dict, "upstream": dict,
                "versions": dict, "machine": dict, "output_hash": str}


def _meta_problem(meta: Any) -> str | None:
    """What is wrong with a parsed meta.json, or None."""
    if not isinstance(meta, dict):
        return f"not a JSON object but a {type(meta).__name__}"
    for name, kind in _META_FIELDS.items():
        if not isinstance(meta.get(name), kind):
            return f"'{name}' is {'missing' if name not in meta else f'a {type(meta[name]).__name__}'}, not a {kind.__name__}"
    if not all(isinstance(v, dict) and isinstance(v.get("output"), str) for v in meta["upstream"].values()):
        return "an 'upstream' entry has no output hash"
    outside = next((k for k in meta["data"] if not _inside_data_folder(k)), None)
    if outside is not None:  # never stat, open or hash it: /dev/zero would hang, /etc/... would leak
        return f"data key {outside!r} is not a path inside the data folder"
    return None


def _inside_data_folder(key: str) -> bool:
    """A relative path that cannot leave the folder it is joined to (no '..', not absolute)."""
    parts = Path(key).parts
    return bool(parts) and not Path(key).is_absolute() and ".." not in parts and not key.startswith("~")


MAX_META_DEPTH, MAX_META_BYTES = 16, 16 * 2**20  # what the store writes is 4 levels deep and well under 1 MiB


def _too_deep(value: Any, limit: int = MAX_META_DEPTH) -> bool:
    """Nested deeper than `limit` (checked without recursion: a hostile file could be 100,000 deep)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


@functools.lru_cache(maxsize=512)
def _parse_meta(path: str, signature: tuple[int, int]) -> tuple[Any, str | None]:
    if signature[1] > MAX_META_BYTES:
        return None, f"{signature[1]:,} bytes, more than any meta.json the store writes"
    try:
        meta = json.loads(Path(path).read_text())
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON ({str(exc)[:200] or type(exc).__name__})"
    if _too_deep(meta):
        return None, f"nested more than {MAX_META_DEPTH} levels deep"
    return meta, _meta_problem(meta)


def _meta_at(path: Path) -> tuple[dict | None, str | None]:
    """(meta, None), (None, problem) for a malformed file, or (None, None) when there is none. Shared: do not mutate."""
    signature = fingerprint.stat_signature(path)
    if signature is None:
        return None, None
    meta, problem = _parse_meta(str(path), signature)
    return (None, problem) if problem else (meta, None)


# Statuses computed in this process, by entry folder: (what they were computed from, the status).
_STATUS_MEMO: dict[str, tuple[tuple, Status]] = {}


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
    def code_fingerprint(self, config: Any, known_fields: Any = None, ran: Any = ()) -> tuple[dict[str, str], dict[str, str]]:
        fp = self.fingerprint_details(config, known_fields, ran)
        return dict(fp.code), dict(fp.constants)

    def fingerprint_details(self, config: Any, known_fields: Any = None, ran: Any = ()) -> fingerprint.Fingerprint:
        """The closure from the experiment's function, its declared code, its config classes and `ran` (the
        items a run recorded beyond these: see `compute`)."""
        roots = [self.func, *self.code_for(config)]
        return fingerprint.closure_details(roots, fingerprint.source_root(self.func), known_fields,
                                           config_roots=fingerprint.config_classes(config), ran=ran)

    def read_meta(self, config: Any) -> dict | None:
        """The entry's meta.json (a copy), or None when it is missing or malformed."""
        meta, _ = _meta_at(self.folder(config) / META)
        return copy.deepcopy(meta)

    def _status_key(self, config: Any) -> tuple:
        """Everything a status is computed from that can change while a process lives (a kernel across renders)."""
        folder = self.folder(config)
        meta, _ = _meta_at(folder / META)
        root = data_dir()
        data = tuple((rel, fingerprint.stat_signature(root / rel)) for rel in sorted((meta or {}).get("data", {}))
                     if _inside_data_folder(rel))
        try:  # memoised on the source files' signatures; part of the key so that clearing that memo is seen too
            code = tuple(tuple(sorted(d.items())) for d in self.code_fingerprint(config))
        except LookupError:
            code = None
        leftovers = tuple(swap.leftovers(folder)) if meta is None else ()  # an interrupted swap changes the reason
        return (self.key(config), code, fingerprint.stat_signature(folder / META), fingerprint.stat_signature(folder / OUTPUT), leftovers,
                fingerprint.package_signature(fingerprint.source_root(self.func)), str(root), data, strict_versions(),
                tuple(exp._status_key(cfg) for exp, cfg in self.upstream(config)))

    def status(self, config: Any) -> Status:
        """Is the entry there, intact, and does everything it was computed from still hold? Never writes.

        Computed once per process for as long as nothing it depends on changes (see `_status_key`).
        """
        _check_config(config)
        folder, key = self.folder(config), self._status_key(config)
        memo = _STATUS_MEMO.get(str(folder))
        if memo is None or memo[0] != key:
            status = self._status(config)
            if status.state in ("missing", "unreadable") and folder.parent.is_dir():
                # A writer may be swapping this entry in right now: look again once it is done.
                with swap.lock(folder.parent, shared=True):
                    key, status = self._status_key(config), self._status(config)
            memo = _STATUS_MEMO[str(folder)] = (key, status)
        return copy.deepcopy(memo[1])

    def _status(self, config: Any) -> Status:
        folder = self.folder(config)
        meta, problem = _meta_at(folder / META)
        if problem:
            return Status("unreadable", [f"its meta.json is malformed ({problem})"])
        if meta is None or not (folder / OUTPUT).exists():
            if swap.leftovers(folder):
                return Status("missing", [f"an interrupted write left it beside its folder: `python -m hw3 run {self.name(config)}` "
                                          "puts it back without recomputing"])
            return Status("missing", ["not in the cache"])
        if meta["key"] != self.key(config):
            return Status("missing", ["the cache folder holds a different config"])
        damaged = _output_problem(meta, folder / OUTPUT)
        if damaged:
            return Status("unreadable", [damaged])
        ran = meta.get("ran") if isinstance(meta.get("ran"), list) else []
        try:
            fp = self.fingerprint_details(config, ran=ran)
        except LookupError as exc:  # `code=` selects a table entry that is gone
            return Status("stale", [f"the config selects a table entry that no longer exists ({exc})"])
        notes = []
        code, local, constants = fp.code, fp.local, fp.constants
        if not (_same(meta["code"], code) and _same(meta["constants"], constants)):
            # a config class (or a constant of configs) that only gained defaulted fields is the same
            lenient = self.fingerprint_details(config, _field_names(meta.get("config")), ran=ran)
            if _same(meta["code"], lenient.code) and _same(meta["constants"], lenient.constants):
                notes += [f"{k.replace(':', '.')} has new defaulted fields" for k in sorted(lenient.local)
                          if lenient.local[k] != local.get(k)]
                code, local, constants = lenient.code, lenient.local, lenient.constants
        reasons = _diff("code", meta["code"], code, meta.get("code_local"), local) if not _same(meta["code"], code) else []
        reasons += _diff("constants", meta["constants"], constants) if not _same(meta["constants"], constants) else []
        reasons += _config_reasons(meta["config"], config)
        reasons += self._data_reasons(meta, notes)
        reasons += self._upstream_reasons(config, meta)
        now_versions = fingerprint.versions()
        version_diff = [f"{k} {v} (now {now_versions.get(k)})" for k, v in meta["versions"].items() if now_versions.get(k) != v]
        if version_diff:
            (reasons if strict_versions() else notes).append("computed with " + ", ".join(version_diff))
        if meta["machine"].get("cpu") != fingerprint.cpu_model() and meta["machine"].get("device", "cpu") == "cpu":
            notes.append(f"computed on another machine: {meta['machine'].get('cpu')}")
        reasons = list(dict.fromkeys(reasons))  # a binding can be named both as code and as a constant
        return Status("stale" if reasons else "cached", reasons, notes)

    @staticmethod
    def _data_reasons(meta: dict, notes: list[str]) -> list[str]:
        root, reasons, absent = data_dir(), [], 0
        for rel, stored in sorted(meta["data"].items()):
            path = root / rel
            if not path.exists():
                absent += 1  # a render without the datasets cannot check them, and must still load
                continue
            # The key cannot leave the data folder (_meta_problem); what the folder holds is the user's own,
            # links included. Only regular files are hashed: a device or a fifo would never end.
            if not path.is_file():
                reasons.append(f"data file {rel} is not a regular file")
                continue
            try:
                now = fingerprint.file_hash(path)
            except OSError as exc:
                reasons.append(f"data file {rel} cannot be read ({exc.strerror or exc})")
                continue
            if now is None:
                absent += 1
            elif now != stored:
                reasons.append(f"data file {rel} changed")
        if absent:
            notes.append(f"data files not found under {root}: not checked (set HW3_DATA_DIR to check them)")
        return reasons

    def _upstream_reasons(self, config: Any, meta: dict) -> list[str]:
        reasons = []
        for exp, cfg in self.upstream(config):
            name = exp.name(cfg)
            up = exp.status(cfg)
            recorded = meta["upstream"].get(name)
            if up.state != "cached":
                reasons.append(f"upstream {name} is {up.state} ({up})")
            elif recorded is None or recorded["output"] != (exp.read_meta(cfg) or {}).get("output_hash"):
                reasons.append(f"upstream {name} changed")
        return reasons

    # reading --------------------------------------------------------------------------------
    def load(self, config: Any) -> Any:
        """The current result, or CacheMissError naming the experiment, the reason and the fix."""
        st = self.status(config)
        name = self.name(config)
        if st.state != "cached":  # `run NAME` recomputes every state but 'cached'
            raise CacheMissError(f"experiment '{name}' is {st.state}: {st} (cache: {cache_dir()}). "
                                 f"Recompute it with `python -m hw3 run {name}` (or `{REFRESH_COMMAND}`), then commit cache/.")
        return self.load_entry(config)

    def load_entry(self, config: Any) -> Any:
        """The stored output whatever its status (for inspecting old results)."""
        name, folder = self.name(config), self.folder(config)
        try:  # restricted to plain data: a received cache runs no code here (hw3.store.safeload)
            try:
                return safeload.load(folder / OUTPUT)
            except FileNotFoundError:  # mid-swap: read it once the writer is done
                with swap.lock(folder.parent, shared=True):
                    return safeload.load(folder / OUTPUT)
        except safeload.UnsafePickleError as exc:
            raise CacheMissError(f"experiment '{name}': its output.joblib was refused: {exc}. Do not use this cache "
                                 f"entry; recompute it with `python -m hw3 run {name} --force`.") from None
        except Exception as exc:  # intact bytes that do not unpickle (e.g. another library version)
            # Its status still reads 'cached' (its bytes match), so a plain `run` would skip it: --force.
            detail = str(exc).splitlines()[0][:300] if str(exc) else ""
            raise CacheMissError(f"experiment '{name}': its cache entry is unreadable ({type(exc).__name__}: {detail}). "
                                 f"Recompute it with `python -m hw3 run {name} --force`.") from None

    # computing ------------------------------------------------------------------------------
    def compute(self, config: Any, settings: RunSettings | None = None) -> Any:
        """Run the experiment (its upstream results must be current) and replace its entry atomically.

        The fingerprint is taken before the run, in this process, and again before writing: a result
        is only written next to the code that computed it.
        """
        _check_config(config)
        name = self.name(config)
        if cache_only():
            raise CacheMissError(f"experiment '{name}' would be computed, but HW3_CACHE_ONLY is set")
        settings = settings or RunSettings()
        prepare_folder(self.folder(config), self.key(config))  # before computing: a result that cannot be written is lost
        fp = self.fingerprint_details(config)
        code, constants = fp.code, fp.constants
        self._check_imported(config, fp.modules, "before it ran")  # the code in memory is the code fingerprinted
        # Current upstream results are loaded; missing ones are computed first (the runner has already done so).
        upstream = {exp.name(cfg): exp(cfg, settings) for exp, cfg in self.upstream(config)}
        kwargs = {"upstream": upstream} if self.upstream(config) else {}
        started = time.perf_counter()
        with fingerprint.recording_data_files() as files, fingerprint.recording_lookups() as lookups, \
                runtime.recording(fingerprint.source_root(self.func)) as ran:
            output = self.func(config, settings, **kwargs)
        wall = time.perf_counter() - started
        output, facts = split_run_facts(output)
        self._check_unchanged(config, code, constants, files)
        self._check_lookups(config, lookups)
        fp, extra = self._add_what_ran(config, fp, ran)
        code, constants = fp.code, fp.constants
        root = data_dir()
        outside = [str(p) for p in files if not Path(os.path.abspath(p)).is_relative_to(root)]  # links in it are fine
        if outside:  # its key in meta.json would point outside the data folder, which a reader refuses
            raise StoreError(f"experiment '{name}' read data files outside the data folder {root} ({', '.join(outside)}); "
                             "its result was not written. Read data through hw3.nn.data, under HW3_DATA_DIR.")
        meta = {
            "name": name,
            "experiment": f"{self.func.__module__}.{self.func.__name__}",
            "key": self.key(config),
            "config": _jsonable(dataclasses.asdict(config)),
            "code": code,
            "code_local": fp.local,
            "ran": extra,
            "constants": constants,
            "data": {str(Path(os.path.abspath(p)).relative_to(root)): h for p, h in files.items()},
            "upstream": {exp.name(cfg): {"key": exp.key(cfg), "output": exp.read_meta(cfg)["output_hash"]} for exp, cfg in self.upstream(config)},
            "output_hash": joblib.hash(output),
            "versions": fingerprint.versions(),
            "machine": fingerprint.machine(_device_of(output)),
            "wall_time_s": wall,  # the whole call, data loading included: what a recompute's estimate starts from
            **run_facts_for_meta(facts),
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        self._write(config, output, meta)
        return output

    def _check_unchanged(self, config: Any, code: dict, constants: dict, files: dict) -> None:
        """Refuse to write a result whose code or data changed on disk while it ran."""
        name = self.name(config)
        now_code, now_constants = self.code_fingerprint(config)
        changed = _diff("code", code, now_code) + _diff("constants", constants, now_constants)
        changed += [f"data file {p} changed" for p, h in files.items() if fingerprint.file_hash(p) != h]
        if changed:
            raise StoreError(f"experiment '{name}': {', '.join(dict.fromkeys(changed))} while it ran, so its result "
                             f"was not written (it belongs to neither version). Run it again: `python -m hw3 run {name}`.")

    def _check_imported(self, config: Any, modules: Any, when: str) -> None:
        """Refuse a run whose modules on disk are not the source this process imported (and runs)."""
        changed = sources.changed_on_disk(modules)
        if changed:
            name = self.name(config)
            raise StoreError(f"experiment '{name}': {', '.join(changed)} changed on disk after this process imported it, "
                             f"so the code {when} is not the code on disk; its result was not written. Run it again in a "
                             f"new process: `python -m hw3 run {name}`.")

    def _add_what_ran(self, config: Any, fp: fingerprint.Fingerprint, ran: runtime.Recording) -> tuple[fingerprint.Fingerprint, list[str]]:
        """The fingerprint with every package function that ran added (the static walk can miss some: getattr,
        importlib, registration dicts, imports inside functions); refuses inputs the fingerprint cannot hold."""
        items, refused = fingerprint.what_ran(ran, fingerprint.source_root(self.func))
        if refused:
            raise StoreError(f"experiment '{self.name(config)}' {'; '.join(refused)}; its result was not written.")
        extra = [k for k in items if k not in fp.code]
        if extra:
            fp = self.fingerprint_details(config, ran=extra)
        self._check_imported(config, {*fp.modules, *(k.partition(":")[0] for k in items)}, "that ran")
        return fp, extra

    def _check_lookups(self, config: Any, lookups: list) -> None:
        """Every Table entry the run used must be declared (`code=`): else its fingerprint would miss it."""
        declared = [fingerprint._unwrap(obj) for obj in self.code_for(config)]
        for table, key, value in lookups:
            if value is KeyError or not any(fingerprint._unwrap(value) is d for d in declared):
                raise StoreError(f"experiment '{self.name(config)}' used {table}[{key!r}] without declaring it in its "
                                 f"`code=`, so its fingerprint would not cover it; its result was not written.")

    def _write(self, config: Any, output: Any, meta: dict) -> None:
        """Swap the entry in (hw3.store.swap); a result that cannot be written is rescued, and the error says where."""
        folder, name = self.folder(config), self.name(config)
        try:
            swap.write_entry(folder, output, meta)
        except OSError as exc:
            kept = swap.rescue(name, output, meta)
            where = (f"the result was kept in {kept}: free space, then `mv {kept} {folder}`" if kept
                     else "it could not be kept elsewhere either: free space and run it again")
            raise StoreError(f"experiment '{name}': cannot write its result to {folder.parent} "
                             f"({exc.strerror or exc}); {where}") from None

    def __call__(self, config: Any, settings: RunSettings | None = None) -> Any:
        # A damaged entry is not silently replaced: it is left for the user to see (`run NAME` replaces it).
        if cache_only() or self.status(config).state in ("cached", "unreadable"):
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


def split_run_facts(output: Any) -> tuple[Any, dict]:
    """(`output` without its RUN_FACTS, those facts): the facts go to meta.json, the rest to output.joblib."""
    inner = output.get("meta") if isinstance(output, dict) else None
    if not isinstance(inner, dict) or not any(k in inner for k in RUN_FACTS):
        return output, {}
    facts = {k: inner[k] for k in RUN_FACTS if k in inner}
    return {**output, "meta": {k: v for k, v in inner.items() if k not in RUN_FACTS}}, facts


def run_facts_for_meta(facts: dict) -> dict:
    """meta.json's fields for the run facts: `train_time_s` (the training loop's own time) and `threads`."""
    out = {}
    if "wall_time_s" in facts:
        out["train_time_s"] = facts["wall_time_s"]
    torch = sys.modules.get("torch")  # only when the run used torch: the store itself never imports it
    threads = facts.get("threads", torch.get_num_threads() if torch is not None else None)
    if threads is not None:
        out["threads"] = threads
    return out


def _device_of(output: Any) -> str:
    """The device the result was computed on: what the training loop reports, else the CPU (no tensors were moved)."""
    meta = output.get("meta", {}) if isinstance(output, dict) else {}
    return str(meta.get("device") or "cpu")


def _output_problem(meta: dict, output: Path) -> str | None:
    """Why output.joblib is not what was written (None when its bytes match the recorded hash)."""
    recorded = meta.get("output_sha256")
    if not isinstance(recorded, str):
        return "its meta.json records no hash of output.joblib, so the output cannot be verified"
    if not output.is_file():
        return "output.joblib is not a regular file"
    try:
        actual = fingerprint.file_sha256(output)
    except OSError as exc:
        return f"output.joblib cannot be read ({exc.strerror or exc})"
    if actual != recorded:
        return "output.joblib does not match the hash recorded when it was written (edited, replaced or truncated since)"
    return None


def prepare_folder(folder: Path, key: str | None = None) -> None:
    """Before computing an entry: its cache folder must be writable with room to spare, and an
    interrupted swap is undone (`swap.restore`), so that nothing computed earlier is lost."""
    parent = folder.parent
    try:
        swap.check_writable(parent, MIN_FREE_BYTES)
        swap.restore(folder, key)
    except OSError as exc:
        raise StoreError(f"cannot write to the cache folder {parent} ({exc.strerror or exc}); nothing was computed. "
                         f"Make it writable (or free space), or point HW3_CACHE_DIR at another folder.") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def check_distinct(runs: list[tuple[Experiment, Any]]) -> None:
    """ValueError when two different configs get the same entry name: each would overwrite the other's entry.

    Names are readable, not injective: `label="x-lr0.1"` and `label="x", lr=0.1` both give `...-x-lr0.1`.
    """
    seen: dict[tuple[str, str], tuple[str, Any]] = {}
    for exp, config in runs:
        where, key = (exp.prefix, exp.name(config)), exp.key(config)
        if where in seen and seen[where][0] != key:
            raise ValueError(f"two different configs are both named '{where[1]}', so they would overwrite each other's "
                             f"cache entry: {seen[where][1]!r} and {config!r}. Make their names differ (a label, say)")
        seen[where] = (key, config)
