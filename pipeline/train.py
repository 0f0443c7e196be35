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
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold

from pipeline.classify import Analysers, analysers, reference_index
from pipeline.config import ClassifyConfig, Domain
from pipeline.grounding import PAIR_FEATURES, CoverageModel, candidate_pairs, opinion_side, pair_features, retrieve
from pipeline.labeled import CorpusReferences
from pipeline.mapping import FIT_COLUMNS, MAPPING_PRECEDENT, MappingModel, build_profiles, hide_masks, list_fit, pair_features as mapping_features, sentence_embeddings, softmax_rows
from pipeline.mapping import fit_temperature as fit_mapping_temperature
from pipeline.model import RESOLVED, OpinionModel, build_candidate_model, build_model, fit_temperature, prepare, softmax
from pipeline.normalize import normalise
from pipeline.policy import OUT_OF_SCOPE, SHARE, ConformalPolicy, apply_platt, choose_epsilons, compose, platt
from pipeline.references import Passage

DEFAULT_TARGETS = {"share_loss": 0.02, "auto_accuracy": 0.95, "candidate_accuracy": 0.97}
RETRIEVE_K = 5
SHARE_EPSILON = 0.02  # the stated guarantee (ADR 0005)
RELEVANCE_QUANTILE = 0.002  # an in-domain opinion is this rarely below the off-domain threshold (out of fold)
TYPICAL_QUANTILE = 0.02  # below this quantile an opinion is decided by a person: the calibration hardly covers it
# an opinion whose system is on the list has its best specific candidate fit this rarely below the floor
# (out of fold, every system taken as new): below it, the list probably lacks the opinion's system
UNLISTED_QUANTILE = 0.05


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


def build_pairs(X: pd.DataFrame, refs: CorpusReferences, domain: Domain, an: Analysers, p_text: np.ndarray, text_classes: list[str], candidates: list[str], groups: np.ndarray, emb: np.ndarray, indexes: dict) -> tuple[Pairs, dict]:
    """Labelled (opinion, passage) pairs: the k retrieved passages of every in-scope opinion of a window
    with documents (label 1 for the passage settles.csv names), the gold passage added when retrieval
    missed it, and the counterfactual training sets (window documents + one passage that settles a
    共有すべきもの opinion)."""
    feats, ys, ops, retr, aug, grp = [], [], [], [], [], []
    recall_hits, recall_n = 0, 0
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
        index = reference_index(tuple(refs.passages[r.window]) + (extra,), refs.window_domain(r.window, domain), an, source=f"{r.window}+cf")
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


# --------------------------------------------------------------------------- the mapping model (candidates)


@dataclass
class MappingFit:
    model: MappingModel
    temperature: float
    oof_ids: list[str]  # per row: the candidate chosen out of fold (precedents as at run time)
    oof_conf: np.ndarray
    report: dict
    names: list[str]  # per row: its candidate's name in its window's list
    fit: np.ndarray  # per row: mapping.list_fit on its window's full list (the text model's "fit" block)
    fit_floor: float = float("-inf")  # policy.min_candidate_fit (``unlisted_floor``)


SUBLIST_SIZES = (2, 3, 5, 8)  # lists of these many candidates (the cross-cutting one included) are drawn too
SUBLIST_DRAWS = 2


def _sublists(domain: Domain, rng: np.random.Generator) -> list[Domain]:
    """Random shorter lists of the window's candidates (the cross-cutting entry kept): a new year's list
    may hold three systems or twenty, and scores standardised over a list behave differently."""
    specific = [c for c in domain.candidates if not c.general]
    general = [c for c in domain.candidates if c.general]
    out = []
    for k in SUBLIST_SIZES:
        if k - 1 < len(specific):
            for _ in range(SUBLIST_DRAWS):
                pick = sorted(rng.choice(len(specific), size=k - 1, replace=False))
                out.append(domain.with_candidates([specific[i] for i in pick] + general))
    return out


