"""Train: data/labeled (train split) and the corpus windows' documents → an OpinionModel.

Held-out scores come from grouped cross-validation by *writer* (each fold's held-out rows were written by
someone the fold's models never read), which is what a new window looks like to the model. Those scores
calibrate the probabilities (temperatures, Platt), fit the conformal calibration and choose the review
policy; the dev split is touched only by ``evaluate``.

Three models are fitted: the text model over six categories — whether an opinion is settled (解決済) is a
fact about the documents, not the text, so a labelled 解決済 row teaches the text model what it would be
if no document settled it: a concrete in-scope request, 共有すべきもの — the candidate model (text only), and the coverage pair model
over (opinion, retrieved passage) pairs labelled by ``settles.csv``, plus the counterfactual passages
written for training (a 共有すべきもの opinion and a passage that would settle it).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold

from pipeline.classify import Analysers, analysers, reference_index
from pipeline.config import ClassifyConfig, Domain
from pipeline.grounding import PAIR_FEATURES, CoverageModel, candidate_pairs, opinion_side, pair_features, retrieve
from pipeline.labeled import CorpusReferences
from pipeline.model import RESOLVED, OpinionModel, build_model, fit_temperature, prepare, softmax
from pipeline.normalize import normalise
from pipeline.policy import OUT_OF_SCOPE, SHARE, ConformalPolicy, apply_platt, choose_epsilons, compose, platt
from pipeline.references import Passage

DEFAULT_TARGETS = {"share_loss": 0.02, "auto_accuracy": 0.95, "candidate_accuracy": 0.97}
RETRIEVE_K = 5
SHARE_EPSILON = 0.02  # the stated guarantee (ADR 0005)
RELEVANCE_QUANTILE = 0.002  # an in-domain opinion is this rarely below the off-domain threshold (out of fold)
TYPICAL_QUANTILE = 0.02  # below this quantile an opinion is decided by a person: the calibration hardly covers it


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


def writer_groups(X: pd.DataFrame) -> np.ndarray:
    return X["writer"].to_numpy() if X["writer"].nunique() > 1 else X["dup_group"].where(X["dup_group"] != "", X["opinion_id"]).to_numpy()


def folds(groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(np.unique(groups))
    return list(GroupKFold(n_splits=min(5, n_groups)).split(np.zeros(len(groups)), groups=groups))


def out_of_fold(X: pd.DataFrame, y: np.ndarray, classes: list[str], splits, template, fit_mask: np.ndarray | None = None) -> np.ndarray:
    """Held-out logits for every row; each fold's model is fitted on its training rows where ``fit_mask``."""
    fit_mask = np.ones(len(X), bool) if fit_mask is None else fit_mask
    logits = np.zeros((len(X), len(classes)))
    for tr, te in splits:
        tr = tr[fit_mask[tr]]
        m = clone(template).fit(X.iloc[tr], y[tr])
        logits[te] = _aligned_logits(m, X.iloc[te], classes)
    return logits


# --------------------------------------------------------------------------- pairs for the coverage model


@dataclass
class Pairs:
    X: np.ndarray
    y: np.ndarray
    opinion: np.ndarray  # row index in the training frame
    retrieved: np.ndarray  # the pair was retrieved (not added because retrieval missed the gold passage)
    augmented: np.ndarray  # from a counterfactual reference set
    group: np.ndarray  # writer


def _extra_passage(row, n: int) -> Passage:
    heading = str(row.heading or "追加の記載")
    return Passage(id=f"追加資料.md#追加資料 > {heading}#{n}", file="追加資料.md", headings=("追加資料", heading), n=n, text=str(row.passage))


