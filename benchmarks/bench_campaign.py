"""Scale benchmark of issue 11 on (b) the 200,000-row campaign window and (c) the 100,000-row mixed
window of campaign.py: the stages after classification (dedupe, queue sync, export, report) each in its
own process, and — when a trained model exists — the whole ``opinions run`` on (b).

Per stage: seconds (median of ``--repeat`` runs; CPU seconds beside, the steadier figure on a shared
machine), opinions/s, peak RSS of the process (VmHWM, the loaded input included), rows in = rows out.
- dedupe: ``group_duplicates`` on the normalised window; pair precision/recall against the planted families.
- queue: ``sync_window`` into a new SQLite file, then a re-sync (every row an update, as a re-run), while
  a second process plays a reviewer deciding in another window every 0.2 s and reading a page of this
  window's queue: its slowest write and read, and how many were refused as locked; then one page of
  ``queue list`` (``numbered_queue``, 50 rows) and the count, on the synced window.
- export: ``window_table`` → ``group_rows`` → ``write_export`` (CSV + streamed xlsx) → ``build_report``;
  sizes of the files.
The queue and export stages need a classified frame: without ``--from-run`` the model's columns are
synthetic (seeded; category, candidate and confidence per planted family, 5 % of members disagreeing),
since the figures are of the queue and the export, not of the model.

    .venv/bin/python benchmarks/bench_campaign.py                          # (b) and (c), stages, 1 run each
    .venv/bin/python benchmarks/bench_campaign.py --windows campaign --repeat 3
    .venv/bin/python benchmarks/bench_campaign.py --windows campaign --run  # + whole `opinions run` on (b)

Windows are generated into /tmp/opinions-bench (campaign.py), never into the repository. Prints one JSON
line per (window, stage), and the load average (`uptime`) when each began. Not a test: figures.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from campaign import DEFAULT_OUT, ensure_window, pair_scores  # noqa: E402

CATEGORIES = ["SHARE", "SHARE", "SHARE", "OUT_OF_SCOPE", "RESOLVED", "ORG_SPECIFIC", "ABSTRACT", "UNCLEAR_BASIS", "PRECONDITION"]


def memory_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# --------------------------------------------------------------------------- inputs (cached)


def normalised(kind: str, cache: Path, rows: int | None = None) -> pd.DataFrame:
    """The window as ingest gives it (opinion_id = 番号, body, prefecture, text), normalised; cached."""
    path = cache / f"{kind}-{rows or 'default'}-normalised.parquet"
    if not path.exists():
        from pipeline.normalize import normalise

        raw, truth = ensure_window(kind, rows)
        src = pd.read_csv(raw / "comments.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
        fam = pd.read_csv(truth, dtype={"opinion_id": str})["family"].to_numpy()
        frame = pd.DataFrame({"opinion_id": src["番号"], "window": raw.name, "body": src["団体名"], "prefecture": src["都道府県"], "stated_candidate": "", "text": src["意見"], "reason": "", "family": fam})
        normalise(frame).to_parquet(path)
    return pd.read_parquet(path)


def grouped(kind: str, cache: Path, rows: int | None = None) -> pd.DataFrame:
    path = cache / f"{kind}-{rows or 'default'}-grouped.parquet"
    if not path.exists():
        from pipeline.config import load_params
        from pipeline.dedupe import group_duplicates

        group_duplicates(normalised(kind, cache, rows), load_params().dedupe).to_parquet(path)
    return pd.read_parquet(path)


def synthetic_labels(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The model's columns, made up per planted family (seeded): what the queue and the export carry."""
    rng = np.random.default_rng(seed)
    fam = frame["family"].to_numpy()
    uniq, inv = np.unique(fam, return_inverse=True)
    cat = rng.integers(0, len(CATEGORIES), size=len(uniq))[inv]
    flip = rng.random(len(frame)) < 0.05  # members the model reads differently
    cat[flip] = rng.integers(0, len(CATEGORIES), size=int(flip.sum()))
    cand = rng.integers(1, 14, size=len(uniq))[inv]
    out = frame.copy()
    out["category"] = [CATEGORIES[c] for c in cat]
    out["candidate_id"] = [f"C{c:02d}" for c in cand]
    out["category_confidence"] = np.round(rng.uniform(0.3, 1.0, size=len(frame)), 3)
    out["candidate_confidence"] = np.round(rng.uniform(0.3, 1.0, size=len(frame)), 3)
    out["needs_review"] = np.where(out["category_confidence"] < 0.6, "true", "false")
    out["category_reason"] = "判断フローチャートの各問いに当てはまらず、具体的な理由のある提案です。"
    out["review_reasons"] = np.where(out["needs_review"] == "true", "確信度が低い", "")
    return out


