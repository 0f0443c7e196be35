"""The hand-written labelled corpus (data/labeled/opinions.csv): load and validate.

Validation fails loudly (``LabeledDataError`` naming the rows) on an unknown category code, an unknown
candidate id, a duplicate opinion_id, a duplicate group whose members carry different labels, a group
that straddles the train/dev split, or a missing text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import paths
from pipeline.config import Domain, load_domain

HELDOUT = "heldout"  # whole windows never trained or tuned on (data/labeled/heldout/<window>.csv)
REQUIRED = ("opinion_id", "window", "body", "prefecture", "stated_candidate", "text", "reason", "candidate_id", "category", "dup_group", "note", "writer", "split")
SPLITS = ("train", "dev")


class LabeledDataError(ValueError):
    pass


def validate(frame: pd.DataFrame, domain: Domain, source: str = "labelled data", lists: dict | None = None) -> None:
    """``lists``: window → candidates.CandidateList for windows with a list of their own (harvested from a
    queue); their rows are checked against it instead of the configured list."""
    errors: list[str] = []
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise LabeledDataError(f"{source}: 列 {missing} がありません")

    def rows(mask) -> str:
        ids = frame.loc[mask, "opinion_id"].tolist()
        return ", ".join(map(str, ids[:10])) + (" …" if len(ids) > 10 else "")

    bad_cat = ~frame["category"].isin(domain.category_codes)
    if bad_cat.any():
        errors.append(f"分類コード {sorted(set(frame.loc[bad_cat, 'category']))} は定義にありません（行: {rows(bad_cat)}）")
    allowed = {w: {c.id for c in cl.candidates} for w, cl in (lists or {}).items()}
    base = set(domain.candidate_ids)
    bad_cand = pd.Series([c not in allowed.get(w, base) for w, c in zip(frame["window"], frame["candidate_id"])], index=frame.index, dtype=bool)
    if bad_cand.any():
        errors.append(f"対象候補 ID {sorted(set(frame.loc[bad_cand, 'candidate_id']))} はその照会回の候補一覧にありません（行: {rows(bad_cand)}）")
    dup_id = frame["opinion_id"].duplicated(keep=False)
    if dup_id.any():
        errors.append(f"opinion_id が重複しています（行: {rows(dup_id)}）")
    empty = frame["text"].str.strip() == ""
    if empty.any():
        errors.append(f"意見の本文が空です（行: {rows(empty)}）")
    bad_split = ~frame["split"].isin(SPLITS if lists is None or not any(frame["split"] == HELDOUT) else (*SPLITS, HELDOUT))
    if bad_split.any():
        errors.append(f"split は {SPLITS} のいずれかにしてください（行: {rows(bad_split)}）")
    grouped = frame[frame["dup_group"] != ""].groupby("dup_group")
    for g, members in grouped:
        if members["category"].nunique() > 1 or members["candidate_id"].nunique() > 1:
            errors.append(f"重複グループ {g} の中でラベルが異なります: " + ", ".join(f"{i}={c}/{k}" for i, c, k in members[["opinion_id", "category", "candidate_id"]].itertuples(index=False)))
        if members["split"].nunique() > 1:
            errors.append(f"重複グループ {g} が train と dev にまたがっています")
    if errors:
        raise LabeledDataError(f"{source}: " + "\n".join(errors))


def load_labeled(path: Path = paths.LABELED_CSV, domain: Domain | None = None) -> pd.DataFrame:
    """Load and validate the labelled corpus; every column is a string ("" for empty)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: ラベル付きデータが見つかりません（data/labeled/opinions.csv はリポジトリに含まれています）")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    validate(frame, domain or load_domain(), str(path))
    return frame


def load_heldout(root: Path = paths.LABELED / HELDOUT, domain: Domain | None = None, lists: dict | None = None) -> pd.DataFrame:
    """The held-out windows (one CSV per window, split ``heldout``), each validated against its own
    candidate list (``lists``: window → CandidateList, from load_corpus_references)."""
    files = sorted(root.glob("*.csv")) if root.is_dir() else []
    if not files:
        return pd.DataFrame(columns=list(REQUIRED))
    frame = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8") for f in files], ignore_index=True)
    if (frame["split"] != HELDOUT).any():
        raise LabeledDataError(f"{root}: split は heldout だけです（{sorted(set(frame['split']) - {HELDOUT})}）")
    validate(frame, domain or load_domain(), str(root), lists or {})
    return frame


def split(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["split"] == name].reset_index(drop=True)


# writers whose rows form the dev split: written by different people than the train split
DEV_WRITERS = ("W6", "W7")


def assemble_drafts(files: list[Path]) -> pd.DataFrame:
    """Join the writers' JSONL drafts into the corpus table (writer from the id, split by writer)."""
    import json

    rows = []
    for f in sorted(files):
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise LabeledDataError(f"{f}:{n}: {e}") from None
    frame = pd.DataFrame(rows).fillna("")
    frame["writer"] = frame["opinion_id"].str.split("-").str[0]
    frame["split"] = frame["writer"].map(lambda w: "dev" if w in DEV_WRITERS else "train")
    for c in REQUIRED:
        if c not in frame.columns:
            frame[c] = ""
    return frame[list(REQUIRED)].astype(str)


