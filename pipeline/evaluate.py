"""Evaluate: a trained model on labelled rows (the dev split) → metrics dict and a confusion matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from pipeline.classify import SHARE, OpinionModel, predict
from pipeline.config import Domain
from pipeline.dedupe import group_duplicates
from pipeline.config import DedupeConfig
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


def evaluate_model(model: OpinionModel, rows: pd.DataFrame, domain: Domain) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Predict labelled rows and score them; returns (metrics, confusion matrix, predictions)."""
    pred = predict(model, normalise(rows), domain, explain=True)
    return classification_metrics(pred, rows, domain), confusion(pred, rows, domain), pred


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


def ablation(train: pd.DataFrame, dev: pd.DataFrame, domain: Domain, cfg, feature_sets: list[tuple[str, ...]]) -> pd.DataFrame:
    """Refit the whole model (calibration and review policy included) for each feature set; score on dev."""
    from dataclasses import replace

    from pipeline.train import fit_opinion_model

    rows = []
    for feats in feature_sets:
        model, oof = fit_opinion_model(train, domain, replace(cfg, features=tuple(feats)))
        m, _, _ = evaluate_model(model, dev, domain)
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