# --------------------------------------------------------------------------- stages (each in its own process)


def stage_dedupe(kind: str, cache: Path, rows: int | None) -> dict:
    from pipeline.config import load_params
    from pipeline.dedupe import group_duplicates

    df = normalised(kind, cache, rows)
    cfg = load_params().dedupe
    t0, c0 = time.perf_counter(), time.process_time()
    g = group_duplicates(df, cfg)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    p, r = pair_scores(g["dup_group"], df["family"])
    return {"seconds": secs, "cpu_seconds": cpu, "rows_in": len(df), "rows_out": len(g), "groups": int(g["dup_group"].nunique()), "largest_group": int(g["dup_count"].max()), "pair_precision": round(p, 4), "pair_recall": round(r, 4)}


def reviewer(url: str, stop: Path, log: Path, window: str) -> None:
    """Another reviewer, meanwhile: every 0.2 s a decision in window OTHER (a write), and a page of the
    window being synced (a read); the time each took, or that it was refused as locked."""
    from pipeline.config import load_domain
    from pipeline.queue import Decision, QueueError, decide, numbered_queue, open_queue

    engine, domain = open_queue(url), load_domain()
    out = []
    k = 0
    while not stop.exists():
        t0 = time.perf_counter()
        try:
            decide(engine, domain, "OTHER", "1", "鈴木", Decision(note=f"メモ {k}"), overwrite=True)
            out.append({"op": "decide", "s": time.perf_counter() - t0, "ok": True})
        except QueueError:
            out.append({"op": "decide", "s": time.perf_counter() - t0, "ok": False})
        t0 = time.perf_counter()
        try:
            numbered_queue(engine, window, limit=50)
            out.append({"op": "list", "s": time.perf_counter() - t0, "ok": True})
        except QueueError:  # the window's first transaction not yet committed
            out.append({"op": "list", "s": time.perf_counter() - t0, "ok": None})
        except Exception as e:  # noqa: BLE001  (a locked read surfaces as OperationalError)
            out.append({"op": "list", "s": time.perf_counter() - t0, "ok": False, "error": type(e).__name__})
        k += 1
        time.sleep(0.2)
    log.write_text(json.dumps(out))


def _contention(log: Path) -> dict:
    rows = json.loads(log.read_text()) if log.exists() else []
    res = {}
    for op in ("decide", "list"):
        r = [x for x in rows if x["op"] == op]
        done = [x["s"] for x in r if x["ok"]]
        res[op] = {"attempts": len(r), "refused_locked": sum(1 for x in r if x["ok"] is False), "max_s": round(max(done, default=0), 3), "median_s": round(statistics.median(done), 3) if done else None}
    return res


