"""The batch for one window: ingest → normalise → dedupe → link earlier windows → classify → write.

``process_window`` is the pure core (frames in, frames out); ``run_window`` is the edge that reads the
raw folder and earlier outputs and writes the window's output folder. Row count is checked after every
stage: a stage that adds or drops a row is a bug, and the batch stops rather than write a wrong file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import paths
from pipeline.config import Domain, Params
from pipeline.dedupe import group_duplicates, link_prior
from pipeline.ingest import IngestResult, Problem, ingest_window
from pipeline.normalize import normalise

CONTRACT_COLUMNS = (
    "opinion_id",
    "window",
    "body",
    "text",
    "candidate_id",
    "candidate_confidence",
    "category",
    "category_confidence",
    "needs_review",
    "dup_group",
    "dup_representative",
    "dup_count",
)
EXTRA_COLUMNS = (
    "candidate_name",  # the candidate's name in the window's own list (issue 13)
    "prefecture",
    "stated_candidate",
    "reason",
    "category_label",
    "category_reason",
    "candidate_reason",
    "review_reasons",
    "dup_bodies",
    "dup_key",
    "dup_similarity",
    "prior_window",
    "prior_opinion_id",
    "prior_category",
    "prior_similarity",
    "contact",
    "source_file",
    "source_sheet",
    "source_row",
    "source_id",
    "ingest_status",
    "ingest_message",
    "model_version",
    # evidence (issue 8): the passage that settles a 解決済, the nearest passage of a 共有すべきもの
    "resolved_by",
    "resolved_quote",
    "addressed_suggestion",
    "nearest_passage",
    "nearest_quote",
    # structured explanation (the Japanese sentences above are rendered from these)
    "prediction_set",
    "runner_up",
    "runner_up_confidence",
    "category_evidence",
    "candidate_runner_up",
    "candidate_evidence",
    "stated_id",
    "precedent_ids",
    "observations",
    "review_codes",
    "coverage",
    "retrieved_passages",
    "reference_relevance",
)


class RowCountError(RuntimeError):
    pass


def check_rows(stage: str, before: int, frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) != before:
        raise RowCountError(f"処理段階 {stage} の出力が {len(frame)} 行になりました（入力 {before} 行）。意見が失われるため中止します（不具合です。開発者に連絡してください）。")
    return frame


Classifier = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class WindowResult:
    opinions: pd.DataFrame
    problems: tuple[Problem, ...]
    timings: dict[str, float]


STAGES = ("normalise", "dedupe", "link_prior", "classify")


def stage_function(name: str, params: Params, classify: Classifier | None = None, prior: pd.DataFrame | None = None) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The frame → frame function of one batch stage (the same one ``run`` and the DVC stages call)."""
    if name == "normalise":
        return normalise
    if name == "dedupe":
        return lambda f: group_duplicates(f, params.dedupe)
    if name == "link_prior":
        return lambda f: link_prior(f, prior if prior is not None else pd.DataFrame(), params.dedupe)
    if name == "classify":
        if classify is None:
            raise ValueError("the classify stage needs a classifier")
        return classify
    raise ValueError(f"unknown stage {name!r}; stages: {STAGES}")


