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


# lemma lists of texts already analysed in this process: the category and candidate models share one
# analyser over the same text, so the second model reuses the first one's work (bounded)
_LEMMA_CACHE: dict[tuple[bool, str], list[str]] = {}
_LEMMA_CACHE_MAX = 50_000


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
        """Surface, lemma and coarse POS of every token. Parsed from MeCab's output line
        (surface, pron, kana, lemma, pos-pos-…): 2–3x faster than fugashi's per-token feature objects."""
        out = []
        for line in self._get().parse(text or "").split("\n"):
            if not line or line == "EOS":
                continue
            f = line.split("\t")
            surface = f[0]
            lemma = f[3] if len(f) > 3 and f[3] else surface
            pos = f[4].split("-", 1)[0] if len(f) > 4 else ""
            out.append(Token(surface, lemma, pos))
        return out

    def lemmas(self, text: str) -> list[str]:
        """Lemmas of content tokens: the analyser the TF-IDF word features use."""
        key = (self.content_only, text or "")
        hit = _LEMMA_CACHE.get(key)
        if hit is not None:
            return hit
        out = [t.lemma for t in self.tokens(text) if not self.content_only or t.pos in CONTENT_POS]
        if len(_LEMMA_CACHE) < _LEMMA_CACHE_MAX:
            _LEMMA_CACHE[key] = out
        return out

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
