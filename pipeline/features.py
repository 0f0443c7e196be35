"""Features for the classifiers: structural cues with readable Japanese names, and the stated candidate.

The cues encode what an analyst looks at besides the words: is there a reason at all, does the reason
only restate the opinion, does the body talk about itself (本市・当町), does the text ask for
something (〜すべき・〜されたい), give facts (numbers, examples), or make the judgement depend on an
undecided premise. Each cue has a Japanese name so that the classifier's reason can quote it.
"""

from __future__ import annotations

import math
import re
import unicodedata

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.config import Domain

# (name shown in reasons, pattern applied to the NFKC text; counted in text+reason unless noted)
CUE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("団体自身への言及（本市・当町など）", r"(?:本|当|弊|我が)(?:市|町|村|区|県|府|都|道|団体)|うちの(?:団体|市|町|村)"),
    ("団体独自の事情（独自・契約・更新時期など）", r"独自|契約|更新時期|保守期間|リース|本庁舎|組織体制|条例で|当該団体"),
    ("要望の表現（〜すべき・〜されたい・〜してほしい）", r"べき|されたい|いただきたい|頂きたい|してほしい|して欲しい|願いたい|求める|要望|検討を|望む"),
    ("懸念・支障の表現", r"懸念|おそれ|恐れ|支障|困難|混乱|負担が"),
    ("不要・反対の主張", r"不要|反対|必要(?:は)?ない|必要性(?:は|が)(?:ない|乏しい|感じられない)|やめ|除外すべき|見送るべき|撤回"),
    ("理由づけの表現（〜ため・〜により）", r"ため|ので|から、|により|によって|おり、|ことから"),
    ("事実・具体例（数字・事例）", r"\d|例えば|実際に|事例|件数|割合|時間"),
    ("前提が未定（費用・仕様・法改正など）", r"前提|未定|示されて(?:い)?ない|示されない|明らかでない|明確でない|決まって(?:い)?ない|判断でき|整理(?:した|の)上|見通し|どの程度|いくら|費用負担|利用料|仕様"),
    ("候補の外の話題（ガバメントクラウド・20業務など）", r"ガバメントクラウド|ガバクラ|標準準拠|20業務|標準化対象|基幹業務|地方交付税|交付税|定数|人件費|地方税制"),
    ("抽象的な表現（丁寧に・十分に・期待など）", r"丁寧|十分|配慮|期待|慎重|しっかり|実情を|声を|寄り添|着実|円滑"),
    ("問いかけ（〜か）", r"か。|か？|のか|でしょうか"),
)
_COMPILED = tuple((name, re.compile(p)) for name, p in CUE_PATTERNS)
STRUCT_NAMES = ("理由欄が空欄", "理由が意見の繰り返し", "本文の長さ（対数）", "理由の長さ（対数）")
CUE_NAMES = STRUCT_NAMES + tuple(name for name, _ in CUE_PATTERNS)


def _bigrams(s: str) -> set[str]:
    s = re.sub(r"[\s\W_]+", "", s)
    return {s[i : i + 2] for i in range(len(s) - 1)}


def reason_restates(text: str, reason: str, threshold: float = 0.6) -> bool:
    """True when most of the reason's character bigrams already stand in the opinion (it adds nothing)."""
    r = _bigrams(reason)
    if len(r) < 3:
        return False
    return len(r & _bigrams(text)) / len(r) >= threshold


def cue_vector(text: str, reason: str) -> list[float]:
    text = unicodedata.normalize("NFKC", text or "")
    reason = unicodedata.normalize("NFKC", reason or "")
    both = text + "\n" + reason
    v = [
        float(not reason.strip()),
        float(reason_restates(text, reason)),
        math.log1p(len(text)),
        math.log1p(len(reason)),
    ]
    v += [math.log1p(len(p.findall(both))) for _, p in _COMPILED]
    return v


class CueExtractor(BaseEstimator, TransformerMixin):
    """Columns ``match_text`` and ``match_reason`` → the dense cue matrix of ``CUE_NAMES``."""

    def fit(self, X, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=["match_text", "match_reason"])
        return np.array([cue_vector(t, r) for t, r in zip(frame["match_text"], frame["match_reason"])], dtype=np.float64)

    def get_feature_names_out(self, input_features=None):
        return np.array(CUE_NAMES, dtype=object)


_CIRCLED = {chr(0x2460 + i): i + 1 for i in range(20)}


def parse_stated_candidate(stated: str, domain: Domain) -> str:
    """The candidate id the submitter's 対象 field names ("" when it names none): 「①入札…」「1」「（3）」
    「預貯金照会」「全般」. Only a hint: the classifier decides from the text."""
    s = (stated or "").strip()
    if not s:
        return ""
    up = unicodedata.normalize("NFKC", s).upper()
    for c in domain.candidates:  # an id typed as the list shows it: 「K03」「R8-03 道路占用」
        cid = c.id.upper()
        if re.search(r"\d", cid) and up.startswith(cid) and not up[len(cid) : len(cid) + 1].isdigit():
            return c.id
    if s[0] in _CIRCLED:
        num = _CIRCLED[s[0]]
    else:
        n = unicodedata.normalize("NFKC", s)
        m = re.match(r"^[\(（\[]?\s*(\d{1,2})\s*[\)）\]\.．、:]?", n)
        num = int(m.group(1)) if m else None
    if num is not None:
        for c in domain.candidates:
            if c.number == num:
                return c.id
    n = unicodedata.normalize("NFKC", s)
    best = ("", 0)
    for c in domain.candidates:
        for name in (c.name, *c.aliases):
            name = unicodedata.normalize("NFKC", name)
            if name and name in n and len(name) > best[1]:
                best = (c.id, len(name))
    return best[0]


