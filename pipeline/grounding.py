"""Grounding: which passage of the window's documents concerns an opinion, and does it settle it.

解決済 and the WT's ※3 check are facts about an opinion *together with* the documents of its window
(DOMAIN.md, "Reference documents"), so they are decided here, from the documents, and never learned
from the opinion's text alone:

1. ``PassageIndex`` — the window's passages (references.py), each tagged with the candidate its file or
   heading names, indexed by character-bigram BM25 and by sentence embeddings;
2. ``retrieve`` — the k passages most likely to concern an opinion (BM25 + embeddings of the opinion and
   of its request sentences, informed by the candidate);
3. ``CoverageModel`` — a pair model over (opinion, passage): does the passage do what the opinion asks,
   or state a direction of consideration for it (※3)? Its features compare the *request sentence*
   (「〜していただきたい」「〜を求める」) with the passage, so what must be met is what is asked, not the topic.

The result per opinion is structured (passage ids, scores, quotes); sentences are rendered elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from pipeline.config import Domain
from pipeline.normalize import nfkc

# a sentence that asks for something: what a passage must meet for the opinion to be settled
REQUEST = re.compile(
    r"(いただきたい|頂きたい|いただけないか|てほしい|でほしい|ほしい|求める|求めます|求めたい|すべき|べきで|されたい|願いたい|お願い"
    r"|要望|要請|してください|示していただ|示されたい|検討いただ|検討を|必要がある|必要である|必要と考え|ありたい|望む|望まれる|期待する)"
)
SENTENCE_END = re.compile(r"(?<=[。！？!?])|\n")
# passage modality: does it commit (do / a direction of consideration, ※3) or only describe / defer
COMMIT = re.compile(r"(する。|とする|を行う|を図る|実施する|開始する|整備する|導入する|構築する|提供する|示す|作成する|予定|見込み|目指す|検討する|検討を進める|着手|対応する|可能とする|可能である|できる)")
DEFER = re.compile(r"(引き続き検討|更に検討|さらに検討|今後検討|検討を深め|整理が必要|整理する必要|課題である|課題となる|未定|決まっていない|定まっていない|意見を聴|意見を聞)")
_STRIP = re.compile(r"[\s\W_]+", re.UNICODE)

def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(nfkc(text)) if s and s.strip()]


def request_sentences(text: str) -> list[str]:
    """The sentences that ask for something; the last sentence when none does (it usually carries the point)."""
    sents = sentences(text)
    asked = [s for s in sents if REQUEST.search(s)]
    return asked or sents[-1:]


def quote(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the index


def tag_candidate(file: str, headings: Sequence[str], domain: Domain) -> str:
    """The candidate a passage concerns, from its heading path (innermost first) and its file name:
    the longest candidate name or alias (3 characters or more) found there; "" for passages of general
    documents (基本方針, 移行計画 …)."""
    places = [nfkc(h) for h in reversed(list(headings))] + [nfkc(file)]
    for place in places:
        best = ("", 0)
        for c in domain.candidates:
            if c.general:
                continue
            for name in (c.name, *c.aliases):
                n = nfkc(name)
                if len(n) >= 3 and n in place and len(n) > best[1]:
                    best = (c.id, len(n))
        if best[0]:
            return best[0]
    return ""


def _bigrams(texts: Sequence[str]) -> list[list[str]]:
    out = []
    for t in texts:
        s = _STRIP.sub("", nfkc(t))
        out.append([s[i : i + 2] for i in range(len(s) - 1)])
    return out


@dataclass
class PassageIndex:
    """The passages of one window, ready for retrieval. Build with ``build_index``."""

    ids: list[str]
    files: list[str]
    headings: list[tuple[str, ...]]
    texts: list[str]
    candidates: list[str]
    commits: np.ndarray  # passage states a commitment / direction (modality cue)
    defers: np.ndarray  # passage only defers / describes
    vocab: dict[str, int]
    idf: np.ndarray
    weights: sparse.csr_matrix  # BM25 term weights, passages × vocabulary
    emb: np.ndarray  # L2-normalised embeddings of the passages (heading + text)
    lemmas: list[set[str]]
    sent_emb: np.ndarray  # embeddings of the passages' sentences
    sent_owner: np.ndarray  # passage index of each sentence (sorted)
    lemma_idf: dict[str, float]
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def without(self, passage_ids: Sequence[str]) -> "PassageIndex":
        keep = [i for i, p in enumerate(self.ids) if p not in set(passage_ids)]
        return self.subset(keep)

    def subset(self, keep: Sequence[int]) -> "PassageIndex":
        keep = list(keep)
        pos = {j: n for n, j in enumerate(keep)}
        sel = np.array([pos.get(int(o), -1) for o in self.sent_owner], dtype=int) if len(self.sent_owner) else np.zeros(0, int)
        mask = sel >= 0
        return PassageIndex(
            ids=[self.ids[i] for i in keep], files=[self.files[i] for i in keep], headings=[self.headings[i] for i in keep],
            texts=[self.texts[i] for i in keep], candidates=[self.candidates[i] for i in keep], commits=self.commits[keep], defers=self.defers[keep],
            vocab=self.vocab, idf=self.idf, weights=self.weights[keep], emb=self.emb[keep], lemmas=[self.lemmas[i] for i in keep],
            sent_emb=self.sent_emb[mask], sent_owner=sel[mask], lemma_idf=self.lemma_idf, source=self.source,
        )  # fmt: skip


def build_index(passages: Sequence, domain: Domain, encode, lemmatize, source: str = "", k1: float = 1.2, b: float = 0.75) -> PassageIndex:
    """``passages``: objects with id, file, headings, text (references.Passage). ``encode``: texts → L2-normalised
    vectors; ``lemmatize``: text → content lemmas. BM25 over character bigrams (Japanese needs no tokeniser
    for it, and officials' abbreviations still share bigrams with the full names)."""
    texts = [p.text for p in passages]
    grams = _bigrams(texts)
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for i, g in enumerate(grams):
        counts: dict[int, int] = {}
        for t in g:
            j = vocab.setdefault(t, len(vocab))
            counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            rows.append(i)
            cols.append(j)
            vals.append(c)
    n = len(texts)
    tf = sparse.csr_matrix((vals, (rows, cols)), shape=(n, max(len(vocab), 1)), dtype=np.float64)
    df = np.asarray((tf > 0).sum(axis=0)).ravel()
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    dl = np.array([max(len(g), 1) for g in grams], dtype=np.float64) if n else np.zeros(0)
    avg = dl.mean() if n else 1.0
    tf = tf.tocoo()
    denom = tf.data + k1 * (1 - b + b * dl[tf.row] / avg)
    w = sparse.csr_matrix((idf[tf.col] * tf.data * (k1 + 1) / denom, (tf.row, tf.col)), shape=tf.shape)
    heads = [" ".join(p.headings[1:]) if len(p.headings) > 1 else "" for p in passages]
    emb = encode([f"{h} {t}".strip() for h, t in zip(heads, texts)]) if n else np.zeros((0, 512), dtype=np.float32)
    sents = [(j, x) for j, t in enumerate(texts) for x in sentences(t)]
    sent_emb = encode([x for _, x in sents]) if sents else np.zeros((0, emb.shape[1] if n else 512), dtype=np.float32)
    lemmas = [set(lemmatize(nfkc(t))) for t in texts]
    ldf: dict[str, int] = {}
    for ls in lemmas:
        for x in ls:
            ldf[x] = ldf.get(x, 0) + 1
    return PassageIndex(
        ids=[p.id for p in passages], files=[p.file for p in passages], headings=[tuple(p.headings) for p in passages], texts=texts,
        candidates=[tag_candidate(p.file, p.headings, domain) for p in passages],
        commits=np.array([bool(COMMIT.search(nfkc(t))) for t in texts]), defers=np.array([bool(DEFER.search(nfkc(t))) for t in texts]),
        vocab=vocab, idf=idf, weights=w, emb=np.asarray(emb, dtype=np.float32), lemmas=lemmas,
        sent_emb=np.asarray(sent_emb, dtype=np.float32), sent_owner=np.array([j for j, _ in sents], dtype=int),
        lemma_idf={x: float(np.log(1 + n / c)) for x, c in ldf.items()}, source=source,
    )  # fmt: skip


def bm25(index: PassageIndex, queries: Sequence[str]) -> np.ndarray:
    """BM25 score of every query against every passage (queries × passages)."""
    rows, cols = [], []
    for i, g in enumerate(_bigrams(queries)):
        for j in {index.vocab[t] for t in g if t in index.vocab}:
            rows.append(i)
            cols.append(j)
    q = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(queries), index.weights.shape[1]))
    return np.asarray((q @ index.weights.T).todense()) if len(index) else np.zeros((len(queries), 0))


