"""Tokenise: fugashi + unidic-lite (fast, ~7,500 texts/s) and, where its cost is worth it, GiNZA.

Both analysers store settings in ``__init__`` and load their model on first use (GiNZA's pattern),
and drop the loaded model when pickled, so they clone and serialise cleanly inside sklearn pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# content words used as features: nouns, verbs, adjectives, auxiliaries carry modality (べき, たい, ない)
CONTENT_POS = ("名詞", "動詞", "形容詞", "形状詞", "助動詞", "副詞", "接頭辞", "接尾辞")


@dataclass(frozen=True)
class Token:
    surface: str
    lemma: str
    pos: str


class FugashiTokenizer:
    """MeCab (fugashi) with the unidic-lite dictionary bundled in the wheel; no download."""

    def __init__(self, content_only: bool = True):
        self.content_only = content_only
        self._tagger: Any = None

    def _get(self):
        if self._tagger is None:
            import fugashi

            self._tagger = fugashi.Tagger()
        return self._tagger

    def tokens(self, text: str) -> list[Token]:
        out = []
        for w in self._get()(text or ""):
            f = w.feature
            out.append(Token(w.surface, getattr(f, "lemma", None) or w.surface, getattr(f, "pos1", None) or ""))
        return out

    def lemmas(self, text: str) -> list[str]:
        """Lemmas of content tokens: the analyser the TF-IDF word features use."""
        return [t.lemma for t in self.tokens(text) if not self.content_only or t.pos in CONTENT_POS]

    __call__ = lemmas

    def __getstate__(self):
        return {"content_only": self.content_only, "_tagger": None}

    def __setstate__(self, state):
        self.__dict__.update(state)


class GinzaAnalyzer:
    """spaCy + ja_ginza (offline package): dependency parse and NER at ~9 docs/s on 2 cores.

    Too slow for every opinion of a large batch; used on demand (e.g. for one opinion in a notebook,
    or a review queue of a few hundred items). See benchmarks/bench_tokenize.py for the figures.
    """

    def __init__(self, model: str = "ja_ginza", disable: tuple[str, ...] = ()):
        self.model = model
        self.disable = disable
        self._nlp: Any = None

    def _get(self):
        if self._nlp is None:
            import spacy

            self._nlp = spacy.load(self.model, disable=list(self.disable))
        return self._nlp

    def analyse(self, text: str) -> list[dict]:
        doc = self._get()(text or "")
        return [{"text": t.text, "lemma": t.lemma_, "pos": t.pos_, "dep": t.dep_, "head": t.head.i} for t in doc]

    def entities(self, text: str) -> list[tuple[str, str]]:
        return [(e.text, e.label_) for e in self._get()(text or "").ents]

    def __getstate__(self):
        return {"model": self.model, "disable": self.disable, "_nlp": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