def build_pairs(X: pd.DataFrame, refs: CorpusReferences, domain: Domain, an: Analysers, p_text: np.ndarray, text_classes: list[str], candidates: list[str], groups: np.ndarray, emb: np.ndarray) -> tuple[Pairs, dict]:
    """Labelled (opinion, passage) pairs: the k retrieved passages of every in-scope opinion of a window
    with documents (label 1 for the passage settles.csv names), the gold passage added when retrieval
    missed it, and the counterfactual training sets (window documents + one passage that settles a
    共有すべきもの opinion)."""
    feats, ys, ops, retr, aug, grp = [], [], [], [], [], []
    recall_hits, recall_n = 0, 0
    indexes = {w: reference_index(ps, domain, an, source=w) for w, ps in refs.passages.items() if ps}
    for w, index in indexes.items():
        rows = np.flatnonzero((X["window"].to_numpy() == w) & (X["category"].to_numpy() != OUT_OF_SCOPE))
        if not len(rows):
            continue
        sub = X.iloc[rows]
        side = opinion_side(sub["match_text"].tolist(), [candidates[i] for i in rows], p_text[rows], an.encode, an.lemmatize, emb=emb[rows])
        ret = retrieve(index, side, RETRIEVE_K)
        pos = {p: j for j, p in enumerate(index.ids)}
        gold = {li: pos[refs.gold[oid]] for li, oid in enumerate(sub["opinion_id"]) if oid in refs.gold and refs.gold[oid] in pos}
        settling = {li: {pos[p] for p in refs.settling(oid) if p in pos} for li, oid in enumerate(sub["opinion_id"])}
        for li, j in gold.items():
            recall_n += 1
            recall_hits += int(bool(settling[li] & set(ret.top[li].tolist())))
        pairs = candidate_pairs(ret, gold)
        feats.append(pair_features(index, side, ret, text_classes, pairs))
        for li, j, rank in pairs:
            ys.append(int(j in settling[li]))
            ops.append(rows[li])
            retr.append(rank < RETRIEVE_K)
            aug.append(False)
            grp.append(groups[rows[li]])
    # counterfactual training sets: one per opinion, the window's documents plus the passage written for it
    cf = refs.counterfactual
    cf = cf[cf["split"] == "train"] if len(cf) else cf
    by_id = {oid: i for i, oid in enumerate(X["opinion_id"])}
    for n, r in enumerate(cf.itertuples(), start=1):
        i = by_id.get(r.opinion_id)
        if i is None or r.window not in refs.passages:
            continue
        extra = _extra_passage(r, n)
        index = reference_index(tuple(refs.passages[r.window]) + (extra,), domain, an, source=f"{r.window}+cf")
        side = opinion_side([X["match_text"].iloc[i]], [candidates[i]], p_text[[i]], an.encode, an.lemmatize, emb=emb[[i]])
        ret = retrieve(index, side, RETRIEVE_K)
        j = len(index) - 1
        pairs = candidate_pairs(ret, {0: j})
        feats.append(pair_features(index, side, ret, text_classes, pairs))
        for _, jj, rank in pairs:
            ys.append(int(jj == j))
            ops.append(i)
            retr.append(rank < RETRIEVE_K)
            aug.append(True)
            grp.append(groups[i])
    if not feats:
        z = np.zeros(0)
        return Pairs(np.zeros((0, 1)), z, z.astype(int), z.astype(bool), z.astype(bool), z), {"retrieval_recall_at_k": float("nan"), "k": RETRIEVE_K}
    pairs = Pairs(np.vstack(feats), np.array(ys), np.array(ops), np.array(retr), np.array(aug), np.array(grp))
    return pairs, {"retrieval_recall_at_k": recall_hits / max(recall_n, 1), "k": RETRIEVE_K, "gold_pairs": recall_n, "pairs": int(len(pairs.y)), "positives": int(pairs.y.sum())}


def oof_coverage(pairs: Pairs, n_rows: int, splits_groups: np.ndarray, seed: int) -> np.ndarray:
    """Opinion-level held-out coverage: the best retrieved pair of the original (non-counterfactual) sets,
    scored by a pair model that never saw the opinion's writer."""
    cov = np.zeros(n_rows)
    if len(pairs.y) == 0 or pairs.y.sum() == 0:
        return cov
    uniq = np.unique(splits_groups)
    for held in np.array_split(uniq, min(5, len(uniq))):
        te = np.isin(pairs.group, held)
        tr = ~te
        if pairs.y[tr].sum() == 0:
            continue
        m = CoverageModel(seed).fit(pairs.X[tr], pairs.y[tr])
        sel = te & pairs.retrieved & ~pairs.augmented
        p = m.predict_proba(pairs.X[sel])
        np.maximum.at(cov, pairs.opinion[sel], p)
    return cov


# --------------------------------------------------------------------------- the whole fit


