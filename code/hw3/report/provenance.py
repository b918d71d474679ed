"""Where the cache came from: which machine computed each entry, with which libraries, in how long.

Everything here is read from meta.json, which a received cache could fill with anything: the texts
go into the report's markdown through `untrusted.markdown`, so they show as written and do nothing.
"""

from __future__ import annotations

import pandas as pd

from hw3.experiments import registry
from hw3.report.tables import markdown_table
from hw3.store import untrusted


def provenance_table() -> str:
    """Markdown: every cached experiment with its training time, machine and library versions."""
    rows = []
    for name, (exp, config) in registry.by_name().items():
        meta = exp.read_meta(config) or {}
        machine = meta.get("machine", {})
        wall = meta.get("wall_time_s")
        rows.append({"experiment": name, "time (s)": f"{wall:.0f}" if isinstance(wall, (int, float)) else "-",
                     "device": untrusted.markdown(machine.get("gpu") or machine.get("device", "-")),
                     "CPU (ISA)": untrusted.markdown(f"{machine.get('cpu', '-')} ({machine.get('isa', '-')})"),
                     "torch": untrusted.markdown(meta.get("versions", {}).get("torch", "-"))})
    return markdown_table(pd.DataFrame(rows))


def compute_hours() -> float:
    """Total recorded wall time of every cached experiment, in hours (runs in parallel take less elapsed time)."""
    walls = ((exp.read_meta(config) or {}).get("wall_time_s") for exp, config in registry.all_experiments())
    return sum(w for w in walls if isinstance(w, (int, float))) / 3600


def _machine_label(meta: dict | None) -> str:
    """'CPU (ISA, bf16 units)', as inert markdown (the report puts it in its prose)."""
    m = (meta or {}).get("machine", {})
    return untrusted.markdown(f"{m.get('cpu', '?')} ({m.get('isa', '?')}, bf16 units: {m.get('bf16_units', '?')})")


def machine_of(config) -> str:
    """The machine that computed the entry of `config`, as 'CPU (ISA, bf16 units)'."""
    return _machine_label(registry.experiment_of(config).read_meta(config))


def machines() -> list[str]:
    """The distinct machines the cache was computed on, as 'CPU (ISA, bf16 units)'."""
    seen = []
    for exp, config in registry.all_experiments():
        label = _machine_label(exp.read_meta(config))
        if label not in seen:
            seen.append(label)
    return seen
