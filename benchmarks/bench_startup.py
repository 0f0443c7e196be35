"""Start-up of `opinions run` (issue 11 item 2): the bundled sample window (data/raw/R7-sample, ~130
opinions) end to end with the trained model, each run in a fresh process, and which heavy libraries the
run imported.

    .venv/bin/python benchmarks/bench_startup.py [--window data/raw/R7-sample] [--repeat 3]

Prints per run the wall time and the heavy modules found in ``sys.modules`` at the end of the run
(MLflow, DVC, Alembic, GiNZA/spaCy, matplotlib, torch, sentence-transformers), the median, and the load
average (the machine is shared). Target: ≤ 8 s. Not a test: figures, not assertions.
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

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("mlflow", "dvc", "alembic", "ginza", "spacy", "matplotlib", "torch", "sentence_transformers", "transformers")
# run the CLI in this child and report, on exit, which heavy top-level packages it had imported
CHILD = """
import atexit, json, sys
heavy = {heavy!r}
atexit.register(lambda: print("HEAVY=" + json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr))
sys.argv = ["opinions", *{args!r}]
from pipeline.cli import app
app()
"""


def run_once(window: Path, model_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["run", str(window), "--window", "R7-sample", "--out", f"{tmp}/out", "--model-dir", model_dir, "--db", f"sqlite:///{tmp}/q.db"]
        env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": tmp, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/m.db"}
        t0 = time.perf_counter()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", CHILD.format(heavy=HEAVY, args=args)], capture_output=True, text=True, env=env, cwd=ROOT)
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
        heavy = next((json.loads(line[6:]) for line in proc.stderr.splitlines() if line.startswith("HEAVY=")), None)
        manifest = json.loads(Path(f"{tmp}/out/run_manifest.json").read_text(encoding="utf-8"))
    return {"seconds": round(secs, 2), "rows": manifest.get("rows_out"), "heavy_imports": heavy, "stage_seconds": manifest.get("timings_s")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", default=str(ROOT / "data" / "raw" / "R7-sample"))
    ap.add_argument("--model-dir", default=str(ROOT / "models" / "default"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    runs = []
    for k in range(a.repeat):
        load = [round(x, 2) for x in os.getloadavg()]
        r = run_once(Path(a.window), a.model_dir)
        r["load_before"] = load
        runs.append(r)
        print(json.dumps({"run": k + 1, **r}, ensure_ascii=False))
    print(json.dumps({"median_seconds": statistics.median(r["seconds"] for r in runs), "rows": runs[-1]["rows"], "target_seconds": 8, "load_after": [round(x, 2) for x in os.getloadavg()]}, ensure_ascii=False))


if __name__ == "__main__":
    main()