# --------------------------------------------------------------------------- opinions side


@dataclass
class OpinionSide:
    """What the grounding needs of each opinion, computed once per batch."""

    texts: list[str]
    requests: list[list[str]]
    emb: np.ndarray  # opinion embeddings (L2-normalised)
    req_emb: list[np.ndarray]  # per opinion: its request sentences' embeddings
    req_lemmas: list[set[str]]
    all_lemmas: list[set[str]]
    candidates: list[str]  # the candidate the candidate model chose
    p_text: np.ndarray  # text-model probabilities (opinion-level context for the pair model)


def opinion_side(texts: Sequence[str], candidates: Sequence[str], p_text: np.ndarray, encode, lemmatize, emb: np.ndarray | None = None) -> OpinionSide:
    texts = [nfkc(t) for t in texts]
    reqs = [request_sentences(t) for t in texts]
    flat = [s for r in reqs for s in r]
    flat_emb = encode(flat) if flat else np.zeros((0, 512), dtype=np.float32)
    req_emb, pos = [], 0
    for r in reqs:
        req_emb.append(flat_emb[pos : pos + len(r)])
        pos += len(r)
    return OpinionSide(
        texts=texts, requests=reqs, emb=encode(texts) if emb is None else emb, req_emb=req_emb,
        req_lemmas=[set(lemmatize(" ".join(r))) for r in reqs], all_lemmas=[set(lemmatize(t)) for t in texts],
        candidates=list(candidates), p_text=np.asarray(p_text, dtype=np.float64),
    )  # fmt: skip