def run_stage(name: str, frame: pd.DataFrame, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    return check_rows(name, len(frame), fn(frame))


def process_window(ingested: IngestResult, params: Params, classify: Classifier, prior: pd.DataFrame | None = None) -> WindowResult:
    """Pure core of the batch: every stage keeps one row per ingested opinion, in input order."""
    timings: dict[str, float] = {}
    frame = ingested.opinions
    for name in STAGES:
        t0 = time.perf_counter()
        frame = run_stage(name, frame, stage_function(name, params, classify, prior))
        timings[name] = time.perf_counter() - t0
    return WindowResult(opinions=frame, problems=ingested.problems, timings=timings)


def load_prior_windows(outputs_root: Path, window: str, decisions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of earlier windows' ``opinions.csv`` under ``outputs_root``: windows whose id sorts before
    this one (window ids start with the era year, R6 < R7 < R8). ``decisions`` (queue.decided_labels:
    window, opinion_id, category) are the reviewers' decisions: where an earlier opinion has one, its
    category is the human decision, not the model's old label (``category_source`` says which)."""
    from pipeline.normalize import dedupe_key

    frames = []
    if outputs_root.is_dir():
        for d in sorted(outputs_root.iterdir()):
            f = d / "opinions.csv"
            if d.name == window or not f.exists() or _window_sort_key(d.name) >= _window_sort_key(window):
                continue
            df = pd.read_csv(f, dtype=str, keep_default_na=False)
            df["dedupe_key"] = [dedupe_key(t, b) for t, b in zip(df["text"], df["body"])]
            frames.append(df[["window", "opinion_id", "category", "dedupe_key"]])
    if not frames:
        return pd.DataFrame(columns=["window", "opinion_id", "category", "dedupe_key", "category_source"])
    prior = pd.concat(frames, ignore_index=True)
    prior["category_source"] = "model"
    if decisions is not None and len(decisions):
        human = decisions[["window", "opinion_id", "category"]].astype(str).drop_duplicates(["window", "opinion_id"]).rename(columns={"category": "human_category"})
        prior = prior.merge(human, on=["window", "opinion_id"], how="left")  # keys unique: rows and order kept
        has = prior["human_category"].notna() & (prior["human_category"] != "")
        prior.loc[has, "category"] = prior.loc[has, "human_category"]
        prior.loc[has, "category_source"] = "human"
        prior = prior.drop(columns="human_category")
    return prior


def _window_sort_key(window: str) -> tuple:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", window))


def output_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of opinions.csv: the contract first, then the extra columns, booleans as true/false."""
    out = frame.copy()
    for c in CONTRACT_COLUMNS + EXTRA_COLUMNS:
        if c not in out.columns:
            out[c] = ""
    out["needs_review"] = out["needs_review"].map(lambda v: "true" if bool(v) else "false")
    return out[list(CONTRACT_COLUMNS + EXTRA_COLUMNS)]


def problems_frame(problems: tuple[Problem, ...]) -> pd.DataFrame:
    return pd.DataFrame([{"ファイル": p.file, "行": p.row if p.row is not None else "", "種別": "エラー" if p.level == "error" else "警告", "内容": p.message} for p in problems], columns=["ファイル", "行", "種別", "内容"])


# Every CSV of the window's folder is UTF-8 with a BOM: Excel, which the WT opens them in, takes a CSV
# without one for Shift_JIS and shows the Japanese as mojibake. Readers use encoding="utf-8-sig".
CSV_ENCODING = "utf-8-sig"


def write_outputs(result: WindowResult, out_dir: Path, manifest: dict) -> dict[str, Path]:
    """The window's folder: opinions.csv (the contract's English columns), ingest_report.csv and
    run_manifest.json — for `opinions run` and the last DVC stage alike (``write_stage_outputs``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "opinions": out_dir / "opinions.csv",
        "ingest_report": out_dir / "ingest_report.csv",
        "manifest": out_dir / "run_manifest.json",
    }
    output_frame(result.opinions).to_csv(files["opinions"], index=False, encoding=CSV_ENCODING)
    problems_frame(result.problems).to_csv(files["ingest_report"], index=False, encoding=CSV_ENCODING)
    files["manifest"].write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return files


@dataclass(frozen=True)
class WindowContext:
    """What the window brings besides its opinions: its kind, its reference documents and its candidate list."""

    meta: object  # references.WindowMeta
    references: object  # references.ReferenceSet
    candidates: object  # candidates.CandidateList

    def domain(self, base: Domain) -> Domain:
        """``base`` with the window's own candidate list: what every later stage of the window uses."""
        return base.with_candidates(self.candidates.candidates)

    def manifest(self) -> dict:
        refs = self.references
        return {
            "candidate_list": self.candidates.manifest(),
            "kind": self.meta.kind,
            "kind_source": self.meta.kind_source,
            "title": self.meta.title,
            "references": {
                "source": refs.source,
                "note": "references/ がないため同梱の基本方針・共通化候補一覧を使用" if refs.source == "bundled" else "照会回の references/ を使用",
                "files": list(refs.files),
                "passages": len(refs.passages),
                "problems": list(refs.problems),
            },
        }


def load_window_context(raw_dir: Path, kind_option: str | None = None, domain: Domain | None = None) -> WindowContext:
    """Edge: the window's kind (window.yaml or the CLI option, never the folder name), its documents
    (RAW_DIR/references/, else the bundled base set) and its candidate list (window.yaml, else the
    candidate-list document, else the configured 令和6年度 list; candidates.CandidateListError when unreadable)."""
    from pipeline.candidates import resolve_candidates
    from pipeline.config import load_domain
    from pipeline.references import REFERENCES_DIR, load_references, load_window_meta

    meta, refs = load_window_meta(raw_dir, kind_option), load_references(raw_dir)
    return WindowContext(meta, refs, resolve_candidates(meta, refs, domain or load_domain(), Path(raw_dir) / REFERENCES_DIR))


def run_window(
    raw_dir: Path, window: str, out_dir: Path, domain: Domain, params: Params, classify: Classifier, model_info: dict, context: WindowContext | None = None, prior_decisions: pd.DataFrame | None = None
) -> tuple[WindowResult, dict[str, Path]]:
    """Edge: read a raw window folder, run the core, write the window's outputs. ``prior_decisions``
    (queue.decided_labels) make the link to earlier windows carry the reviewers' decisions."""
    t0 = time.perf_counter()
    ingested = ingest_window(raw_dir, window, domain, params.ingest)
    timings = {"ingest": time.perf_counter() - t0}
    prior = load_prior_windows(out_dir.parent, window, prior_decisions)
    result = process_window(ingested, params, classify, prior)
    timings.update(result.timings)
    ops = result.opinions
    record = {
        "window": window,
        "raw_dir": str(raw_dir),
        "rows_in": int(len(ingested.opinions)),
        "prior_windows": prior_window_ids(prior),
        "model": model_info,
        "context": context.manifest() if context is not None else {},
        "timings_s": timings,
    }
    files = write_outputs(result, out_dir, window_manifest(ops, result.problems, record))
    return WindowResult(ops, result.problems, timings), files


def prior_window_ids(prior: pd.DataFrame) -> list[str]:
    return sorted(prior["window"].unique().tolist()) if len(prior) else []


def window_manifest(ops: pd.DataFrame, problems: tuple[Problem, ...], record: dict) -> dict:
    """run_manifest.json, for ``opinions run`` and for the DVC stages alike. ``record`` holds what the
    stages learnt on the way: window, raw_dir, rows_in, prior_windows, model, context (the window's kind
    and documents, ``WindowContext.manifest``) and timings_s (seconds per stage)."""
    return {
        "window": record.get("window"),
        "raw_dir": record.get("raw_dir"),
        "files": sorted(ops["source_file"].unique().tolist()) if len(ops) else [],
        "rows_in": record.get("rows_in"),
        "rows_out": int(len(ops)),
        "duplicate_groups": int((ops.groupby("dup_group").size() > 1).sum()) if len(ops) else 0,
        "needs_review": int(ops["needs_review"].astype(bool).sum()) if len(ops) else 0,
        "problems": len(problems),
        "prior_windows": record.get("prior_windows", []),
        "model": record.get("model"),
        **record.get("context", {}),
        "timings_s": {k: round(v, 3) for k, v in record.get("timings_s", {}).items()},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --------------------------------------------------------------------------- the DVC stages' files
# Each stage of `opinions stage …` writes a parquet file that carries, in its metadata, the run record
# so far (the ingest problems, rows in, prior windows, model, window context, timings), so that the last
# stage writes the same opinions.csv, ingest_report.csv and run_manifest.json as `opinions run`.

RUN_RECORD_KEY = b"opinions_run_record"


def write_stage_frame(frame: pd.DataFrame, path: Path, record: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[RUN_RECORD_KEY] = json.dumps(record, ensure_ascii=False).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata(meta), path)


def read_stage_frame(path: Path) -> tuple[pd.DataFrame, dict]:
    """A stage file and its run record (empty for a parquet file written by something else)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(RUN_RECORD_KEY)
    return pd.read_parquet(path), (json.loads(raw.decode("utf-8")) if raw else {})


def problems_record(problems: tuple[Problem, ...]) -> list[dict]:
    return [{"file": p.file, "row": p.row, "level": p.level, "message": p.message} for p in problems]


def problems_from_record(record: dict) -> tuple[Problem, ...]:
    return tuple(Problem(p["file"], p["row"], p["level"], p["message"]) for p in record.get("problems", []))


def write_stage_outputs(frame: pd.DataFrame, record: dict, out_dir: Path) -> dict[str, Path]:
    """The last DVC stage: the window's output folder, written by the same function as `opinions run`."""
    problems = problems_from_record(record)
    result = WindowResult(frame, problems, record.get("timings_s", {}))
    return write_outputs(result, out_dir, window_manifest(frame, problems, record))
