"""Evaluate: a trained model on labelled rows (the dev split) → metrics dict and a confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from pipeline.classify import Analysers, OpinionModel, analysers, predict, prepare, reference_index
from pipeline.config import DedupeConfig, Domain
from pipeline.dedupe import group_duplicates
from pipeline.labeled import CorpusReferences
from pipeline.policy import RESOLVED, SHARE
from pipeline.normalize import normalise


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - correct[m].mean())
    return float(ece)


def classification_metrics(pred: pd.DataFrame, gold: pd.DataFrame, domain: Domain) -> dict:
    """Metrics of predicted vs gold labels (rows aligned)."""
    codes = list(domain.category_codes)
    y, p = gold["category"].to_numpy(), pred["category"].to_numpy()
    review = pred["needs_review"].astype(bool).to_numpy()
    auto = ~review
    pr, rc, f1, sup = precision_recall_fscore_support(y, p, labels=codes, zero_division=0)
    is_share = y == SHARE
    cand_ok = pred["candidate_id"].to_numpy() == gold["candidate_id"].to_numpy()
    correct = p == y
    m = {
        "rows": int(len(gold)),
        "category_macro_f1": float(f1_score(y, p, labels=codes, average="macro", zero_division=0)),
        "category_accuracy": float(accuracy_score(y, p)),
        "share_recall": float(((p == SHARE) & is_share).sum() / max(is_share.sum(), 1)),
        "candidate_accuracy": float(cand_ok.mean()),
        "review_rate": float(review.mean()),
        "auto_accuracy": float(correct[auto].mean()) if auto.any() else float("nan"),
        "auto_candidate_accuracy": float(cand_ok[auto].mean()) if auto.any() else float("nan"),
        "share_auto_excluded": float((is_share & (p != SHARE) & auto).sum() / max(is_share.sum(), 1)),
        "category_ece": expected_calibration_error(pred["category_confidence"].astype(float).to_numpy(), correct),
        "candidate_ece": expected_calibration_error(pred["candidate_confidence"].astype(float).to_numpy(), cand_ok),
        "per_class": {c: {"precision": float(a), "recall": float(b), "f1": float(d), "support": int(s)} for c, a, b, d, s in zip(codes, pr, rc, f1, sup)},
    }
    return m


def confusion(pred: pd.DataFrame, gold: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    codes = list(domain.category_codes)
    cm = confusion_matrix(gold["category"], pred["category"], labels=codes)
    return pd.DataFrame(cm, index=codes, columns=codes)


def window_kind(window: str, refs: CorpusReferences | None) -> str:
    return ((refs.kinds or {}).get(window) if refs is not None else None) or "candidate-list"


def predict_windows(model: OpinionModel, rows: pd.DataFrame, domain: Domain, refs: CorpusReferences | None, an: Analysers | None = None, passages: dict | None = None) -> pd.DataFrame:
    """Predict labelled rows window by window, each against its own window's documents
    (``passages`` overrides a window's passage list: the counterfactual tests remove or add passages)."""
    an = an or analysers(model)
    frame = normalise(rows.reset_index(drop=True))
    parts = []
    for w, idx in frame.groupby("window", sort=False).groups.items():
        ps = (passages or {}).get(w, refs.passages.get(w, ()) if refs is not None else ())
        wd = refs.window_domain(w, domain) if refs is not None else domain
        index = reference_index(ps, wd, an, source=w) if ps else None
        part = predict(model, frame.loc[idx], wd, index, window_kind(w, refs), explain=True, an=an)
        part.index = idx
        parts.append(part)
    return pd.concat(parts).sort_index()


def grounding_metrics(pred: pd.DataFrame, gold: pd.DataFrame, refs: CorpusReferences | None) -> dict:
    """Is 解決済 cited from the passage the labels name, and does retrieval find that passage."""
    if refs is None:
        return {}
    y = gold["category"].to_numpy()
    p = pred["category"].to_numpy()
    has_gold = np.array([oid in refs.gold for oid in gold["opinion_id"]])
    correct_res = (y == RESOLVED) & (p == RESOLVED) & has_gold
    cited_ok = np.array([pred["resolved_by"].iloc[i] in refs.settling(gold["opinion_id"].iloc[i]) for i in range(len(gold))])
    retrieved = np.array([bool(refs.settling(oid) & set(str(r).split("|"))) for oid, r in zip(gold["opinion_id"], pred["retrieved_passages"])])
    gold_rows = (y == RESOLVED) & has_gold
    auto = ~pred["needs_review"].astype(bool).to_numpy()
    in_scope = y != "OUT_OF_SCOPE"
    settled = pred["coverage"].astype(float).to_numpy() >= 0.5
    cov_f1 = float(f1_score(y[in_scope] == RESOLVED, settled[in_scope], zero_division=0))
    return {
        "coverage_f1": cov_f1,  # the pair model's judgement alone (coverage ≥ 0.5 vs labelled 解決済, in-scope rows)
        "resolved_cited_as_labelled": float(cited_ok[correct_res].mean()) if correct_res.any() else float("nan"),
        "retrieval_recall_at_5": float(retrieved[gold_rows].mean()) if gold_rows.any() else float("nan"),
        "resolved_auto_without_citation": int(((p == RESOLVED) & auto & (pred["resolved_by"].to_numpy() == "")).sum()),
    }


def evaluate_model(model: OpinionModel, rows: pd.DataFrame, domain: Domain, refs: CorpusReferences | None = None) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Predict labelled rows (against their windows' documents) and score them; returns (metrics, confusion matrix, predictions)."""
    rows = rows.reset_index(drop=True)
    pred = predict_windows(model, rows, domain, refs).reset_index(drop=True)
    m = classification_metrics(pred, rows, domain)
    m["per_class_resolved_f1"] = m["per_class"]["RESOLVED"]["f1"]
    m["grounding"] = grounding_metrics(pred, rows, refs)
    return m, confusion(pred, rows, domain), pred


def stated_robustness(model: OpinionModel, rows: pd.DataFrame, domain: Domain, refs: CorpusReferences | None, rates=(0.0, 0.1, 0.3), seed: int = 0) -> dict:
    """Candidate accuracy with the 対象 column blanked and replaced by a wrong candidate in a share of rows."""
    rng = np.random.default_rng(seed)
    ids = [c.id for c in domain.candidates]
    out = {}
    blank = rows.assign(stated_candidate="")
    out["blank"] = float((predict_windows(model, blank, domain, refs)["candidate_id"].to_numpy() == rows["candidate_id"].to_numpy()).mean())
    for r in rates:
        wrong = rows.copy()
        m = rng.random(len(rows)) < r
        wrong.loc[m, "stated_candidate"] = [domain.candidate_name(rng.choice([i for i in ids if i != g])) for g in rows.loc[m, "candidate_id"]]
        out[f"wrong_{int(r * 100)}pct"] = float((predict_windows(model, wrong, domain, refs)["candidate_id"].to_numpy() == rows["candidate_id"].to_numpy()).mean())
    return out


def pair_set(groups: pd.Series) -> set[tuple[int, int]]:
    """All unordered index pairs that share a (non-empty) group label."""
    pairs: set[tuple[int, int]] = set()
    for _, idx in groups[groups != ""].groupby(groups[groups != ""]).groups.items():
        idx = sorted(idx)
        pairs.update((a, b) for i, a in enumerate(idx) for b in idx[i + 1 :])
    return pairs


def dedupe_metrics(rows: pd.DataFrame, cfg: DedupeConfig) -> dict:
    """Pair-wise precision/recall/F1 of duplicate grouping against the labelled dup_group column."""
    frame = normalise(rows.reset_index(drop=True))
    got = group_duplicates(frame, cfg)
    pred_groups = got["dup_group"].where(got["dup_count"] > 1, "")
    gold, pred = pair_set(frame["dup_group"]), pair_set(pred_groups)
    tp = len(gold & pred)
    p = tp / len(pred) if pred else 1.0
    r = tp / len(gold) if gold else 1.0
    return {"pairs_gold": len(gold), "pairs_pred": len(pred), "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def nearest_train_similarity(rows: pd.DataFrame, train: pd.DataFrame, k: int = 3) -> np.ndarray:
    """For each row, the highest character-shingle Jaccard with any training row: a row above ~0.3
    has a near-paraphrase in train (writers converge on the same idea), so its score is optimistic."""
    from pipeline.dedupe import overlap, shingle_hashes

    tr = [shingle_hashes(x, k) for x in normalise(train)["dedupe_key"]]
    return np.array([max((overlap(shingle_hashes(x, k), t)[0] for t in tr), default=0.0) for x in normalise(rows)["dedupe_key"]])


def ablation(train: pd.DataFrame, dev: pd.DataFrame, domain: Domain, cfg, feature_sets: list[tuple[str, ...]], refs: CorpusReferences | None = None) -> pd.DataFrame:
    """Refit the whole model (calibration and review policy included) for each feature set; score on dev."""
    from dataclasses import replace

    from pipeline.train import fit_opinion_model

    rows = []
    for feats in feature_sets:
        model, oof = fit_opinion_model(train, domain, replace(cfg, features=tuple(feats)), refs)
        m, _, _ = evaluate_model(model, dev, domain, refs)
        rows.append(
            {
                "features": "+".join(feats),
                "macro_f1": m["category_macro_f1"],
                "share_recall": m["share_recall"],
                "candidate_accuracy": m["candidate_accuracy"],
                "review_rate": m["review_rate"],
                "auto_accuracy": m["auto_accuracy"],
                "share_auto_excluded": m["share_auto_excluded"],
                "oof_macro_f1": oof["oof_category_macro_f1"],
            }
        )
    return pd.DataFrame(rows)


def counterfactual_metrics(model: OpinionModel, rows: pd.DataFrame, domain: Domain, refs: CorpusReferences | None) -> dict:
    """Does the decision read the documents? On labelled rows, each against its window's documents:
    - removed: of the 解決済 rows auto-decided 解決済 citing a settling passage with the documents intact,
      the share no longer auto-decided 解決済 once every passage the labels say settles it (settles.csv and
      the audited settles_also.csv) is removed;
    - added: of the 共有すべきもの rows with a passage written to settle them, the share that become 解決済
      citing it, or go to review citing it with 解決済 newly in their prediction set;
    - near_miss: of the rows given a same-topic passage that does not settle them, the share not auto-decided
      解決済 on it.
    Denominators are reported (``*_n``) and rows whose outcome could not change are left out."""
    from pipeline.train import _extra_passage

    if refs is None:
        return {}
    rows = rows.reset_index(drop=True)
    an = analysers(model)
    out: dict = {}
    base = predict_windows(model, rows, domain, refs, an).reset_index(drop=True)
    auto_res = (base["category"] == RESOLVED) & ~base["needs_review"].astype(bool)
    eligible = [i for i in range(len(rows)) if rows["category"].iloc[i] == RESOLVED and auto_res.iloc[i] and base["resolved_by"].iloc[i] in refs.settling(rows["opinion_id"].iloc[i])]
    hit = []
    for i in eligible:
        r = rows.iloc[i]
        gone = refs.settling(r["opinion_id"])
        ps = tuple(p for p in refs.passages[r["window"]] if p.id not in gone)
        p = predict_windows(model, r.to_frame().T, domain, refs, an, {r["window"]: ps}).iloc[0]
        hit.append(not (p["category"] == RESOLVED and not bool(p["needs_review"])))
    out["removed_passage_not_auto_resolved"] = float(np.mean(hit)) if hit else float("nan")
    out["removed_n"] = len(hit)
    out["removed_of_labelled_resolved"] = int((rows["category"] == RESOLVED).sum())
    for name, table in (("added", refs.counterfactual), ("near_miss", refs.near_miss)):
        t = table[table["opinion_id"].isin(rows["opinion_id"])] if len(table) else table
        if not len(t):
            continue
        ok = []
        for n, c in enumerate(t.itertuples(), start=1):
            i = int(np.flatnonzero(rows["opinion_id"].to_numpy() == c.opinion_id)[0])
            r, before = rows.iloc[i], base.iloc[i]
            extra = _extra_passage(c, n)
            p = predict_windows(model, r.to_frame().T, domain, refs, an, {r["window"]: tuple(refs.passages.get(r["window"], ())) + (extra,)}).iloc[0]
            cites = extra.id in (p["resolved_by"], p["nearest_passage"]) or extra.id in str(p["retrieved_passages"]).split("|")[:1]
            if name == "added":
                if before["category"] == RESOLVED:
                    continue  # already 解決済 without the passage: the test cannot show anything
                newly = RESOLVED in str(p["prediction_set"]).split("|") and RESOLVED not in str(before["prediction_set"]).split("|")
                ok.append((p["category"] == RESOLVED and p["resolved_by"] == extra.id) or (bool(p["needs_review"]) and cites and newly))
            else:
                ok.append(not (p["category"] == RESOLVED and p["resolved_by"] == extra.id and not bool(p["needs_review"])))
        out[f"{name}_passage_ok"] = float(np.mean(ok)) if ok else float("nan")
        out[f"{name}_n"] = int(len(ok))
    return out


def per_window_metrics(pred: pd.DataFrame, rows: pd.DataFrame, domain: Domain) -> dict:
    """The headline figures of each window apart (rows aligned with pred)."""
    keys = ("rows", "category_macro_f1", "candidate_accuracy", "share_recall", "share_auto_excluded", "review_rate", "auto_accuracy")
    out = {}
    for w, idx in rows.groupby("window", sort=True).groups.items():
        m = classification_metrics(pred.loc[idx].reset_index(drop=True), rows.loc[idx].reset_index(drop=True), domain)
        out[w] = {k: m[k] for k in keys} | {"resolved_f1": m["per_class"]["RESOLVED"]["f1"]}
    return out


def mapping_by_list_size(model: OpinionModel, rows: pd.DataFrame, domain: Domain, refs: CorpusReferences, sizes=(2, 4, 6, 9, 14), draws: int = 8, seed: int = 0, an: Analysers | None = None) -> dict:
    """Candidate accuracy when the window's list holds only ``k`` of its candidates (the gold one and
    k−1 others drawn at random, the cross-cutting entry always kept): how mapping degrades as lists grow.
    Each size is averaged over ``draws`` random lists; rows whose gold candidate is not drawn are skipped."""
    from pipeline.classify import candidate_profiles, candidate_scores
    from pipeline.mapping import sentence_embeddings

    an = an or analysers(model)
    rng = np.random.default_rng(seed)
    frame = normalise(rows.reset_index(drop=True))
    emb = an.encode(frame["match_text"])
    sent = sentence_embeddings(frame["match_text"].tolist(), an.encode)
    learned = model.learned_proba(prepare(frame, domain))
    out: dict = {}
    for w, idx in frame.groupby("window", sort=True).groups.items():
        wd = refs.window_domain(w, domain)
        specific = [c for c in wd.candidates if not c.general]
        general = [c for c in wd.candidates if c.general]
        idx = np.asarray(idx)
        for k in sizes:
            if k - 1 > len(specific) or k < 2:
                continue
            hits, n = 0, 0
            for _ in range(draws):
                chosen = [specific[i] for i in sorted(rng.choice(len(specific), size=k - 1, replace=False))] + general
                ids = [c.id for c in chosen]
                sel = idx[np.isin(frame["candidate_id"].to_numpy()[idx], ids)]
                if not len(sel):
                    continue
                prof = candidate_profiles(model, wd.with_candidates(chosen), an, None)
                _, _, p = candidate_scores(model, prof, frame["match_text"].iloc[sel].tolist(), emb[sel], [sent[i] for i in sel], learned[sel])
                pick = p.argmax(1)
                hits += int((np.array(ids)[pick] == frame["candidate_id"].to_numpy()[sel]).sum())
                n += len(sel)
            out.setdefault(w, {})[str(k)] = {"candidates": k, "accuracy": hits / n if n else float("nan"), "rows": n}
    return out
