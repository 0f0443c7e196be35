"""Whole-process benchmark of `opinions run` (start-up included, network variables off) on the real
comments in shared/data, and the off-domain check of issue 9: those comments (AI and copyright, another
consultation) must be flagged 「対象候補との関連が薄い」 and none auto-decided 共有すべきもの.

    .venv/bin/python benchmarks/bench_run.py [--model-dir models/default] [--tile 1]

Prints rows in/out, seconds, opinions/s, peak RSS of the child process, stage timings from the run
manifest, and the off-domain figures. Not a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "bunka-ai-pubcom-2024" / "comments.csv"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(ROOT / "models" / "default"))
    ap.add_argument("--tile", type=int, default=1)
    a = ap.parse_args()
    comments = pd.read_csv(CORPUS, dtype=str, keep_default_na=False)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw" / "R8-pubcom"
        raw.mkdir(parents=True)
        texts = comments["comment"].tolist() * a.tile
        pd.DataFrame({"番号": range(1, len(texts) + 1), "団体名": "", "意見": texts}).to_csv(raw / "comments.csv", index=False, encoding="utf-8-sig")
        out = Path(tmp) / "out"
        cmd = [str(ROOT / ".venv" / "bin" / "opinions"), "run", str(raw), "--out", str(out), "--model-dir", a.model_dir, "--db", f"sqlite:///{tmp}/q.db"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": tmp, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/m.db"})
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
        ops = pd.read_csv(out / "opinions.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        man = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    auto = ops["needs_review"] == "false"
    codes = ops["review_codes"].fillna("")
    print(json.dumps({
        "rows_in": len(texts), "rows_out": len(ops), "seconds": round(secs, 1), "opinions_per_s": round(len(texts) / secs, 1),
        "peak_rss_mb_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "stage_seconds": man.get("timings_s"), "references": man.get("references", {}).get("source"),
        "off_domain_flagged": round(float(codes.str.contains("off_domain").mean()), 4),
        "auto_decided": int(auto.sum()), "auto_decided_share": int((auto & (ops["category"] == "SHARE")).sum()),
        "auto_by_category": ops[auto]["category"].value_counts().to_dict(),
    }, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
