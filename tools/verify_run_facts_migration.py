"""Check of tools/migrate_run_facts.py after it ran: against BASE (the commit before the migration), every
output is the same but for the two moved fields, and meta.json changed only in output_sha256, output_hash,
threads, train_time_s and the upstream output hashes.

    .venv/bin/python tools/verify_run_facts_migration.py [BASE]   (default HEAD: before committing the migration)
"""
import json, subprocess, sys, tempfile, glob
BASE = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
sys.path.insert(0, "tools")
from migrate_run_facts import same
from hw3.store import safeload
def flat(d, p=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items(): out.update(flat(v, f"{p}.{k}"))
    else: out[p] = d
    return out
changed_keys = set(); bad = 0; n = 0
for meta_path in sorted(glob.glob("cache/*/*/meta.json")):
    folder = meta_path.rsplit("/", 1)[0]
    old_meta = json.loads(subprocess.run(["git", "show", f"{BASE}:{meta_path}"], capture_output=True, check=True).stdout)
    new_meta = json.load(open(meta_path))
    fo, fn = flat(old_meta), flat(new_meta)
    for k in set(fo) | set(fn):
        if fo.get(k) != fn.get(k):
            changed_keys.add(k.split(".")[1] if not k.startswith(".upstream") else ".upstream.*." + k.rsplit(".", 1)[1])
    with tempfile.NamedTemporaryFile(suffix=".joblib") as t:
        t.write(subprocess.run(["git", "show", f"{BASE}:{folder}/output.joblib"], capture_output=True, check=True).stdout); t.flush()
        old = safeload.load(t.name)
    new = safeload.load(f"{folder}/output.joblib")
    if isinstance(old, dict) and isinstance(old.get("meta"), dict):
        facts = {k: old["meta"][k] for k in ("wall_time_s", "threads") if k in old["meta"]}
        if facts:
            assert new_meta.get("train_time_s") == facts.get("wall_time_s") and new_meta.get("threads") == facts.get("threads"), folder
        old = {**old, "meta": {k: v for k, v in old["meta"].items() if k not in ("wall_time_s", "threads")}}
    d = same(old, new)
    n += 1
    if d: bad += 1; print(folder, d[:3])
print(n, "entries compared;", bad, "differ; meta.json fields changed:", sorted(changed_keys))