def agreement_report(sample: pd.DataFrame, domain: Domain | None = None) -> pd.DataFrame:
    """Cohen's kappa of two labelling passes, overall and per category (one-vs-rest), from a frame with
    ``category_writer``/``category_annotator`` and ``candidate_writer``/``candidate_annotator``."""
    from sklearn.metrics import cohen_kappa_score

    domain = domain or load_domain()
    rows = []
    for field in ("category", "candidate"):
        a, b = sample[f"{field}_writer"], sample[f"{field}_annotator"]
        rows.append({"scope": field, "n": len(sample), "agreement": float((a == b).mean()), "kappa": float(cohen_kappa_score(a, b))})
    for code in domain.category_codes:
        a, b = sample["category_writer"] == code, sample["category_annotator"] == code
        rows.append({"scope": f"category={code}", "n": int((a | b).sum()), "agreement": float((a == b).mean()), "kappa": float(cohen_kappa_score(a, b)) if a.any() or b.any() else float("nan")})
    return pd.DataFrame(rows)


def dev_text_keys(corpus: pd.DataFrame) -> set[str]:
    """The matching keys (normalize.dedupe_key: NFKC, contacts, punctuation and the body's name out) of
    the dev split's texts: a training row with one of these texts would be evaluated on itself."""
    from pipeline.normalize import dedupe_key

    dev = split(corpus, "dev")
    return {k for k in (dedupe_key(t, b) for t, b in zip(dev["text"], dev["body"])) if k}


def dev_text_rows(rows: pd.DataFrame, corpus: pd.DataFrame) -> pd.Series:
    """True for each row of ``rows`` whose text is a dev-split text (``dev_text_keys``)."""
    from pipeline.normalize import dedupe_key

    keys = dev_text_keys(corpus)
    return pd.Series([dedupe_key(t, b) in keys for t, b in zip(rows["text"].fillna(""), rows["body"].fillna(""))], index=rows.index, dtype=bool)


def refused_dev_message(count: int, source: str) -> str:
    return f"{source}: {count} 件は評価用（dev 分割）の意見と同じ本文のため、学習には使いません（dev の評価が自分自身で学習した結果になるのを防ぐため）。"


def load_training_corpus(path: Path = paths.LABELED_CSV, harvested: Path = paths.HARVESTED, domain: Domain | None = None,
                         windows: Path = paths.LABELED_WINDOWS, lists: dict | None = None) -> pd.DataFrame:  # fmt: skip
    """The hand-written corpus, the whole windows of ``windows`` (one CSV per window, split ``train``,
    each with its own documents and candidate list in ``lists``: window → CandidateList, from
    load_corpus_references) and decisions harvested from review queues (``opinions queue harvest``),
    which join the train split. Validated together (ids must stay unique).

    Harvested rows whose text is a dev-split text are refused (the bundled sample window is made of dev
    texts, so harvesting it would train on the evaluation set): they are left out with a warning that
    counts them, also kept in ``frame.attrs["refused_dev_rows"]``."""
    import warnings

    domain = domain or load_domain()
    corpus = load_labeled(path, domain)
    if lists is None and windows.is_dir() and any(windows.glob("*.csv")):
        lists = load_corpus_references(domain=domain).candidates
    frames = [corpus, *training_windows(windows, lists or {})]
    refused = 0
    lists = {w: cl for w, cl in (lists or {}).items() if any(w in set(f["window"]) for f in frames[1:])}
    for f in sorted(harvested.glob("*.csv")) if harvested.is_dir() else []:
        rows = pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8")
        lists.update(harvested_lists(f, rows))
        if len(rows) and {"text", "body"} <= set(rows.columns):
            dev = dev_text_rows(rows, corpus)
            if dev.any():
                warnings.warn(refused_dev_message(int(dev.sum()), str(f)), stacklevel=2)
                refused += int(dev.sum())
            rows = rows[~dev]
        frames.append(rows)
    frame = pd.concat(frames, ignore_index=True)[list(REQUIRED)]
    validate(frame, domain, f"{path} + {harvested}", lists)
    frame.attrs["refused_dev_rows"] = refused
    frame.attrs["candidate_lists"] = lists
    return frame


def training_windows(root: Path, lists: dict) -> list[pd.DataFrame]:
    """The whole windows trained on (``root``/<window>.csv): split ``train`` only, and each window must
    have its documents (and so its candidate list) in data/labeled/references/<window>/."""
    out = []
    for f in sorted(root.glob("*.csv")) if root.is_dir() else []:
        rows = pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8")
        bad = sorted(set(rows["split"]) - {"train"}) if "split" in rows.columns else ["（split 列がありません）"]
        if bad:
            raise LabeledDataError(f"{f}: 学習用の照会回のファイルの split は train だけにしてください（{bad}）")
        missing = sorted(set(rows["window"]) - set(lists))
        if missing:
            raise LabeledDataError(f"{f}: 照会回 {missing} の参考文書（data/labeled/references/<照会回>/）がないため、対象候補の一覧が分かりません")
        out.append(rows)
    return out