# --------------------------------------------------------------------------- retrieval


def _z(m: np.ndarray) -> np.ndarray:
    mu, sd = m.mean(axis=1, keepdims=True), m.std(axis=1, keepdims=True)
    return (m - mu) / np.where(sd == 0, 1, sd)


@dataclass(frozen=True)
class Retrieval:
    top: np.ndarray  # opinions × k passage indices, best first (-1 where the window has fewer passages)
    score: np.ndarray  # the retrieval score of each
    bm25: np.ndarray  # opinions × passages
    cos: np.ndarray  # opinions × passages (opinion embedding · passage embedding)
    req_cos: np.ndarray  # opinions × passages (best request sentence · passage)
    req_sent_cos: np.ndarray  # opinions × passages (best request sentence · best sentence of the passage)
    own_best: np.ndarray | None = None  # per opinion: best passage of its own candidate's documents (-1: none)


def retrieve(index: PassageIndex, side: OpinionSide, k: int = 5, candidate_boost: float = 1.0) -> Retrieval:
    """The k passages most likely to concern each opinion: BM25 of the request sentences and the whole
    opinion plus embedding similarity, standardised per opinion; a passage tagged with the opinion's
    candidate is raised, one tagged with another candidate lowered (general passages neither)."""
    n, m = len(side.texts), len(index)
    if m == 0 or n == 0:
        empty = np.zeros((n, m))
        return Retrieval(np.full((n, k), -1), np.zeros((n, k)), empty, empty, empty, empty)
    b_all = bm25(index, side.texts)
    b_req = bm25(index, [" ".join(r) for r in side.requests])
    cos = side.emb @ index.emb.T
    req_cos = np.vstack([(e @ index.emb.T).max(axis=0) if len(e) else np.zeros(m) for e in side.req_emb])
    req_sent_cos = np.zeros((n, m))
    if len(index.sent_owner):
        starts = np.flatnonzero(np.r_[True, index.sent_owner[1:] != index.sent_owner[:-1]])
        owners = index.sent_owner[starts]
        for i, e in enumerate(side.req_emb):
            if len(e):
                req_sent_cos[i, owners] = np.maximum.reduceat((e @ index.sent_emb.T).max(axis=0), starts)
    pc = np.array(index.candidates)
    oc = np.array(side.candidates)[:, None]
    cand = np.where(pc[None, :] == "", 0.0, np.where(pc[None, :] == oc, 1.0, -0.5))
    score = _z(b_all) + _z(b_req) + _z(cos) + _z(req_cos) + candidate_boost * cand
    kk = min(k, m)
    top = np.argsort(-score, axis=1)[:, :kk]
    if kk < k:
        top = np.hstack([top, np.full((n, k - kk), -1)])
    sc = np.take_along_axis(np.hstack([score, np.full((n, 1), -np.inf)]), np.where(top < 0, m, top), axis=1)
    own = pc[None, :] == oc
    own_best = np.where(own.any(axis=1), np.where(own, score, -np.inf).argmax(axis=1), -1)
    return Retrieval(top, sc, b_all, cos, req_cos, req_sent_cos, own_best)


