"""Model: the learned parts (features, fit, predict scores) and their files.

- the **text model**: logistic regression over character n-grams (opinion and reason), fugashi lemmas
  and sentence embeddings, over six categories — every category but 解決済, which is not a property of
  the text (policy.compose adds it from the grounding);
- the **mapping model** (mapping.MappingModel): which candidate of the *window's own list* an opinion
  concerns, from features of (opinion, candidate) pairs that do not depend on which system the candidate
  is, so a new year's list needs no labelled rows. The submitter's 対象 column is not a feature: it is
  wrong in about one real submission in ten, and a model that reads it follows it; it is shown to the
  reviewer as a hint (explain.py);
- the **coverage model** (grounding.CoverageModel): does a passage settle an opinion.

Files are skops (no code runs on load beyond the explicit list of types below), JSON and NPZ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.config import ClassifyConfig, Domain
from pipeline.embed import SentenceEncoder
from pipeline.features import CueExtractor, fast_char_vectorizers, with_stated
from pipeline.grounding import CoverageModel
from pipeline.mapping import FIT_COLUMNS, MappingModel
from pipeline.policy import RESOLVED, ConformalPolicy  # noqa: F401  (RESOLVED: the category the text model never learns)
from pipeline.tokenize import FugashiTokenizer


def _blocks(features: Sequence[str], cfg: ClassifyConfig) -> list[tuple]:
    lo, hi = cfg.char_ngram
    blocks: list[tuple] = []
    if "char" in features:
        blocks.append(("char_text", TfidfVectorizer(analyzer="char", ngram_range=(lo, hi), min_df=2, sublinear_tf=True, max_features=150_000), "match_text"))
        blocks.append(("char_reason", TfidfVectorizer(analyzer="char", ngram_range=(lo, hi), min_df=2, sublinear_tf=True, max_features=60_000), "match_reason"))
    if "word" in features:
        blocks.append(("word", TfidfVectorizer(analyzer=FugashiTokenizer(), min_df=2, sublinear_tf=True), "match_all"))
    if "cues" in features:
        blocks.append(("cues", Pipeline([("cue", CueExtractor()), ("scale", StandardScaler())]), ["match_text", "match_reason"]))
    if "emb" in features:
        blocks.append(("emb", SentenceEncoder(model=cfg.encoder, max_chars=cfg.embed_max_chars), "match_text"))
    # always: how well the opinion fits the window's candidate list (mapping.list_fit) — part of reading
    # the window's own list (ADR 0006), not a feature set of the ablation
    blocks.append(("fit", StandardScaler(), list(FIT_COLUMNS)))
    return blocks


def build_candidate_model(cfg: ClassifyConfig) -> Pipeline:
    """What is still learned per candidate: a classifier over the *names* of the systems the labelled corpus
    covers (character n-grams and lemmas of the opinion text). The mapping model uses its
    probability as one feature of a known system; a new system has none."""
    lo, hi = cfg.char_ngram
    blocks = [
        ("char_text", TfidfVectorizer(analyzer="char", ngram_range=(lo, hi), min_df=2, sublinear_tf=True, max_features=150_000), "match_text"),
        ("word", TfidfVectorizer(analyzer=FugashiTokenizer(), min_df=2, sublinear_tf=True), "match_text"),
    ]
    # no embedding block: the mapping's precedent feature carries the embeddings, and a text is encoded once
    return Pipeline([("features", ColumnTransformer(blocks, sparse_threshold=1.0)), ("clf", LogisticRegression(C=8.0, max_iter=5000, class_weight="balanced", random_state=cfg.seed))])


def build_model(features: Sequence[str], cfg: ClassifyConfig) -> Pipeline:
    """The text model: six categories from the opinion and its reason."""
    return Pipeline(
        [
            ("features", ColumnTransformer(_blocks(features, cfg), sparse_threshold=1.0, transformer_weights={"cues": cfg.cue_weight})),
            ("clf", LogisticRegression(C=cfg.C, max_iter=5000, class_weight="balanced", random_state=cfg.seed)),
        ]
    )


def prepare(frame: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    """Model inputs from a normalised frame (needs match_text, match_reason, stated_candidate)."""
    return with_stated(frame, domain)


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


# --------------------------------------------------------------------------- the trained model


@dataclass
class OpinionModel:
    text: Pipeline  # six categories (no 解決済)
    learned: Pipeline  # build_candidate_model: the labelled systems, by name
    learned_temperature: float
    mapping: MappingModel
    coverage: CoverageModel
    text_temperature: float
    mapping_temperature: float
    coverage_platt: tuple[float, float]
    policy: ConformalPolicy
    features: tuple[str, ...]
    precedents: pd.DataFrame  # opinion_id, category, candidate_id, candidate_name, text of the training rows
    precedent_vectors: np.ndarray  # L2-normalised sentence embeddings of the training rows
    categories: tuple[str, ...] = ()  # all seven, in the flowchart's order
    meta: dict = field(default_factory=dict)

    @property
    def text_classes(self) -> list[str]:
        return list(self.text.classes_)

    def text_proba(self, frame: pd.DataFrame, features=None) -> np.ndarray:
        return _proba(self.text, frame, features, self.text_temperature)

    def learned_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows × learned_names): the per-system classifier's probabilities."""
        return _proba(self.learned, frame, None, self.learned_temperature)

    @property
    def learned_names(self) -> list[str]:
        return list(self.learned.classes_)

    def encoder(self) -> SentenceEncoder | None:
        ct: ColumnTransformer = self.text.named_steps["features"]
        return ct.named_transformers_.get("emb")