def fit_mapping(X: pd.DataFrame, domain: Domain, refs: CorpusReferences, an: Analysers, emb: np.ndarray, splits, indexes: dict, seed: int,
                learned: np.ndarray | None = None, learned_names: Sequence[str] | None = None) -> MappingFit:  # fmt: skip
    """The pair model over (opinion, candidate of its window's list), with out-of-fold scores by writer.

    Precedent features of a row come from the rows of other writers only. Every row enters training with
    its window's list and with shorter random lists holding its candidate, each three times
    (``hide_masks``), so that the model scores known, new and mixed lists of any length alike."""
    windows = X["window"].to_numpy()
    gold = X["candidate_id"].to_numpy()
    texts = X["match_text"].tolist()
    sent = sentence_embeddings(texts, an.encode)
    wdom = {w: refs.window_domain(w, domain) for w in np.unique(windows)}
    names = [wdom[w].candidate_name(c) for w, c in zip(windows, gold)]
    rng = np.random.default_rng(seed)
    full: dict[int, tuple[np.ndarray, list[str]]] = {}
    fit = np.zeros((len(X), len(FIT_COLUMNS)))
    extra: list[tuple[int, np.ndarray, list[str]]] = []
    for tr, te in splits:
        prec_names = [names[i] for i in tr]
        for w in np.unique(windows[te]):
            rows = te[windows[te] == w]
            for n_list, d in enumerate([wdom[w], *_sublists(wdom[w], rng)]):
                prof = build_profiles(d, an.encode, an.lemmatize, indexes.get(w), prec_names)
                keep = rows if n_list == 0 else rows[np.isin(gold[rows], prof.ids)]
                if not len(keep):
                    continue
                feats = mapping_features(prof, [texts[i] for i in keep], emb[keep], [sent[i] for i in keep], precedent_vectors=emb[tr],
                                         learned=learned[keep] if learned is not None else None, learned_names=learned_names)  # fmt: skip
                if n_list == 0:
                    fit[keep] = list_fit(feats, prof)
                for k, i in enumerate(keep):
                    if n_list == 0:
                        full[int(i)] = (feats[k], prof.ids)
                    else:
                        extra.append((int(i), feats[k], prof.ids))
    pair_X, pair_y, pair_row = [], [], []
    for i, F, ids in [(i, *full[i]) for i in range(len(X))] + extra:
        y = (np.array(ids) == gold[i]).astype(int)
        for hide in hide_masks(1, len(ids), rng):
            f = F.copy()
            f[np.ix_(np.flatnonzero(hide[0]), MAPPING_PRECEDENT)] = np.nan
            pair_X.append(f)
            pair_y.append(y)
            pair_row.append(np.full(len(ids), i))
    PX, Py, Prow = np.vstack(pair_X), np.concatenate(pair_y), np.concatenate(pair_row)
    oof = [np.zeros(0)] * len(X)
    oof_new = [np.zeros(0)] * len(X)
    for tr, te in splits:
        m_ = MappingModel(seed).fit(PX[np.isin(Prow, tr)], Py[np.isin(Prow, tr)])
        by_len: dict[int, list[int]] = {}
        for i in te:
            by_len.setdefault(len(full[i][1]), []).append(int(i))
        for rows in by_len.values():  # one call per list length (the windows' lists differ)
            F = np.stack([full[i][0] for i in rows])
            hidden = F.copy()
            hidden[:, :, MAPPING_PRECEDENT] = np.nan
            for i, a, b in zip(rows, m_.scores(F), m_.scores(hidden)):
                oof[i], oof_new[i] = a, b
    ids_of = [full[i][1] for i in range(len(X))]
    t = fit_mapping_temperature(oof, [ids.index(g) for ids, g in zip(ids_of, gold)])
    probs = [softmax_rows(s[None], t)[0] for s in oof]
    oof_ids = [ids[int(p.argmax())] for ids, p in zip(ids_of, probs)]
    acc = float(np.mean([a == g for a, g in zip(oof_ids, gold)]))
    acc_new = float(np.mean([ids[int(s.argmax())] == g for ids, s, g in zip(ids_of, oof_new, gold)]))
    general = {w: {c.id for c in d.candidates if c.general} for w, d in wdom.items()}
    floor, caught = unlisted_floor(oof_new, ids_of, gold, [general[w] for w in windows])
    model = MappingModel(seed).fit(PX, Py)
    report = {"oof_candidate_accuracy": acc, "oof_candidate_accuracy_as_new_systems": acc_new, "mapping_pairs": int(len(Py)), "unlisted_floor": floor, "oof_unlisted_caught": caught}
    return MappingFit(model, t, oof_ids, np.array([p.max() for p in probs]), report, names, fit, floor)