def with_stated(frame: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    """Add ``stated_id`` (the parsed 対象 field) and ``match_all`` (text + reason) for the models."""
    out = frame.copy()
    out["stated_id"] = out["stated_candidate"].map(lambda s: parse_stated_candidate(s, domain) or "NONE")
    out["match_all"] = out["match_text"] + "\n" + out["match_reason"]
    return out


# --------------------------------------------------------------------------- character n-grams, fast

_WHITE_SPACES = re.compile(r"\s\s+")  # what sklearn's char analyser collapses to one space
_CODE_BITS = 21  # every code point is below 2**21: a 1–3-gram is one integer of at most 63 bits
_GRAM_CACHE: dict[tuple, tuple[np.ndarray, ...]] = {}
_GRAM_CACHE_MAX = 5_000


def char_gram_keys(doc: str, lo: int, hi: int, lowercase: bool = True) -> tuple[np.ndarray, ...]:
    """The character n-grams sklearn's ``analyzer="char"`` makes of ``doc`` (lowercased, runs of white
    space collapsed), one array of integer keys per n in lo..hi (n ≤ 3). Kept for the next vectoriser
    of the same batch: the text model and the candidate model read the same opinions."""
    key = (lo, hi, lowercase, doc)
    hit = _GRAM_CACHE.get(key)
    if hit is not None:
        return hit
    text = _WHITE_SPACES.sub(" ", doc.lower() if lowercase else doc)
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    for n in range(lo, hi + 1):
        if len(cp) < n:
            out.append(np.zeros(0, dtype=np.uint64))
            continue
        k = cp[: len(cp) - n + 1].copy()
        for s in range(1, n):
            k = (k << np.uint64(_CODE_BITS)) | cp[s : len(cp) - n + 1 + s]
        out.append(k)
    out = tuple(out)
    if len(_GRAM_CACHE) >= _GRAM_CACHE_MAX:
        _GRAM_CACHE.clear()
    _GRAM_CACHE[key] = out
    return out


def _gram_key(term: str) -> int:
    k = 0
    for ch in term:
        k = (k << _CODE_BITS) | ord(ch)
    return k


class FastCharTfidf(TfidfVectorizer):
    """A fitted ``TfidfVectorizer(analyzer="char")`` whose ``transform`` counts the n-grams with numpy:
    the same matrix as sklearn's (same vocabulary, counts, order, dtype, then the same TF-IDF step), without
    a Python loop over every n-gram (that loop was most of the text model's time on long opinions).
    ``fast_char_vectorizers`` turns the loaded model's vectorisers into this class (the files are unchanged)."""

    def _fast(self) -> bool:
        lo, hi = self.ngram_range
        return (self.analyzer == "char" and self.preprocessor is None and self.strip_accents is None and self.input == "content"
                and not self.binary and 1 <= lo <= hi <= 3 and np.dtype(self.dtype) == np.float64)  # fmt: skip

    def _vocab_keys(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if getattr(self, "_keys", None) is None:
            lo, hi = self.ngram_range
            per_n = []
            for n in range(lo, hi + 1):
                terms = [(t, j) for t, j in self.vocabulary_.items() if len(t) == n]
                keys = np.array([_gram_key(t) for t, _ in terms], dtype=np.uint64)
                cols = np.array([j for _, j in terms], dtype=np.int64)
                order = np.argsort(keys)
                per_n.append((keys[order], cols[order]))
            self._keys = per_n
        return self._keys

    def transform(self, raw_documents):
        if isinstance(raw_documents, str) or not self._fast():
            return super().transform(raw_documents)
        from scipy import sparse
        from sklearn.feature_extraction import text as sk_text
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, msg="The TF-IDF vectorizer is not fitted")
        lo, hi = self.ngram_range
        vocab = self._vocab_keys()
        grams = [char_gram_keys(self.decode(doc), lo, hi, self.lowercase) for doc in raw_documents]
        n_docs, width = len(grams), len(self.vocabulary_)
        cells = []  # doc * width + column of every n-gram found in the vocabulary, all documents at once
        for k, (vk, vc) in enumerate(vocab):
            keys = [g[k] for g in grams]
            lens = np.fromiter((len(x) for x in keys), dtype=np.int64, count=n_docs)
            if not len(vk) or not lens.sum():
                continue
            flat = np.concatenate(keys)
            owner = np.repeat(np.arange(n_docs, dtype=np.int64), lens)
            pos = np.minimum(np.searchsorted(vk, flat), len(vk) - 1)
            hit = vk[pos] == flat
            cells.append(owner[hit] * width + vc[pos[hit]])
        cell, count = np.unique(np.concatenate(cells), return_counts=True) if cells else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(cell // width, minlength=n_docs), out=indptr[1:])
        idx_dtype = np.int32 if indptr[-1] <= np.iinfo(np.int32).max else np.int64
        X = sparse.csr_array((count.astype(np.intc), (cell % width).astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n_docs, width), dtype=self.dtype)
        X.sort_indices()
        align = getattr(sk_text, "_align_api_if_sparse", None)
        X = align(X) if align is not None else sparse.csr_matrix(X)
        return self._tfidf.transform(X, copy=False)

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state.pop("_keys", None)
        return state


def fast_char_vectorizers(pipeline) -> int:
    """Turn the fitted character TF-IDF blocks of a loaded pipeline's ColumnTransformer into
    ``FastCharTfidf`` (same fitted state, same output); returns how many."""
    ct = getattr(pipeline, "named_steps", {}).get("features")
    done = 0
    for _, trans, _ in getattr(ct, "transformers_", []):
        if type(trans) is TfidfVectorizer and trans.analyzer == "char":
            trans.__class__ = FastCharTfidf
            done += trans._fast()
    return done
