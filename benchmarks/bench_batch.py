"""Benchmark the batch on real public comments (../shared/data/bunka-ai-pubcom-2024, 2,622 texts).

Sizes above 2,622 are made two ways, reported separately:
  tiled  exact copies of the corpus (exercises the exact-duplicate path: every text has N copies);
  mixed  new comments recombined from the corpus's real sentences (unique texts: exercises LSH).
Each (size, mode) runs in its own process so that peak memory (ru_maxrss) is its own.

    python benchmarks/bench_batch.py                       # 2,622 / 10k / 100k, dedupe path only
    python benchmarks/bench_batch.py --classify --sizes 10000 --modes mixed   # with the trained model
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "bunka-ai-pubcom-2024" / "comments.csv"


def corpus_texts(path: Path = CORPUS) -> list[str]:
    return pd.read_csv(path, dtype=str, keep_default_na=False)["comment"].tolist()


def scaled(texts: list[str], n: int, mode: str, seed: int = 0) -> list[str]:
    if n <= len(texts):
        return texts[:n]
    if mode == "tiled":
        return (texts * (n // len(texts) + 1))[:n]
    rng = np.random.default_rng(seed)
    sentences = [s for t in texts for s in re.split(r"(?<=[。！？])", t) if len(s) > 5]
    lengths = rng.choice([len(re.split(r"(?<=[。！？])", t)) for t in texts], size=n)
    picks = rng.integers(0, len(sentences), size=int(lengths.sum()))  # one draw for all (rng.choice on a list copies it per call)
    out, pos = list(texts), 0
    for k in lengths[len(texts) :]:
        k = max(1, int(k))
        out.append("".join(sentences[i] for i in picks[pos : pos + k]))
        pos += k
    return out


def frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opinion_id": [f"b{i}" for i in range(len(texts))],
            "window": "bench",
            "body": "",
            "prefecture": "",
            "stated_candidate": "",
            "text": texts,
            "reason": "",
            "ingest_status": "ok",
        }
    )


def one(n: int, mode: str, classify: bool) -> dict:
    from pipeline.batch import STAGES, run_stage, stage_function
    from pipeline.config import load_domain, load_params

    params, domain = load_params(), load_domain()
    texts = scaled(corpus_texts(), n, mode)
    f = frame(texts)
    clf = None
    if classify:
        from pipeline.classify import load_model, predict
        from pipeline.paths import DEFAULT_MODEL_DIR

        model = load_model(DEFAULT_MODEL_DIR)
        clf = lambda x: predict(model, x, domain, explain=True)  # noqa: E731
    timings = {}
    t_all = time.perf_counter()
    for name in STAGES:
        if name == "classify" and not classify:
            continue
        t0 = time.perf_counter()
        f = run_stage(name, f, stage_function(name, params, clf))
        timings[name] = round(time.perf_counter() - t0, 2)
    total = time.perf_counter() - t_all
    return {
        "n": n,
        "mode": mode,
        "classify": classify,
        "seconds": round(total, 2),
        "opinions_per_s": round(n / total, 1),
        "stage_seconds": timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dup_groups": int((f.groupby("dup_group").size() > 1).sum()),
        "largest_group": int(f["dup_count"].max()),
        "median_chars": int(pd.Series(texts).str.len().median()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2622,10000,100000")
    ap.add_argument("--modes", default="tiled,mixed")
    ap.add_argument("--classify", action="store_true")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(int(a.one[0]), a.one[1], a.one[2] == "1")))
        return
    print(f"{'n':>7} {'mode':>6} {'classify':>8} {'seconds':>8} {'op/s':>8} {'peak MB':>8}  stages (s)")
    for n in map(int, a.sizes.split(",")):
        for mode in a.modes.split(","):
            if n <= 2622 and mode == "mixed":
                continue
            out = subprocess.run([sys.executable, __file__, "--one", str(n), mode, "1" if a.classify else "0"], capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                print(out.stderr[-2000:])
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['n']:>7} {r['mode']:>6} {str(r['classify']):>8} {r['seconds']:>8} {r['opinions_per_s']:>8} {r['peak_rss_mb']:>8}  {r['stage_seconds']}  groups={r['dup_groups']} largest={r['largest_group']}")


if __name__ == "__main__":
    main()