def harvested_lists(csv: Path, rows: pd.DataFrame) -> dict:
    """The candidate list a harvested file's window used (``<file>.candidates.json`` beside it, written by
    ``opinions queue harvest``); {} for a file without one (the configured list)."""
    import json

    from pipeline.candidates import from_manifest

    f = candidates_file(csv)
    if not f.exists() or not len(rows):
        return {}
    cl = from_manifest(json.loads(f.read_text(encoding="utf-8")))
    return {w: cl for w in rows["window"].unique()}


def candidates_file(csv: Path) -> Path:
    return csv.with_suffix(".candidates.json")


# --------------------------------------------------------------------------- reference documents of the corpus windows

REFERENCE_NOTES = {"CARD.md", "README.md", "COUNTERFACTUAL.md"}


@dataclass(frozen=True)
class CorpusReferences:
    """The documents of each corpus window (data/labeled/references/<window>/*.md), the passage that
    settles each labelled 解決済 opinion (settles.csv), and the counterfactual passages written to test
    and teach reading (counterfactual_passages.csv, counterfactual_nearmiss.csv)."""

    passages: dict  # window → tuple[Passage, ...]
    gold: dict  # opinion_id → passage id (the one settles.csv names)
    counterfactual: pd.DataFrame  # opinion_id, window, split, heading, passage, kind
    near_miss: pd.DataFrame
    problems: tuple[str, ...] = ()
    kinds: dict | None = None  # window → kind (its window.yaml)
    also: dict | None = None  # opinion_id → other passage ids that settle it too (settles_also.csv, an audit)
    candidates: dict | None = None  # window → candidates.CandidateList (its window.yaml, else its candidate-list document)

    def window_domain(self, window: str, domain: Domain) -> Domain:
        """``domain`` with the window's own candidate list (the configured list for a window without one)."""
        cl = (self.candidates or {}).get(window)
        return domain.with_candidates(cl.candidates) if cl is not None else domain

    def settling(self, opinion_id: str) -> set:
        """Every passage that settles the opinion (the named one and the audited alternatives)."""
        out = set((self.also or {}).get(opinion_id, ()))
        if opinion_id in self.gold:
            out.add(self.gold[opinion_id])
        return out


def _find_passage(passages, file: str, quote: str) -> str | None:
    import unicodedata

    def norm(s: str) -> str:
        return re.sub(r"\s+", "", unicodedata.normalize("NFKC", s or ""))

    q = norm(quote)
    hits = [p.id for p in passages if p.file == file and q and q in norm(p.text)]
    return hits[0] if len(hits) == 1 else None


def _quoted(path: Path, passages, problems: list[str]) -> list[tuple[str, str]]:
    """(opinion_id, passage id) of a settles table (opinion_id, file, quote); a quote found in no or in
    several paragraphs is reported, not guessed."""
    out = []
    if path.exists():
        for r in pd.read_csv(path, dtype=str, keep_default_na=False).itertuples():
            pid = _find_passage(passages, r.file, r.quote)
            if pid is None:
                problems.append(f"{path}: {r.opinion_id} の引用が {r.file} の段落に一つだけ見つかりません")
            else:
                out.append((r.opinion_id, pid))
    return out


def load_corpus_references(root: Path = paths.LABELED_REFERENCES, domain: Domain | None = None) -> CorpusReferences:
    from pipeline.candidates import resolve_candidates
    from pipeline.references import ReferenceSet, load_window_meta, split_passages

    domain = domain or load_domain()
    candidates: dict = {}
    passages: dict = {}
    kinds: dict = {}
    also: dict = {}
    gold: dict = {}
    problems: list[str] = []
    if root.is_dir():
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            got = []
            for f in sorted(d.glob("*.md")):
                if f.name not in REFERENCE_NOTES:
                    got.extend(split_passages(f.read_text(encoding="utf-8-sig"), f.name))
            passages[d.name] = tuple(got)
            meta = load_window_meta(d)
            kinds[d.name] = meta.kind
            candidates[d.name] = resolve_candidates(meta, ReferenceSet(tuple(got), (), "window", ()), domain, d)
            for oid, pid in _quoted(d / "settles.csv", got, problems):
                gold[oid] = pid
            for oid, pid in _quoted(d / "settles_also.csv", got, problems):
                also.setdefault(oid, set()).add(pid)

    def table(name: str) -> pd.DataFrame:
        f = root / name
        cols = ["opinion_id", "window", "split", "heading", "passage", "kind"]
        return pd.read_csv(f, dtype=str, keep_default_na=False) if f.exists() else pd.DataFrame(columns=cols)

    return CorpusReferences(passages, gold, table("counterfactual_passages.csv"), table("counterfactual_nearmiss.csv"), tuple(problems), kinds, also, candidates)