def unlisted_floor(scores: Sequence[np.ndarray], ids_of: Sequence[Sequence[str]], gold: Sequence[str], general: Sequence[set]) -> tuple[float, float]:
    """The pair logit below which the best specific candidate of a list probably is not the opinion's system
    (``UNLISTED_QUANTILE`` of the best specific logit of opinions whose system is on their list), and the
    share of those opinions caught below it once their own system is taken off the list (a list that lacks
    it). Out-of-fold logits; opinions about 全般 are left out (they concern no one system)."""
    on, off = [], []
    for s, ids, g, gen in zip(scores, ids_of, gold, general):
        spec = np.array([c not in gen for c in ids])
        if g in gen or not spec.any():
            continue
        on.append(s[spec].max())
        others = spec & (np.array(ids) != g)
        if others.any():
            off.append(s[others].max())
    if not on:
        return float("-inf"), 0.0
    floor = float(np.quantile(on, UNLISTED_QUANTILE))
    return floor, float(np.mean(np.array(off) < floor)) if off else 0.0


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
    groups = writer_groups(X)
    splits = folds(groups)
    an = analysers(None, cfg.encoder, cfg.embed_max_chars)
    emb = an.encode(X["match_text"])

    indexes = {w: reference_index(ps, refs.window_domain(w, domain), an, source=w) for w, ps in refs.passages.items() if ps and w in set(X["window"])}
    # what is still learned per candidate: a classifier over the labelled systems' names (out of fold for the mapping's training)
    y_name = np.array([refs.window_domain(w, domain).candidate_name(c) for w, c in zip(X["window"], y_cand)])
    learned_names = sorted(set(y_name))
    learned_tpl = build_candidate_model(cfg)
    oof_learned = out_of_fold(X, y_name, learned_names, splits, learned_tpl)
    t_learned = fit_temperature(oof_learned, np.array([learned_names.index(x) for x in y_name]))
    mfit = fit_mapping(X, domain, refs, an, emb, splits, indexes, cfg.seed, softmax(oof_learned, t_learned), learned_names)
    oof_candidates = mfit.oof_ids
    X[list(FIT_COLUMNS)] = mfit.fit

    text_tpl = build_model(features, cfg)
    not_resolved = y_cat != RESOLVED
    y_text = np.where(not_resolved, y_cat, SHARE)  # what a 解決済 request is when no document settles it
    oof_text = out_of_fold(X, y_text, text_classes, splits, text_tpl)
    y_text_idx = np.array([text_classes.index(c) for c in y_text])
    t_text = fit_temperature(oof_text, y_text_idx)
    p_text = softmax(oof_text, t_text)

    pairs, retrieval_report = build_pairs(X, refs, domain, an, p_text, text_classes, oof_candidates, groups, emb, indexes)
    raw_cov = oof_coverage(pairs, len(X), groups, cfg.seed)
    ab = platt(raw_cov, (y_cat == RESOLVED).astype(int))
    cov = apply_platt(raw_cov, ab) * (raw_cov > 0)
    P = compose(p_text, text_classes, cov, classes)
    y_idx = np.array([classes.index(c) for c in y_cat])
    cand_ok = np.array(oof_candidates) == y_cand
    epsilons, cand_threshold, policy_report = choose_epsilons(P, y_idx, classes, cand_ok, mfit.oof_conf, targets, SHARE_EPSILON)

    # off-domain threshold: how close an in-domain opinion is to the labelled opinions of *other* writers
    # or to its own window's documents, whichever is closer — the relevance classify computes at run time
    # (a window about new systems is far from every other writer's opinions, but close to its documents)
    lwo = np.zeros(len(X))
    for tr, te in splits:
        lwo[te] = (emb[te] @ emb[tr].T).max(axis=1)
    for w, index in indexes.items():
        rows = np.flatnonzero(X["window"].to_numpy() == w)
        if len(rows) and len(index):
            lwo[rows] = np.maximum(lwo[rows], (emb[rows] @ index.emb.T).max(axis=1))
    min_relevance = float(np.quantile(lwo, RELEVANCE_QUANTILE))
    min_typical = float(np.quantile(lwo, TYPICAL_QUANTILE))
    policy = ConformalPolicy(tuple(classes), 1 - P[np.arange(len(X)), y_idx], y_idx, epsilons, cand_threshold, 0.5, min_relevance, min_typical, policy_report, mfit.fit_floor)

    text = clone(text_tpl).fit(X, y_text)
    learned = clone(learned_tpl).fit(X, y_name)
    coverage = CoverageModel(cfg.seed).fit(pairs.X if len(pairs.y) else np.zeros((1, len(PAIR_FEATURES))), pairs.y if len(pairs.y) else np.zeros(1))
    pred = P.argmax(1)
    is_res = y_cat == RESOLVED
    report = {
        "oof_category_macro_f1": float(f1_score(y_idx, pred, average="macro")),
        "oof_resolved_f1": float(f1_score(is_res, pred == classes.index(RESOLVED))),
        "oof_share_recall": float(((pred == classes.index(SHARE)) & (y_cat == SHARE)).sum() / max((y_cat == SHARE).sum(), 1)),
        **mfit.report,
        "text_temperature": t_text,
        "mapping_temperature": mfit.temperature,
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
        learned=learned,
        learned_temperature=t_learned,
        mapping=mfit.model,
        coverage=coverage,
        text_temperature=t_text,
        mapping_temperature=mfit.temperature,
        coverage_platt=ab,
        policy=policy,
        features=features,
        precedents=X[["opinion_id", "category", "candidate_id", "text"]].assign(candidate_name=mfit.names).reset_index(drop=True),
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