def fit_opinion_model(
    train: pd.DataFrame, domain: Domain, cfg: ClassifyConfig, refs: CorpusReferences | None = None, targets: dict | None = None, features: tuple[str, ...] | None = None
) -> tuple[OpinionModel, dict]:
    """Fit the three models on the labelled train rows; return the model and its out-of-fold report."""
    targets = targets or DEFAULT_TARGETS
    features = tuple(features or cfg.features)
    refs = refs or CorpusReferences({}, {}, pd.DataFrame(), pd.DataFrame())
    X = prepare(normalise(train), domain).reset_index(drop=True)
    y_cat = X["category"].to_numpy()
    y_cand = X["candidate_id"].to_numpy()
    classes = [c for c in domain.category_codes if c in set(y_cat) or c == RESOLVED]
    text_classes = [c for c in classes if c != RESOLVED]
    cand_classes = sorted(set(y_cand))
    groups = writer_groups(X)
    splits = folds(groups)
    an = analysers(None, cfg.encoder, cfg.embed_max_chars)
    emb = an.encode(X["match_text"])

    text_tpl = build_model(features, cfg, for_candidate=False)
    cand_tpl = build_model(features, cfg, for_candidate=True)
    not_resolved = y_cat != RESOLVED
    y_text = np.where(not_resolved, y_cat, SHARE)  # what a 解決済 request is when no document settles it
    oof_text = out_of_fold(X, y_text, text_classes, splits, text_tpl)
    oof_cand = out_of_fold(X, y_cand, cand_classes, splits, cand_tpl)
    y_text_idx = np.array([text_classes.index(c) for c in y_text])
    y_cand_idx = np.array([cand_classes.index(c) for c in y_cand])
    t_text = fit_temperature(oof_text, y_text_idx)
    t_cand = fit_temperature(oof_cand, y_cand_idx)
    p_text, p_cand = softmax(oof_text, t_text), softmax(oof_cand, t_cand)
    oof_candidates = [cand_classes[k] for k in p_cand.argmax(1)]

    pairs, retrieval_report = build_pairs(X, refs, domain, an, p_text, text_classes, oof_candidates, groups, emb)
    raw_cov = oof_coverage(pairs, len(X), groups, cfg.seed)
    ab = platt(raw_cov, (y_cat == RESOLVED).astype(int))
    cov = apply_platt(raw_cov, ab) * (raw_cov > 0)
    P = compose(p_text, text_classes, cov, classes)
    y_idx = np.array([classes.index(c) for c in y_cat])
    cand_ok = p_cand.argmax(1) == y_cand_idx
    epsilons, cand_threshold, policy_report = choose_epsilons(P, y_idx, classes, cand_ok, p_cand.max(1), targets, SHARE_EPSILON)

    # off-domain threshold: how close an in-domain opinion is to the labelled opinions of *other* writers
    lwo = np.zeros(len(X))
    for tr, te in splits:
        lwo[te] = (emb[te] @ emb[tr].T).max(axis=1)
    min_relevance = float(np.quantile(lwo, RELEVANCE_QUANTILE))
    min_typical = float(np.quantile(lwo, TYPICAL_QUANTILE))
    policy = ConformalPolicy(tuple(classes), 1 - P[np.arange(len(X)), y_idx], y_idx, epsilons, cand_threshold, 0.5, min_relevance, min_typical, policy_report)

    text = clone(text_tpl).fit(X, y_text)
    candidate = clone(cand_tpl).fit(X, y_cand)
    coverage = CoverageModel(cfg.seed).fit(pairs.X if len(pairs.y) else np.zeros((1, len(PAIR_FEATURES))), pairs.y if len(pairs.y) else np.zeros(1))
    pred = P.argmax(1)
    is_res = y_cat == RESOLVED
    report = {
        "oof_category_macro_f1": float(f1_score(y_idx, pred, average="macro")),
        "oof_resolved_f1": float(f1_score(is_res, pred == classes.index(RESOLVED))),
        "oof_share_recall": float(((pred == classes.index(SHARE)) & (y_cat == SHARE)).sum() / max((y_cat == SHARE).sum(), 1)),
        "oof_candidate_accuracy": float(accuracy_score(y_cand_idx, p_cand.argmax(1))),
        "text_temperature": t_text,
        "candidate_temperature": t_cand,
        "coverage_platt": list(ab),
        "cv_groups": int(len(np.unique(groups))),
        "min_relevance": min_relevance,
        "min_typical": min_typical,
        **{f"grounding_{k}": v for k, v in retrieval_report.items()},
        **{f"oof_policy_{k}": v for k, v in policy_report.items()},
        "epsilon_share": epsilons[SHARE],
        "epsilon_other": epsilons["*"],
        "candidate_threshold": cand_threshold,
    }
    model = OpinionModel(
        text=text,
        candidate=candidate,
        coverage=coverage,
        text_temperature=t_text,
        candidate_temperature=t_cand,
        coverage_platt=ab,
        policy=policy,
        features=features,
        precedents=X[["opinion_id", "category", "candidate_id", "text"]].reset_index(drop=True),
        precedent_vectors=emb.astype(np.float32),
        categories=tuple(classes),
        meta={
            "data_version": data_version(train),
            "train_rows": int(len(train)),
            "reference_windows": {w: len(p) for w, p in refs.passages.items()},
            "targets": targets,
            "params": {k: v for k, v in asdict(cfg).items() if k != "extra"},
            "oof": report,
        },
    )
    return model, report
