"""Classify: a candidate (C00–C13) and a category (判断フローチャート) for every opinion, each with a
calibrated confidence, a reason in Japanese, and a review decision.

Models are linear (logistic regression) over a union of feature blocks, so every decision can be
explained by the features that pushed it: character n-grams of the opinion and of the reason column,
fugashi lemmas, structural cues (features.py) and sentence embeddings (embed.py). Probabilities are
calibrated by temperature scaling on out-of-fold predictions; the review policy (which opinions a
person must read) is chosen on the same out-of-fold predictions, never on the dev split.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.sparse import issparse
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from pipeline.config import ClassifyConfig, Domain
from pipeline.embed import SentenceEncoder
from pipeline.features import CUE_NAMES, CueExtractor, with_stated
from pipeline.tokenize import FugashiTokenizer

SHARE = "SHARE"
# ingest statuses that send an opinion to a person whatever the model says
INGEST_FLAGS = {"empty_text": "意見が空欄", "too_long": "長すぎる意見"}
BLOCK_NAMES = {"char_text": "本文", "char_reason": "理由欄", "word": "語", "cues": "", "emb": "", "stated": "対象欄"}


# --------------------------------------------------------------------------- model definition


def _blocks(features: Sequence[str], cfg: ClassifyConfig, for_candidate: bool) -> list[tuple]:
    lo, hi = cfg.char_ngram
    blocks: list[tuple] = []
    if "char" in features:
        blocks.append(("char_text", TfidfVectorizer(analyzer="char", ngram_range=(lo, hi), min_df=2, sublinear_tf=True, max_features=150_000), "match_text"))
        if not for_candidate:
            blocks.append(("char_reason", TfidfVectorizer(analyzer="char", ngram_range=(lo, hi), min_df=2, sublinear_tf=True, max_features=60_000), "match_reason"))
    if "word" in features:
        blocks.append(("word", TfidfVectorizer(analyzer=FugashiTokenizer(), min_df=2, sublinear_tf=True), "match_all"))
    if "cues" in features and not for_candidate:
        blocks.append(("cues", Pipeline([("cue", CueExtractor()), ("scale", StandardScaler())]), ["match_text", "match_reason"]))
    if "emb" in features:
        blocks.append(("emb", SentenceEncoder(model=cfg.encoder, max_chars=cfg.embed_max_chars), "match_text"))
    if for_candidate:
        blocks.append(("stated", OneHotEncoder(handle_unknown="ignore"), ["stated_id"]))
    return blocks


def build_model(features: Sequence[str], cfg: ClassifyConfig, for_candidate: bool) -> Pipeline:
    return Pipeline(
        [
            ("features", ColumnTransformer(_blocks(features, cfg, for_candidate), sparse_threshold=1.0, transformer_weights={"cues": cfg.cue_weight})),
            ("clf", LogisticRegression(C=cfg.candidate_C if for_candidate else cfg.C, max_iter=5000, class_weight="balanced", random_state=cfg.seed)),
        ]
    )


# --------------------------------------------------------------------------- calibration


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y_idx: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of held-out predictions."""

    def nll(t: float) -> float:
        p = softmax(logits, t)
        return float(-np.log(np.clip(p[np.arange(len(y_idx)), y_idx], 1e-12, None)).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


# --------------------------------------------------------------------------- review policy


@dataclass(frozen=True)
class ReviewPolicy:
    """Send an opinion to a person when any of these holds (thresholds from out-of-fold predictions)."""

    share_threshold: float = 0.2  # predicted excluded, but P(SHARE) at least this
    confidence_threshold: float = 0.5  # category confidence below this
    candidate_threshold: float = 0.5  # candidate confidence below this


def choose_policy(p_cat: np.ndarray, y_cat: np.ndarray, classes: Sequence[str], p_cand_max: np.ndarray, cand_ok: np.ndarray, cfg: ClassifyConfig, targets: dict) -> tuple[ReviewPolicy, dict]:
    """Smallest review rate meeting the targets on held-out predictions:
    - at most ``share_loss`` of SHARE opinions auto-excluded (the costly error);
    - auto-decided category accuracy at least ``auto_accuracy``;
    - auto-decided candidate accuracy at least ``candidate_accuracy``."""
    classes = list(classes)
    s = classes.index(SHARE)
    pred = p_cat.argmax(1)
    conf = p_cat.max(1)
    p_share = p_cat[:, s]
    is_share = y_cat == s
    correct = pred == y_cat
    grid = np.round(np.arange(0.02, 1.0, 0.02), 2)
    best = None
    for ts in grid:
        for tc in grid:
            for tk in grid:
                review = ((pred != s) & (p_share >= ts)) | (conf < tc) | (p_cand_max < tk)
                auto = ~review
                lost = (is_share & (pred != s) & auto).sum() / max(is_share.sum(), 1)
                acc = correct[auto].mean() if auto.any() else 1.0
                cacc = cand_ok[auto].mean() if auto.any() else 1.0
                if lost <= targets["share_loss"] and acc >= targets["auto_accuracy"] and cacc >= targets["candidate_accuracy"]:
                    key = (review.mean(), -ts, -tc, -tk)
                    if best is None or key < best[0]:
                        best = (key, ReviewPolicy(float(ts), float(tc), float(tk)), {"review_rate": float(review.mean()), "share_lost": float(lost), "auto_accuracy": float(acc), "auto_candidate_accuracy": float(cacc)})
    if best is None:  # targets unreachable: review everything the model is not certain of
        pol = ReviewPolicy(0.0, 1.0, 1.0)
        return pol, {"review_rate": 1.0, "share_lost": 0.0, "auto_accuracy": float("nan"), "auto_candidate_accuracy": float("nan"), "unreachable": True}
    return best[1], best[2]


# --------------------------------------------------------------------------- the trained model


@dataclass
class OpinionModel:
    category: Pipeline
    candidate: Pipeline
    category_temperature: float
    candidate_temperature: float
    policy: ReviewPolicy
    features: tuple[str, ...]
    precedents: pd.DataFrame  # opinion_id, category, candidate_id of the training rows
    precedent_vectors: np.ndarray  # L2-normalised vectors of the training rows (embeddings or TF-IDF)
    meta: dict = field(default_factory=dict)

    @property
    def category_classes(self) -> list[str]:
        return list(self.category.classes_)

    @property
    def candidate_classes(self) -> list[str]:
        return list(self.candidate.classes_)

    def category_proba(self, frame: pd.DataFrame, features=None) -> np.ndarray:
        """Calibrated probabilities; pass ``features`` (the model's transformed input) to skip re-transforming."""
        return _proba(self.category, frame, features, self.category_temperature)

    def candidate_proba(self, frame: pd.DataFrame, features=None) -> np.ndarray:
        return _proba(self.candidate, frame, features, self.candidate_temperature)

    def precedent_vectors_for(self, frame: pd.DataFrame) -> np.ndarray:
        return precedent_vectors(self.category, frame)


def _proba(model: Pipeline, frame: pd.DataFrame, features, temperature: float) -> np.ndarray:
    if features is None:
        features = model.named_steps["features"].transform(frame)
    return softmax(model.named_steps["clf"].decision_function(features), temperature)


def precedent_vectors(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Vectors to find the nearest labelled precedents: the embedding block if the model has one,
    else the character n-grams of the opinion (both L2-normalised)."""
    ct: ColumnTransformer = model.named_steps["features"]
    name = "emb" if "emb" in ct.named_transformers_ else "char_text"
    col = dict((n, c) for n, _, c in ct.transformers)[name]
    v = ct.named_transformers_[name].transform(frame[col])
    v = v.toarray() if issparse(v) else np.asarray(v)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm == 0, 1, norm)).astype(np.float32)


def prepare(frame: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    """Model inputs from a normalised frame (needs match_text, match_reason, stated_candidate)."""
    return with_stated(frame, domain)


# --------------------------------------------------------------------------- explanations


def _readable(feature: str) -> str:
    block, _, name = feature.partition("__")
    if block == "cues":
        return name
    label = BLOCK_NAMES.get(block, "")
    if block == "stated":
        return f"対象欄の記載（{name.replace('stated_id_', '')}）"
    return f"{label}「{name.strip()}」" if label else f"「{name.strip()}」"


@dataclass(frozen=True)
class _Explainer:
    """Per-model constants for explanations: feature names, embedding mask and each class's
    coefficients relative to the mean of all classes (computed once, not per row)."""

    names: np.ndarray
    emb_mask: np.ndarray
    rel: np.ndarray


_EXPLAINERS: "weakref.WeakKeyDictionary[Pipeline, _Explainer]" = weakref.WeakKeyDictionary()


def _explainer(model: Pipeline) -> _Explainer:
    if model not in _EXPLAINERS:
        clf: LogisticRegression = model.named_steps["clf"]
        names = model.named_steps["features"].get_feature_names_out()
        coef = clf.coef_ if clf.coef_.shape[0] > 1 else np.vstack([-clf.coef_, clf.coef_])
        _EXPLAINERS[model] = _Explainer(names, np.array([n.startswith("emb__") for n in names]), coef - coef.mean(axis=0))
    return _EXPLAINERS[model]


def top_cues(model: Pipeline, x_row, class_idx: int, k: int = 3) -> list[str]:
    """The k features that pushed this row hardest towards ``class_idx`` (vs the mean of all classes);
    the embedding block is summed and shown as one cue."""
    ex = _explainer(model)
    if issparse(x_row):
        row = x_row.tocsr()
        idx_nz, vals = row.indices, row.data
    else:
        dense = np.asarray(x_row).ravel()
        idx_nz = np.flatnonzero(dense)
        vals = dense[idx_nz]
    contrib = vals * ex.rel[class_idx, idx_nz]
    out: list[tuple[float, str]] = []
    emb = ex.emb_mask[idx_nz]
    if emb.any():
        out.append((float(contrib[emb].sum()), "文全体の意味（文埋め込み）"))
    pos = np.flatnonzero(~emb & (contrib > 0))
    for i in pos[np.argsort(-contrib[pos])][: k * 4]:
        out.append((float(contrib[i]), _readable(ex.names[idx_nz[i]])))
    seen: list[str] = []
    for score, label in sorted(out, key=lambda t: -t[0]):
        if score <= 0 or label in seen:
            continue
        # skip a character n-gram contained in one already shown (「本町」 after 「本町で」)
        if any(label.strip("」").split("「")[-1] in s for s in seen if "「" in label):
            continue
        seen.append(label)
        if len(seen) == k:
            break
    return seen


def observations(text: str, reason: str) -> list[str]:
    """Facts a reviewer checks first, stated as observations (not model evidence): is there a reason,
    does it only restate the opinion, does the body speak of itself."""
    from pipeline.features import reason_restates
    from pipeline.normalize import SELF_REFERENCE

    facts = []
    if not reason.strip():
        facts.append("理由欄は空欄")
    elif reason_restates(text, reason):
        facts.append("理由欄は意見の繰り返し")
    refs = sorted(set(SELF_REFERENCE.findall(text)))
    if refs:
        facts.append("団体自身への言及（" + "・".join(refs[:3]) + "）")
    return facts


def predict(model: OpinionModel, frame: pd.DataFrame, domain: Domain, explain: bool = True, batch: int = 1000, progress: bool = False) -> pd.DataFrame:
    """Candidate, category, confidences, reasons and the review decision for every row of ``frame``
    (a normalised frame; rows keep their order and number)."""
    out = frame.copy()
    if len(frame) == 0:
        for c in ("candidate_id", "category", "category_label", "category_reason", "candidate_reason", "review_reasons"):
            out[c] = ""
        out["candidate_confidence"] = out["category_confidence"] = 0.0
        out["needs_review"] = False
        return out
    X = prepare(frame, domain)
    starts = range(0, len(X), batch)
    if progress and len(X) > batch:
        from tqdm import tqdm

        starts = tqdm(starts, desc="分類", unit="batch", total=(len(X) + batch - 1) // batch)
    parts = [_predict_part(model, X.iloc[i : i + batch], domain, explain) for i in starts]
    res = pd.concat(parts, ignore_index=True)
    for c in res.columns:
        out[c] = res[c].to_numpy()
    return out


def _predict_part(model: OpinionModel, X: pd.DataFrame, domain: Domain, explain: bool) -> pd.DataFrame:
    cat_classes, cand_classes = model.category_classes, model.candidate_classes
    Xc = model.category.named_steps["features"].transform(X)
    Xk = model.candidate.named_steps["features"].transform(X)
    p_cat = model.category_proba(X, Xc)
    p_cand = model.candidate_proba(X, Xk)
    cat_idx, cand_idx = p_cat.argmax(1), p_cand.argmax(1)
    share = cat_classes.index(SHARE)
    pol = model.policy
    if explain and len(model.precedents):
        sims = model.precedent_vectors_for(X) @ model.precedent_vectors.T
    rows = []
    status = X["ingest_status"].fillna("").tolist() if "ingest_status" in X.columns else [""] * len(X)
    stated = X["stated_id"].tolist()
    for i in range(len(X)):
        ci, ki = int(cat_idx[i]), int(cand_idx[i])
        cat, cand = cat_classes[ci], cand_classes[ki]
        conf, cconf = float(p_cat[i, ci]), float(p_cand[i, ki])
        reasons = []
        flagged = [INGEST_FLAGS[f] for f in status[i].split("+") if f in INGEST_FLAGS]
        if flagged:
            reasons.append("取込時の注意（" + "・".join(flagged) + "）")
        if cat != SHARE and p_cat[i, share] >= pol.share_threshold:
            reasons.append(f"共有すべきものの可能性 {p_cat[i, share]:.2f}")
        if conf < pol.confidence_threshold:
            reasons.append(f"分類の確信度が低い（{conf:.2f}）")
        if cconf < pol.candidate_threshold:
            reasons.append(f"対象候補の確信度が低い（{cconf:.2f}）")
        row = {
            "candidate_id": cand,
            "candidate_confidence": round(cconf, 4),
            "category": cat,
            "category_label": domain.category_label(cat),
            "category_confidence": round(conf, 4),
            "needs_review": bool(reasons),
            "review_reasons": "；".join(reasons),
            "category_reason": "",
            "candidate_reason": "",
        }
        if explain:
            order = np.argsort(-p_cat[i])
            runner = cat_classes[int(order[1])]
            cues = top_cues(model.category, Xc[i], ci)
            text = f"{domain.category_label(cat)}（確信度 {conf:.2f}）。決め手: {'、'.join(cues) or '特になし'}。次点: {domain.category_label(runner)} {p_cat[i, order[1]]:.2f}。"
            if len(model.precedents):
                near = np.argsort(-sims[i])[:2]
                text += "近い先例: " + "、".join(f"{model.precedents.iloc[j]['opinion_id']}［{domain.category_label(model.precedents.iloc[j]['category'])}］" for j in near) + "。"
            facts = observations(str(X["match_text"].iloc[i]), str(X["match_reason"].iloc[i]))
            if facts:
                text += "観察: " + "、".join(facts) + "。"
            row["category_reason"] = text
            kc = top_cues(model.candidate, Xk[i], ki)
            agree = stated[i] == cand
            st = "対象欄なし" if stated[i] == "NONE" else ("対象欄と一致" if agree else f"対象欄（{stated[i]}）と不一致")
            row["candidate_reason"] = f"{cand} {domain.candidate_name(cand)}（確信度 {cconf:.2f}、{st}）。決め手: {'、'.join(kc) or '特になし'}。"
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- persistence


def trusted_types() -> list[str]:
    return ["pipeline.features.CueExtractor", "pipeline.tokenize.FugashiTokenizer", "pipeline.embed.SentenceEncoder"]


def save_model(model: OpinionModel, directory: Path) -> None:
    """skops files (no code runs on load beyond the trusted types listed in meta) plus JSON and NPZ."""
    import skops.io as sio

    directory.mkdir(parents=True, exist_ok=True)
    sio.dump(model.category, directory / "category.skops")
    sio.dump(model.candidate, directory / "candidate.skops")
    np.savez_compressed(directory / "precedents.npz", vectors=model.precedent_vectors)
    model.precedents.to_csv(directory / "precedents.csv", index=False, encoding="utf-8")
    meta = dict(model.meta)
    meta.update(
        {
            "category_temperature": model.category_temperature,
            "candidate_temperature": model.candidate_temperature,
            "policy": asdict(model.policy),
            "features": list(model.features),
            "trusted_types": trusted_types(),
        }
    )
    (directory / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")


class ModelFileError(RuntimeError):
    pass


def load_model(directory: Path) -> OpinionModel:
    import skops.io as sio

    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise ModelFileError(f"{directory}: 学習済みモデルがありません（meta.json がない）。`opinions train` で学習してください。")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    allowed = set(trusted_types())
    models = {}
    for name in ("category", "candidate"):
        path = directory / f"{name}.skops"
        untrusted = set(sio.get_untrusted_types(file=path))
        unexpected = untrusted - allowed - set(_sklearn_safe(untrusted))
        if unexpected:
            raise ModelFileError(f"{path}: モデルファイルに想定外の型が含まれています: {sorted(unexpected)}")
        models[name] = sio.load(path, trusted=sorted(untrusted))
    vectors = np.load(directory / "precedents.npz")["vectors"]
    precedents = pd.read_csv(directory / "precedents.csv", dtype=str, keep_default_na=False)
    return OpinionModel(
        category=models["category"],
        candidate=models["candidate"],
        category_temperature=float(meta["category_temperature"]),
        candidate_temperature=float(meta["candidate_temperature"]),
        policy=ReviewPolicy(**meta["policy"]),
        features=tuple(meta["features"]),
        precedents=precedents,
        precedent_vectors=vectors,
        meta=meta,
    )


def _sklearn_safe(types: set[str]) -> list[str]:
    """Types skops does not trust by default but that are plain data/library types we rely on."""
    ok_prefixes = ("numpy.", "scipy.sparse", "builtins.", "collections.")
    return [t for t in types if t.startswith(ok_prefixes)]