def stage_queue(kind: str, cache: Path, tmp: Path, rows: int | None) -> dict:
    from pipeline.batch import output_frame
    from pipeline.queue import numbered_queue, open_queue, queue_count, sync_window

    frame = output_frame(synthetic_labels(grouped(kind, cache, rows)))
    url = f"sqlite:///{tmp}/queue.db"
    engine = open_queue(url)
    sync_window(engine, "OTHER", frame.iloc[:1].assign(opinion_id="1"))
    window = f"BENCH-{kind}"
    stop, log = tmp / "stop", tmp / "reviewer.json"
    rev = subprocess.Popen([sys.executable, __file__, "--reviewer", url, str(stop), str(log), window], cwd=ROOT)
    time.sleep(3)  # the reviewer is up (imports) before the sync begins
    result = {"rows_in": len(frame)}
    t0, c0 = time.perf_counter(), time.process_time()
    first = sync_window(engine, window, frame)
    result["seconds"], result["cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    again = sync_window(engine, window, frame)
    result["resync_seconds"] = round(time.perf_counter() - t0, 2)
    stop.write_text("")
    rev.wait(timeout=60)
    result["first_sync"], result["resync"] = first, again
    result["while_syncing"] = _contention(log)
    t0 = time.perf_counter()
    page = numbered_queue(engine, window, limit=50, offset=1000)
    result["list_page_50_seconds"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    result["queue_count"] = queue_count(engine, window)
    result["count_seconds"] = round(time.perf_counter() - t0, 3)
    result["rows_out"] = queue_count(engine, window, everything=True)
    result["page_rows"] = len(page)
    result["db_mb"] = round((tmp / "queue.db").stat().st_size / 2**20, 1)
    return result


def stage_export(kind: str, cache: Path, tmp: Path, rows: int | None) -> dict:
    """From a synced queue (made here, not timed) to the three meeting files."""
    from pipeline.batch import output_frame
    from pipeline.config import load_domain
    from pipeline.export import decision_choices, group_rows, read_window_kind, write_export
    from pipeline.queue import open_queue, sync_window, window_domain, window_table
    from pipeline.report import build_report

    frame = output_frame(synthetic_labels(grouped(kind, cache, rows)))
    engine = open_queue(f"sqlite:///{tmp}/queue.db")
    window = f"BENCH-{kind}"
    sync_window(engine, window, frame)
    del frame
    steps, out = {}, tmp / "out"
    t_all, c0 = time.perf_counter(), time.process_time()
    t0 = time.perf_counter()
    domain = window_domain(engine, window, load_domain())
    table = window_table(engine, window)
    steps["window_table"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kind_ = read_window_kind(engine, window)
    groups = group_rows(table, domain, kind_)
    steps["group_rows"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    files = write_export(groups, out, decision_choices(domain, kind_))
    steps["write_export"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    page = build_report(window, table, groups, domain, "2025-01-01 00:00", "bundled")
    (out / "report.html").write_text(page, encoding="utf-8")
    steps["build_report"] = time.perf_counter() - t0
    return {
        # rows of the export are groups: every group of the queue's present rows is one row (同旨団体数 counts
        # bodies, and two members of a family may carry one body name)
        "seconds": time.perf_counter() - t_all, "cpu_seconds": time.process_time() - c0, "opinions": len(table), "rows_in": int(table.loc[table["present"].astype(bool), "dup_key"].nunique()),
        "rows_out": len(groups), "bodies_listed": int(groups["同旨団体数"].sum()), "step_seconds": {k: round(v, 2) for k, v in steps.items()},
        "csv_mb": round(files["csv"].stat().st_size / 2**20, 1), "xlsx_mb": round(files["xlsx"].stat().st_size / 2**20, 1), "report_mb": round((out / "report.html").stat().st_size / 2**20, 2),
    }  # fmt: skip


def whole_run(kind: str, model_dir: Path, tmp: Path, rows: int | None) -> dict:
    """`opinions run` on the raw folder, network variables off, start-up included."""
    import resource

    raw, truth = ensure_window(kind, rows)
    out = tmp / "out"
    cmd = [str(ROOT / ".venv" / "bin" / "opinions"), "run", str(raw), "--out", str(out), "--model-dir", str(model_dir), "--db", f"sqlite:///{tmp}/q.db"]
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": str(tmp), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/m.db"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stdout[-1500:] + proc.stderr[-1500:])}
    ops = pd.read_csv(out / "opinions.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    man = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    t = pd.read_csv(truth, dtype={"opinion_id": str}).set_index("opinion_id")["family"]
    p, r = pair_scores(ops["dup_group"], ops["opinion_id"].map(t))
    return {
        "seconds": secs, "rows_in": len(t), "rows_out": len(ops), "peak_rss_mb_child": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "stage_seconds": {k: round(v, 1) for k, v in (man.get("timings_s") or {}).items()}, "pair_precision": round(p, 4), "pair_recall": round(r, 4),
        "files_mb": {f.name: round(f.stat().st_size / 2**20, 2) for f in sorted(out.iterdir()) if f.is_file()}, "last_lines": proc.stdout.strip().splitlines()[-6:],
    }  # fmt: skip


def one(kind: str, stage: str, cache: Path, model_dir: str, rows: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        if stage == "dedupe":
            res = stage_dedupe(kind, cache, rows)
        elif stage == "queue":
            res = stage_queue(kind, cache, Path(tmp), rows)
        elif stage == "export":
            res = stage_export(kind, cache, Path(tmp), rows)
        else:
            res = whole_run(kind, Path(model_dir), Path(tmp), rows)
    if stage != "run":
        res["peak_rss_mb"] = round(memory_mb("VmHWM"), 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", default="campaign,mixed")
    ap.add_argument("--stages", default="dedupe,queue,export")
    ap.add_argument("--run", action="store_true", help="also the whole `opinions run` on each window (needs a trained model)")
    ap.add_argument("--model-dir", default=str(ROOT / "models" / "default"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--rows", type=int, help="another size than the window's own (a quick look)")
    ap.add_argument("--cache", default=str(DEFAULT_OUT / "cache"))
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--reviewer", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if a.reviewer:
        reviewer(a.reviewer[0], Path(a.reviewer[1]), Path(a.reviewer[2]), a.reviewer[3])
        return
    if a.one:
        print(json.dumps(one(a.one[0], a.one[1], cache, a.model_dir, a.rows), ensure_ascii=False, default=str))
        return
    stages = a.stages.split(",") if a.stages else []
    if a.run:
        if not (Path(a.model_dir) / "meta.json").exists():  # `opinions run` would train one first: not measured here
            print(json.dumps({"run": f"skipped: no trained model in {a.model_dir}"}, ensure_ascii=False))
        else:
            stages.append("run")
    for kind in a.windows.split(","):
        # generated, normalised (and grouped) once, outside the measured processes, in a process of its own
        prep = "grouped" if any(s in ("queue", "export") for s in stages) else "normalised"
        subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = {[str(ROOT), str(Path(__file__).parent)]!r}; import bench_campaign as b; from pathlib import Path; b.{prep}({kind!r}, Path({str(cache)!r}), {a.rows!r})"], check=True, cwd=ROOT)
        for stage in stages:
            runs = []
            for _ in range(a.repeat):
                la = load()
                proc = subprocess.run([sys.executable, __file__, "--one", kind, stage, "--cache", str(cache), "--model-dir", a.model_dir, *(["--rows", str(a.rows)] if a.rows else [])], capture_output=True, text=True, cwd=ROOT, env={**os.environ})
                if proc.returncode != 0:
                    runs.append({"error": proc.stderr[-2000:]})
                    break
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                r["load_1min_at_start"] = la
                runs.append(r)
            ok = [r for r in runs if "seconds" in r]
            summary = {"window": kind, "stage": stage, "runs": len(runs)}
            if ok:
                secs = statistics.median(r["seconds"] for r in ok)
                summary.update({"median_seconds": round(secs, 2), "all_seconds": [round(r["seconds"], 2) for r in ok], "opinions_per_s": round(ok[0]["rows_in"] / secs, 1)})
                if "cpu_seconds" in ok[0]:
                    summary["median_cpu_seconds"] = round(statistics.median(r["cpu_seconds"] for r in ok), 2)
                summary["peak_rss_mb_max"] = max(r.get("peak_rss_mb", r.get("peak_rss_mb_child", 0)) for r in ok)
                summary["rows_in_equals_rows_out"] = all(r["rows_in"] == r["rows_out"] for r in ok)
                summary["last"] = {k: v for k, v in ok[-1].items() if k not in ("seconds", "cpu_seconds")}
            else:
                summary["errors"] = [r.get("error") for r in runs]
            print(json.dumps(summary, ensure_ascii=False, default=str), flush=True)


if __name__ == "__main__":
    main()
