"""Train: data/labeled (train split) → an OpinionModel in models/.

Held-out predictions come from grouped cross-validation by *writer* (each fold's held-out rows were
written by someone the fold's model never read), which is what a new consultation window looks like
to the model. Those predictions calibrate the probabilities (temperature) and choose the review
policy; the dev split is touched only by ``evaluate``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold

from pipeline.classify import OpinionModel, build_model, choose_policy, fit_temperature, precedent_vectors, prepare, softmax
from pipeline.config import ClassifyConfig, Domain
from pipeline.normalize import normalise

DEFAULT_TARGETS = {"share_loss": 0.02, "auto_accuracy": 0.95, "candidate_accuracy": 0.97}


def data_version(frame: pd.DataFrame) -> str:
    """A short content hash of the labelled rows used (what DVC would call the data version)."""
    h = hashlib.sha256(pd.util.hash_pandas_object(frame[["opinion_id", "text", "reason", "candidate_id", "category"]], index=False).values.tobytes())
    return h.hexdigest()[:12]


def _aligned_logits(model, X: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Decision values in the order of ``classes`` (a fold may miss a class: it gets a very low logit)."""
    raw = model.decision_function(X)
    if raw.ndim == 1:
        raw = np.vstack([-raw, raw]).T
    out = np.full((len(X), len(classes)), -1e3)
    for j, c in enumerate(model.classes_):
        out[:, classes.index(c)] = raw[:, j]
    return out


def out_of_fold(frame: pd.DataFrame, y: np.ndarray, classes: list[str], groups: np.ndarray, template) -> np.ndarray:
    n_groups = len(np.unique(groups))
    folds = GroupKFold(n_splits=min(5, n_groups))
    logits = np.zeros((len(frame), len(classes)))
    for tr, te in folds.split(frame, y, groups):
        m = clone(template).fit(frame.iloc[tr], y[tr])
        logits[te] = _aligned_logits(m, frame.iloc[te], classes)
    return logits


def fit_opinion_model(train: pd.DataFrame, domain: Domain, cfg: ClassifyConfig, targets: dict | None = None, features: tuple[str, ...] | None = None) -> tuple[OpinionModel, dict]:
    """Fit both models on the labelled train rows; return the model and its out-of-fold report."""
    targets = targets or DEFAULT_TARGETS
    features = tuple(features or cfg.features)
    X = prepare(normalise(train), domain)
    y_cat = X["category"].to_numpy()
    y_cand = X["candidate_id"].to_numpy()
    cat_classes = [c for c in domain.category_codes if c in set(y_cat)]
    cand_classes = sorted(set(y_cand))
    groups = X["writer"].to_numpy() if X["writer"].nunique() > 1 else X["dup_group"].where(X["dup_group"] != "", X["opinion_id"]).to_numpy()

    cat_tpl = build_model(features, cfg, for_candidate=False)
    cand_tpl = build_model(features, cfg, for_candidate=True)
    oof_cat = out_of_fold(X, y_cat, cat_classes, groups, cat_tpl)
    oof_cand = out_of_fold(X, y_cand, cand_classes, groups, cand_tpl)
    y_cat_idx = np.array([cat_classes.index(c) for c in y_cat])
    y_cand_idx = np.array([cand_classes.index(c) for c in y_cand])
    t_cat = fit_temperature(oof_cat, y_cat_idx)
    t_cand = fit_temperature(oof_cand, y_cand_idx)
    p_cat, p_cand = softmax(oof_cat, t_cat), softmax(oof_cand, t_cand)
    policy, policy_report = choose_policy(p_cat, y_cat_idx, cat_classes, p_cand.max(1), p_cand.argmax(1) == y_cand_idx, cfg, targets)

    category = clone(cat_tpl).fit(X, y_cat)
    candidate = clone(cand_tpl).fit(X, y_cand)
    report = {
        "oof_category_macro_f1": float(f1_score(y_cat_idx, p_cat.argmax(1), average="macro")),
        "oof_share_recall": float(((p_cat.argmax(1) == cat_classes.index("SHARE")) & (y_cat == "SHARE")).sum() / max((y_cat == "SHARE").sum(), 1)),
        "oof_candidate_accuracy": float(accuracy_score(y_cand_idx, p_cand.argmax(1))),
        "category_temperature": t_cat,
        "candidate_temperature": t_cand,
        "cv_groups": int(len(np.unique(groups))),
        **{f"oof_policy_{k}": v for k, v in policy_report.items()},
    }
    model = OpinionModel(
        category=category,
        candidate=candidate,
        category_temperature=t_cat,
        candidate_temperature=t_cand,
        policy=policy,
        features=features,
        precedents=X[["opinion_id", "category", "candidate_id"]].reset_index(drop=True),
        precedent_vectors=precedent_vectors(category, X),
        meta={
            "data_version": data_version(train),
            "train_rows": int(len(train)),
            "targets": targets,
            "params": {k: v for k, v in asdict(cfg).items() if k != "extra"},
            "oof": report,
        },
    )
    return model, report