# --------------------------------------------------------------------------- the pair model

PAIR_FEATURES = (
    "rank", "retrieval_score", "bm25_norm", "bm25_req_share", "cos", "req_cos", "req_cos_margin", "req_sent_cos", "req_sent_cos_margin",
    "lemma_recall_request", "lemma_idf_recall_request", "lemma_recall_all",
    "lemma_precision", "same_candidate", "other_candidate", "general_passage", "passage_commits", "passage_defers", "passage_len",
    "opinion_has_request", "p_text_share", "p_text_precondition", "p_text_abstract", "p_text_unclear", "p_text_org", "p_text_oos",
)  # fmt: skip
TEXT_CLASSES_FOR_PAIRS = ("SHARE", "PRECONDITION", "ABSTRACT", "UNCLEAR_BASIS", "ORG_SPECIFIC", "OUT_OF_SCOPE")


def pair_features(index: PassageIndex, side: OpinionSide, ret: Retrieval, text_classes: Sequence[str], pairs: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Features of (opinion i, passage j) pairs; ``pairs`` holds (i, j, rank) with rank = position in the
    retrieval list (k when the passage was not retrieved)."""
    cls = list(text_classes)
    out = np.zeros((len(pairs), len(PAIR_FEATURES)), dtype=np.float64)
    bmax = ret.bm25.max(axis=1) if ret.bm25.size else np.zeros(len(side.texts))
    bsum = ret.bm25.sum(axis=1)
    # "stands out from the other passages": the runner-up per opinion (no margin with a single passage)
    many = ret.req_cos.shape[1] > 1
    second = np.sort(ret.req_cos, axis=1)[:, -2] if many else None
    second_s = np.sort(ret.req_sent_cos, axis=1)[:, -2] if many else None
    idf_max = max(index.lemma_idf.values(), default=1.0)
    for r, (i, j, rank) in enumerate(pairs):
        pl = index.lemmas[j]
        rl, al = side.req_lemmas[i], side.all_lemmas[i]
        pc, oc = index.candidates[j], side.candidates[i]
        w_req = sum(index.lemma_idf.get(x, idf_max) for x in rl)
        pos = np.flatnonzero(ret.top[i] == j)
        out[r] = [
            rank,
            ret.score[i, pos[0]] if len(pos) else ret.score[i, -1] - 1.0,
            ret.bm25[i, j] / bmax[i] if bmax[i] > 0 else 0.0,
            ret.bm25[i, j] / (bsum[i] or 1.0),
            ret.cos[i, j],
            ret.req_cos[i, j],
            ret.req_cos[i, j] - second[i] if many else 0.0,
            ret.req_sent_cos[i, j],
            ret.req_sent_cos[i, j] - second_s[i] if many else 0.0,
            len(rl & pl) / max(len(rl), 1),
            sum(index.lemma_idf.get(x, idf_max) for x in rl & pl) / (w_req or 1.0),
            len(al & pl) / max(len(al), 1),
            len(al & pl) / max(len(pl), 1),
            float(pc != "" and pc == oc),
            float(pc != "" and pc != oc),
            float(pc == ""),
            float(index.commits[j]),
            float(index.defers[j]),
            min(len(index.texts[j]), 400) / 400,
            float(any(REQUEST.search(s) for s in side.requests[i])),
            *[side.p_text[i, cls.index(c)] if c in cls else 0.0 for c in TEXT_CLASSES_FOR_PAIRS],
        ]
    return out


def candidate_pairs(ret: Retrieval, extra: dict[int, int] | None = None) -> list[tuple[int, int, int]]:
    """(opinion, passage, rank) for every retrieved passage, plus ``extra`` passages (e.g. the gold one
    when retrieval missed it, for training) at rank k."""
    k = ret.top.shape[1]
    pairs = [(i, int(j), r) for i in range(ret.top.shape[0]) for r, j in enumerate(ret.top[i]) if j >= 0]
    for i, j in (extra or {}).items():
        if j not in ret.top[i]:
            pairs.append((i, j, k))
    return pairs


class CoverageModel:
    """P(passage settles opinion) from pair features: gradient-boosted trees (monotone in the evidence
    features would be nicer; the trees learn the request-type interactions the flowchart has)."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.clf = None

    def fit(self, X: np.ndarray, y: np.ndarray) -> "CoverageModel":
        from sklearn.dummy import DummyClassifier
        from sklearn.ensemble import HistGradientBoostingClassifier

        if len(set(np.asarray(y).tolist())) < 2:  # no labelled settling pair (no documents): never settles
            self.clf = DummyClassifier(strategy="constant", constant=0).fit(np.zeros((2, X.shape[1] if X.ndim == 2 else len(PAIR_FEATURES))), [0, 0])
            return self
        self.clf = HistGradientBoostingClassifier(max_depth=3, learning_rate=0.06, max_iter=250, l2_regularization=1.0, min_samples_leaf=20, random_state=self.seed)
        self.clf.fit(X, y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        if len(self.clf.classes_) < 2:
            return np.zeros(len(X))
        return self.clf.predict_proba(X)[:, 1]


@dataclass(frozen=True)
class Grounding:
    """Per opinion: the probability that the window's documents settle it, the passage that does
    (best), and the nearest passage whatever its verdict (the section a 修正意見 would amend)."""

    coverage: np.ndarray
    best: np.ndarray  # passage index of the most likely settling passage (-1: none)
    nearest: np.ndarray  # passage index of the top retrieved passage (-1: none)
    relevance: np.ndarray  # best embedding similarity of the opinion to any passage
    top: np.ndarray  # retrieved passage indices


def ground(index: PassageIndex, side: OpinionSide, model: CoverageModel, text_classes: Sequence[str], k: int = 5) -> Grounding:
    n = len(side.texts)
    ret = retrieve(index, side, k)
    pairs = candidate_pairs(ret)
    if not pairs:
        z = np.zeros(n)
        return Grounding(z, np.full(n, -1), np.full(n, -1), z, ret.top)
    p = model.predict_proba(pair_features(index, side, ret, text_classes, pairs))
    cov, best = np.zeros(n), np.full(n, -1)
    for (i, j, _), pij in zip(pairs, p):
        if pij > cov[i]:
            cov[i], best[i] = pij, j
    # the section a 修正意見 would amend: the best passage of the opinion's own candidate where the
    # window has documents of it (a draft), else the best passage overall
    nearest = np.where(ret.own_best >= 0, ret.own_best, ret.top[:, 0]) if ret.own_best is not None else ret.top[:, 0].copy()
    return Grounding(cov, best, nearest, ret.cos.max(axis=1), ret.top)


def grounding_frame(index: PassageIndex, g: Grounding) -> pd.DataFrame:
    """Structured columns: passage ids and quotes (rendered to sentences at the edge)."""

    def pid(j: int) -> str:
        return index.ids[j] if j >= 0 else ""

    def qt(j: int) -> str:
        return quote(index.texts[j]) if j >= 0 else ""

    return pd.DataFrame(
        {
            "coverage": np.round(g.coverage, 4),
            "covering_passage": [pid(j) for j in g.best],
            "covering_quote": [qt(j) for j in g.best],
            "nearest_passage": [pid(j) for j in g.nearest],
            "nearest_quote": [qt(j) for j in g.nearest],
            "retrieved_passages": ["|".join(index.ids[j] for j in row if j >= 0) for row in g.top],
            "reference_relevance": np.round(g.relevance, 4),
        }
    )