def _proba(model: Pipeline, frame: pd.DataFrame, features, temperature: float) -> np.ndarray:
    if features is None:
        features = model.named_steps["features"].transform(frame)
    return softmax(model.named_steps["clf"].decision_function(features), temperature)


# --------------------------------------------------------------------------- persistence

# Every type the model files may hold. A file with any other type is refused on load (ADR 0004):
# a tampered file cannot make skops construct an arbitrary object.
TRUSTED_TYPES = (
    "pipeline.embed.SentenceEncoder",
    "pipeline.features.CueExtractor",
    "pipeline.tokenize.FugashiTokenizer",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)  # beyond these, only what skops trusts by default (scikit-learn estimators, numpy arrays, builtins)
PART_FILES = ("text", "learned", "mapping", "coverage")


class ModelFileError(RuntimeError):
    pass


def plain_vocabularies(estimator) -> None:
    """Vectorisers' vocabularies as plain ``int`` values, in place (the same columns): a fitted char
    TF-IDF holds NumPy integers, which skops writes as one array file each — 84,000 files, six seconds of
    every start-up to read back; plain ints go into the file's JSON schema."""
    from sklearn.feature_extraction.text import CountVectorizer

    if isinstance(estimator, CountVectorizer) and isinstance(getattr(estimator, "vocabulary_", None), dict):
        estimator.vocabulary_ = {t: int(j) for t, j in estimator.vocabulary_.items()}
    for child in [*(s for _, s in getattr(estimator, "steps", ())), *(t for _, t, *_ in getattr(estimator, "transformers_", ())), *(t for _, t in getattr(estimator, "transformer_list", ()))]:
        if not isinstance(child, str):
            plain_vocabularies(child)


def save_model(model: OpinionModel, directory: Path) -> None:
    import skops.io as sio

    directory.mkdir(parents=True, exist_ok=True)
    plain_vocabularies(model.text)
    plain_vocabularies(model.learned)
    sio.dump(model.text, directory / "text.skops")
    sio.dump(model.mapping.clf, directory / "mapping.skops")
    sio.dump(model.learned, directory / "learned.skops")
    sio.dump(model.coverage.clf, directory / "coverage.skops")
    np.savez_compressed(directory / "precedents.npz", vectors=model.precedent_vectors)
    np.savez_compressed(directory / "calibration.npz", alphas=model.policy.cal_alphas, labels=model.policy.cal_labels)
    model.precedents.to_csv(directory / "precedents.csv", index=False, encoding="utf-8")
    meta = dict(model.meta)
    meta.update(
        {
            "text_temperature": model.text_temperature,
            "mapping_temperature": model.mapping_temperature,
            "learned_temperature": model.learned_temperature,
            "coverage_platt": list(model.coverage_platt),
            "policy": model.policy.to_dict(),
            "features": list(model.features),
            "categories": list(model.categories),
        }
    )
    (directory / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")


def load_model(directory: Path) -> OpinionModel:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    meta_path = directory / "meta.json"
    if not meta_path.exists():
        raise ModelFileError(f"{directory}: 学習済みモデルがありません（meta.json がない）。`opinions train` で学習してください。")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if "mapping_temperature" not in meta:
        raise ModelFileError(f"{directory}: 旧い形式のモデルです（対象候補を照会回の候補一覧から判断しない版）。`opinions train` で学習し直してください。")
    parts = {}
    for name in PART_FILES:
        path = directory / f"{name}.skops"
        if not path.exists():
            raise ModelFileError(f"{path}: モデルファイルがありません。`opinions train` で学習し直してください。")
        # one pass over the file: skops refuses any type outside its defaults and TRUSTED_TYPES (the audit
        # of get_untrusted_types before it parsed every file a second time, a third of the start-up)
        try:
            parts[name] = sio.load(path, trusted=list(TRUSTED_TYPES))
        except UntrustedTypesFoundException:
            unexpected = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
            raise ModelFileError(f"{path}: モデルファイルに想定外の型が含まれているため読み込みません: {unexpected}") from None
    for name in ("text", "learned"):  # the same fitted vectorisers, counting n-grams with numpy (same matrices)
        fast_char_vectorizers(parts[name])
    coverage = CoverageModel()
    coverage.clf = parts["coverage"]
    mapping = MappingModel()
    mapping.clf = parts["mapping"]
    cal = np.load(directory / "calibration.npz")
    return OpinionModel(
        text=parts["text"],
        learned=parts["learned"],
        learned_temperature=float(meta["learned_temperature"]),
        mapping=mapping,
        coverage=coverage,
        text_temperature=float(meta["text_temperature"]),
        mapping_temperature=float(meta["mapping_temperature"]),
        coverage_platt=tuple(meta["coverage_platt"]),
        policy=ConformalPolicy.from_dict(meta["policy"], cal["alphas"], cal["labels"]),
        features=tuple(meta["features"]),
        precedents=pd.read_csv(directory / "precedents.csv", dtype=str, keep_default_na=False),
        precedent_vectors=np.load(directory / "precedents.npz")["vectors"],
        categories=tuple(meta["categories"]),
        meta=meta,
    )
