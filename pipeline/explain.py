"""Explanation: why a decision was made, as structured columns, and its rendering in Japanese.

``structured`` columns (opinions.csv, queue) hold what decided: the phrases that pushed the text model
(``category_evidence``), the runner-up, the ids of the nearest labelled precedents, observation codes,
review codes, the passages cited. ``render`` turns them into the sentences a WT member reads —
at the edge, so that no notebook ever parses a sentence back.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.config import Domain
from pipeline.normalize import mask_officer_details, match_text

BLOCK_NAMES = {"char_text": "本文", "char_reason": "理由欄", "word": "語", "cues": "", "emb": ""}
SEP = "|"
OBSERVATION_LABELS = {"reason_empty": "理由欄は空欄", "reason_restates": "理由欄は意見の繰り返し", "self_reference": "団体自身への言及あり"}
REVIEW_LABELS = {
    "ingest": "取込時の注意（空欄・長すぎる意見など）",
    "ambiguous": "分類が一つに絞れない",
    "no_fit": "どの分類にも確信が持てない",
    "outside_set": "最も確からしい分類が予測集合に入らない",
    "share_possible": "共有すべきものの可能性が残る",
    "resolved_unsupported": "解決済とする根拠の記載が弱い",
    "candidate_low": "対象候補の確信度が低い",
    "off_domain": "対象候補との関連が薄い",
    "atypical": "似た意見が学習データに少ない（自動判定の前提外）",
}
FLOWCHART_RULES = {
    "OUT_OF_SCOPE": "①射程外（共通化の対象外の事項）",
    "RESOLVED": "②解決済（資料に記載済み、または検討の方向性が示されている）",
    "ORG_SPECIFIC": "③団体固有の事情",
    "ABSTRACT": "④抽象的なもの（具体的な要望・課題がない）",
    "UNCLEAR_BASIS": "⑤根拠不明確（理由・事実の裏付けがない）",
    "PRECONDITION": "⑥前提条件を整理すべきもの",
    "SHARE": "⑦共有すべきもの（具体的・根拠あり・未対応）",
}


def _readable(feature: str) -> str:
    block, _, name = feature.partition("__")
    if block == "cues":
        return name
    label = BLOCK_NAMES.get(block, "")
    return f"{label}「{name.strip()}」" if label else f"「{name.strip()}」"


class _Explainer:
    """Per-model constants: feature names, embedding mask and each class's coefficients relative to the
    mean of all classes (computed once, not per row)."""

    def __init__(self, model: Pipeline):
        clf: LogisticRegression = model.named_steps["clf"]
        self.names = model.named_steps["features"].get_feature_names_out()
        coef = clf.coef_ if clf.coef_.shape[0] > 1 else np.vstack([-clf.coef_, clf.coef_])
        self.emb_mask = np.array([n.startswith("emb__") for n in self.names])
        self.rel = coef - coef.mean(axis=0)


_EXPLAINERS: "weakref.WeakKeyDictionary[Pipeline, _Explainer]" = weakref.WeakKeyDictionary()


def _explainer(model: Pipeline) -> _Explainer:
    if model not in _EXPLAINERS:
        _EXPLAINERS[model] = _Explainer(model)
    return _EXPLAINERS[model]


def top_cues(model: Pipeline, x_row, class_idx: int, k: int = 3, min_chars: int = 3) -> list[str]:
    """The k n-grams/words that pushed this row hardest towards ``class_idx`` (vs the mean of all
    classes). Fragments shorter than ``min_chars`` (「町で」) say nothing to a reader and are skipped;
    the embedding block is not a phrase and is not shown."""
    ex = _explainer(model)
    if issparse(x_row):
        row = x_row.tocsr()
        idx_nz, vals = row.indices, row.data
    else:
        dense = np.asarray(x_row).ravel()
        idx_nz = np.flatnonzero(dense)
        vals = dense[idx_nz]
    contrib = vals * ex.rel[class_idx, idx_nz]
    keep = ~ex.emb_mask[idx_nz] & (contrib > 0)
    pos = np.flatnonzero(keep)
    seen: list[str] = []
    for i in pos[np.argsort(-contrib[pos])][: k * 8]:
        name = ex.names[idx_nz[i]]
        phrase = name.partition("__")[2].strip()
        if len(phrase) < min_chars and not name.startswith("word__"):
            continue
        if len(phrase) < 2:
            continue
        label = _readable(name)
        if label in seen or any(phrase in s for s in seen):
            continue
        seen.append(label)
        if len(seen) == k:
            break
    return seen


def observation_codes(text: str, reason: str) -> list[str]:
    """Facts a reviewer checks first (not model evidence): is there a reason, does it only restate the
    opinion, does the body speak of itself."""
    from pipeline.features import reason_restates
    from pipeline.normalize import SELF_REFERENCE

    codes = []
    if not reason.strip():
        codes.append("reason_empty")
    elif reason_restates(text, reason):
        codes.append("reason_restates")
    if SELF_REFERENCE.search(text):
        codes.append("self_reference")
    return codes


# --------------------------------------------------------------------------- rendering (the edge)


def _split(v) -> list[str]:
    return [x for x in str(v or "").split(SEP) if x]


def render_category_reason(row: pd.Series, domain: Domain, precedents: pd.DataFrame | None = None) -> str:
    cat = row["category"]
    parts = [f"{domain.category_label(cat)}（確信度 {float(row['category_confidence']):.2f}）。判断フローチャート {FLOWCHART_RULES.get(cat, '')} に当たると判断。"]
    if cat == "RESOLVED" and row.get("resolved_by"):
        parts.append(f"根拠となる記載: {row['resolved_by']}「{row.get('resolved_quote', '')}」。")
    ev = _split(row.get("category_evidence"))
    if ev:
        parts.append("決め手となった表現: " + "、".join(ev) + "。")
    if row.get("runner_up"):
        parts.append(f"次点: {domain.category_label(row['runner_up'])}（{float(row.get('runner_up_confidence') or 0):.2f}）。")
    pset = _split(row.get("prediction_set"))
    if len(pset) > 1:
        parts.append("候補となる分類: " + "・".join(domain.category_label(c) for c in pset) + "。")
    obs = [OBSERVATION_LABELS[c] for c in _split(row.get("observations")) if c in OBSERVATION_LABELS]
    if obs:
        parts.append("確認事項: " + "、".join(obs) + "。")
    if precedents is not None and len(precedents) and row.get("precedent_ids"):
        by_id = precedents.set_index("opinion_id")
        near = []
        for pid in _split(row["precedent_ids"])[:2]:
            if pid in by_id.index:
                p = by_id.loc[pid]
                text = mask_officer_details(match_text(str(p.get("text", "") or "")))
                near.append(f"「{text[:40]}{'…' if len(text) > 40 else ''}」（{domain.category_label(p['category'])}）")
        if near:
            parts.append("似た過去の意見: " + "、".join(near) + "。")
    return "".join(parts)


def render_candidate_reason(row: pd.Series, domain: Domain) -> str:
    cand = row["candidate_id"]
    stated = row.get("stated_id", "")
    if not stated or stated == "NONE":
        st = "対象欄は記載なし"
    elif stated == cand:
        st = "対象欄の記載と一致"
    else:
        st = f"対象欄の記載（{stated} {domain.candidate_name(stated)}）とは異なる：本文から判断"
    text = f"{cand} {domain.candidate_name(cand)}（確信度 {float(row['candidate_confidence']):.2f}、{st}）。"
    ev = _split(row.get("candidate_evidence"))
    if ev:
        text += "決め手となった表現: " + "、".join(ev) + "。"
    return text


def render_review_reasons(row: pd.Series) -> str:
    return "；".join(REVIEW_LABELS.get(c, c) for c in _split(row.get("review_codes")))


def render(frame: pd.DataFrame, domain: Domain, precedents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add the Japanese sentences (category_reason, candidate_reason, review_reasons) from the
    structured columns."""
    out = frame.copy()
    if len(out) == 0:
        for c in ("category_reason", "candidate_reason", "review_reasons"):
            out[c] = ""
        return out
    rendered = [(render_category_reason(r, domain, precedents), render_candidate_reason(r, domain), render_review_reasons(r)) for _, r in out.iterrows()]
    out["category_reason"], out["candidate_reason"], out["review_reasons"] = (list(c) for c in zip(*rendered))
    return out
