"""The dedupe stage alone (``group_duplicates`` on normalised rows) on the 2,622 real comments in
../shared/data and on synthetic windows with planted near-copies, with pair precision/recall.

Synthetic window of N rows: 96 % are copies of 8,000 source texts (each source is 2–8 real sentences
of the corpus; family sizes skewed, ∝ rank^-0.6, so a few templates are re-sent by ~1,000 bodies and
fill LSH buckets far above 64), each copy with the edits bodies make: its own body name
(「〇〇市としては」, masked by the body column), punctuation and 全角/半角, and in 30 % a real sentence
added (shorter than a third of the text, so the copy is still a duplicate by containment). The other
4 % are distinct texts recombined from real sentences. Each size runs in its own process so that peak
RSS is its own; frames are normalised once and cached.

    .venv/bin/python benchmarks/bench_dedupe.py                                  # real, 100k, 200k
    .venv/bin/python benchmarks/bench_dedupe.py --impl /tmp/old/dedupe.py        # another dedupe.py
    .venv/bin/python benchmarks/bench_dedupe.py --sizes real,100000

Prints one JSON line per size: wall and CPU seconds of ``group_duplicates`` (CPU time is the steadier
figure on a shared machine), peak RSS during the call (VmHWM, reset just before it; the loaded frame
included) and RSS before it, candidate pairs (LSH, identical keys excluded),
verified pairs, groups, and the pair precision/recall of the groups against the planted families.
Not a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import corpus_texts  # noqa: E402
from campaign import SHAPES, Shape, pair_scores, planted_window  # noqa: E402


# --------------------------------------------------------------------------- synthetic window


def synthetic_window(n: int, seed: int = 0) -> pd.DataFrame:
    """The campaign window (campaign.py) of ``n`` rows: text, body and ``family`` (the planted source)."""
    c = SHAPES["campaign"]
    return planted_window(Shape(n, c.sources, c.copy_share, c.skew, seed))


def real_window() -> pd.DataFrame:
    texts = corpus_texts()
    return pd.DataFrame({"opinion_id": [f"r{i}" for i in range(len(texts))], "text": texts, "reason": "", "body": "", "family": -1})


def prepared(size: str, cache: Path) -> Path:
    """The normalised frame of one size, cached as parquet (normalising 200k rows takes minutes)."""
    path = cache / f"dedupe-{size}.parquet"
    if not path.exists():
        from pipeline.normalize import normalise

        raw = real_window() if size == "real" else synthetic_window(int(size))
        normalise(raw)[["opinion_id", "body", "dedupe_key", "family"]].to_parquet(path)
    return path


# --------------------------------------------------------------------------- measurement


def load_impl(path: str | None):
    if not path:
        import pipeline.dedupe as mod

        return mod
    spec = importlib.util.spec_from_file_location("dedupe_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def counted(mod, name: str, tally: dict, rows=len) -> None:
    """Wrap ``mod.name`` (if the module has it) so the number of rows it returns is recorded; the module
    calls it by name, so the wrapper sees every call."""
    fn = getattr(mod, name, None)
    if fn is None:
        return

    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        tally[name] = tally.get(name, 0) + rows(out)
        return out

    setattr(mod, name, wrapper)


def memory_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (ru_maxrss would carry the parent's size over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux ≥ 4.0), so the peak is that of the measured call."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def one(size: str, impl: str | None, cache: Path) -> dict:
    from pipeline.config import load_params

    cfg = load_params().dedupe
    df = pd.read_parquet(prepared(size, cache))
    mod = load_impl(impl)
    tally: dict = {}
    counted(mod, "lsh_candidates", tally)
    if hasattr(mod, "_verified"):  # group_duplicates calls _verified (similar_pairs' body) directly
        counted(mod, "_verified", tally, rows=lambda out: len(out[0]))
    else:
        counted(mod, "similar_pairs", tally)
    rss0 = memory_mb("VmRSS")
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    g = mod.group_duplicates(df, cfg)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "size": size, "impl": impl or "pipeline/dedupe.py", "rows": len(df), "distinct_keys": int(df.loc[df["dedupe_key"] != "", "dedupe_key"].nunique()),
        "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(memory_mb("VmHWM"), 1), "rss_before_mb": round(rss0, 1),
        "candidate_pairs": tally.get("lsh_candidates", 0), "verified_pairs": tally.get("_verified", tally.get("similar_pairs", 0)),
        "groups": int(g["dup_group"].nunique()), "largest_group": int(g["dup_count"].max()), "rows_in_groups": int((g["dup_count"] > 1).sum()),
    }
    if size != "real":
        p, r = pair_scores(g["dup_group"], df["family"])
        out.update({"pair_precision": round(p, 4), "pair_recall": round(r, 4), "planted_families": int(df["family"].nunique())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", help="path of a dedupe.py to measure instead of pipeline/dedupe.py")
    ap.add_argument("--sizes", default="real,100000,200000")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "bench_dedupe_cache"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if a.one:
        print(json.dumps(one(a.one, a.impl, cache), ensure_ascii=False))
        return
    for size in a.sizes.split(","):
        prepared(size, cache)
        cmd = [sys.executable, __file__, "--one", size, "--cache", str(cache)] + (["--impl", a.impl] if a.impl else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        print(proc.stdout.strip() if proc.returncode == 0 else proc.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
