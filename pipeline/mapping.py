"""Mapping: which candidate of the window's list an opinion concerns — with no labelled row of that candidate.

Each candidate of the window's list (candidates.py) becomes a *profile*: its name, short names, ministry
and the description the candidate-list document gives (and, in a policy-draft window, the passages of its
own draft). Every (opinion, candidate) pair gets features that do not depend on which system the
candidate is — how strongly the opinion's words and sentences match the profile, whether it names the
system or a short form of it, its heading number, its ministry, how close it is to the candidate's
draft, whether the opinion speaks about the process across candidates (全般) — and a pair model learnt on
the labelled corpus scores the pair. What the corpus teaches is *how officials refer to a system* (by
the procedure, a short name, the ministry, the number), not the fourteen systems themselves.

The features tied to a known system are ``precedent`` (how close the opinion is to labelled opinions
about the same system, same name) and ``learned`` (the probability a text classifier trained on the
labelled systems gives that system) — both missing for a new system. The pair model is trained with it hidden
for some candidates and for all, so that a list of new, known or mixed systems is scored on one scale.

The scores of one opinion's candidates are turned into probabilities by a softmax with a temperature
fitted on out-of-fold scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from pipeline.config import Domain
from pipeline.grounding import PassageIndex, _z, bm25, build_index, sentences
from pipeline.normalize import nfkc

MAPPING_FEATURES = (
    "bm25_z", "bm25_top", "bm25_gap", "cos_z", "cos", "cos_gap", "sent_z", "sent", "sent_gap", "name_cos_z", "name_cover", "cover_gap", "alias_len", "name_lcs",
    "number", "ministry", "draft_bm25_z", "draft_cos", "general", "general_cues", "max_specific_cover", "max_specific_alias",
    "precedent", "precedent_margin", "learned", "learned_margin", "log_candidates",
)  # fmt: skip
# an opinion about the process across candidates (全般): how commonisation proceeds, who pays, the structure
GENERAL_CUES = re.compile(
    r"候補(?:全体|全般|横断|共通|ごと|間|の選定|選定)|各候補|全ての候補|すべての候補|いずれの候補|複数の候補|今後の候補|共通化(?:全般|全体|の進め方|の対象)"
    r"|進め方|スケジュール|工程|費用負担|財政措置|推進体制|連絡協議会|選定(?:の|方法|基準|過程|理由)|人材|役割分担|共通SaaS|国・地方デジタル共通基盤"
)
_CORE = re.compile(r"【[^】]*】|[（(][^）)]*[）)]")
_MINISTRY_SPLIT = re.compile(r"(?:[、，,・（）()]|及び|並びに|ほか|等)+")
MAX_NAME = 20
# how well an opinion fits the window's list at all (for the text model: an opinion about none of the
# listed systems leans 射程外, whatever the systems are called)
FIT_COLUMNS = ("fit_cos", "fit_sent", "fit_cover", "fit_general")
MAPPING_PRECEDENT = [MAPPING_FEATURES.index(x) for x in ("precedent", "precedent_margin", "learned", "learned_margin")]  # hidden for a new system


@dataclass
class _Profile:
    id: str
    name: str
    core: str  # NFKC name without 【…】 and （…）, at most MAX_NAME characters
    names: tuple[str, ...]  # NFKC name and aliases, 2+ characters
    number: int | None
    ministries: tuple[str, ...]
    general: bool


@dataclass
class CandidateProfiles:
    """The window's candidates, ready for scoring. Build with ``build_profiles``."""

    profiles: list[_Profile]
    index: PassageIndex  # one "passage" per candidate: name, ministry and description
    name_emb: np.ndarray
    drafts: list[np.ndarray]  # per candidate: indices of its passages in the window's document index
    window_index: PassageIndex | None
    known: list[np.ndarray | None]  # per candidate: rows of the labelled precedents about the same system

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.profiles]

    @property
    def general(self) -> np.ndarray:
        """Per candidate: is it the cross-cutting 全般 entry."""
        return np.array([p.general for p in self.profiles], dtype=bool)

    def __len__(self) -> int:
        return len(self.profiles)


@dataclass(frozen=True)
class _ProfileText:
    id: str
    file: str
    headings: tuple[str, ...]
    text: str


def _names(c) -> tuple[str, ...]:
    out = []
    for s in (c.name, *c.aliases):
        s = nfkc(s)
        if len(s) >= 2 and s not in out:
            out.append(s)
    return tuple(out)


def _ministries(text: str) -> tuple[str, ...]:
    return tuple(t for t in (x.strip() for x in _MINISTRY_SPLIT.split(nfkc(text))) if len(t) >= 2 and re.search(r"省|庁|府|本部|東京都|事務局", t))


def build_profiles(domain: Domain, encode, lemmatize, window_index: PassageIndex | None = None, precedent_names: Sequence[str] | None = None) -> CandidateProfiles:
    """Profiles of ``domain``'s candidates. ``precedent_names``: the candidate name of every labelled
    precedent row (OpinionModel.precedents), to find the labelled opinions about the same system."""
    cands = list(domain.candidates)
    profiles = [
        _Profile(id=c.id, name=c.name, core=_CORE.sub("", nfkc(c.name))[:MAX_NAME], names=_names(c), number=c.number if not c.general else None,
                 ministries=_ministries(c.ministry), general=c.general)
        for c in cands
    ]  # fmt: skip
    texts = [_ProfileText(c.id, "候補一覧", ("候補一覧", c.name), f"{c.name}。{'、'.join(c.aliases)}。{c.ministry}。{c.description}") for c in cands]
    index = build_index(texts, domain, encode, lemmatize, source="candidates")
    name_emb = encode([f"{c.name} {' '.join(c.aliases)}" for c in cands])
    drafts = []
    for c in cands:
        if window_index is None or c.general:
            drafts.append(np.zeros(0, dtype=int))
        else:
            drafts.append(np.flatnonzero(np.array(window_index.candidates) == c.id) if len(window_index) else np.zeros(0, dtype=int))
    known: list[np.ndarray | None] = [None] * len(cands)
    if precedent_names is not None:
        pn = np.array([nfkc(x) for x in precedent_names])
        for k, c in enumerate(cands):
            rows = np.flatnonzero(pn == nfkc(c.name))
            known[k] = rows if len(rows) else None
    return CandidateProfiles(profiles, index, np.asarray(name_emb, dtype=np.float32), drafts, window_index, known)


def _longest_shared(text: str, core: str) -> int:
    """Length of the longest substring of ``core`` (2+ characters) found in ``text``."""
    n = len(core)
    if not any(core[i : i + 2] in text for i in range(n - 1)):
        return 0
    for size in range(n, 1, -1):
        for s in range(0, n - size + 1):
            if core[s : s + size] in text:
                return size
    return 0


def _bigram_cover(text: str, core: str) -> float:
    grams = {core[i : i + 2] for i in range(len(core) - 1)}
    return sum(g in text for g in grams) / len(grams) if grams else 0.0


def _number_pattern(p: _Profile) -> re.Pattern | None:
    """A mention of the candidate's id or number, matched on the text as written (NFKC turns 「②」 into 「2」)."""
    alts = [re.escape(p.id)] if re.search(r"\d", p.id) else []
    if p.number is not None:
        n = p.number
        alts += [re.escape(chr(0x2460 + n - 1))] if 1 <= n <= 20 else []
        alts += [rf"候補\s*[{n}{chr(0xFF10 + n) if n < 10 else ''}](?!\d)", rf"(?<![\d０-９]){n}\s*番", rf"No\.?\s*{n}(?!\d)", rf"^[\(（]\s*{n}\s*[\)）]"]
    return re.compile("|".join(alts), re.IGNORECASE) if alts else None


def _gap(m: np.ndarray) -> np.ndarray:
    """Each candidate's score minus the best score among the *other* candidates (stable for short lists)."""
    if m.shape[1] < 2:
        return np.zeros_like(m)
    top2 = -np.sort(-m, axis=1)[:, :2]
    best_other = np.where(m == top2[:, :1], top2[:, 1:2], top2[:, :1])
    return m - best_other


def _known(values: np.ndarray, hide: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """A known-system feature (opinions × candidates, NaN where the system is new) with ``hide``'s cells
    made new, and its margin to the best candidate of the row (NaN where no candidate is known)."""
    values = values.copy()
    if hide is not None:
        values[hide] = np.nan
    with np.errstate(all="ignore"):
        best = np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1, keepdims=True)
    return values, np.where(np.isfinite(best), values - best, np.nan)


def pair_features(profiles: CandidateProfiles, texts: Sequence[str], emb: np.ndarray, sent_emb: Sequence[np.ndarray], precedent_vectors: np.ndarray | None = None,
                  hide_precedent: np.ndarray | None = None, learned: np.ndarray | None = None, learned_names: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """(opinions × candidates × MAPPING_FEATURES). ``sent_emb``: per opinion, its sentences' embeddings.
    ``hide_precedent`` (opinions × candidates, bool): treat those candidates as new systems (training)."""
    written = [str(t or "") for t in texts]
    texts = [nfkc(t) for t in texts]
    n, m = len(texts), len(profiles)
    F = np.full((n, m, len(MAPPING_FEATURES)), np.nan)
    if n == 0 or m == 0:
        return F
    f = {name: j for j, name in enumerate(MAPPING_FEATURES)}
    b = bm25(profiles.index, texts)
    cos = emb @ profiles.index.emb.T
    F[:, :, f["bm25_z"]] = _z(b)
    F[:, :, f["bm25_top"]] = (b == b.max(axis=1, keepdims=True)) & (b > 0)
    F[:, :, f["bm25_gap"]] = _gap(b) / np.maximum(b.max(axis=1, keepdims=True), 1e-9)
    F[:, :, f["cos_z"]] = _z(cos)
    F[:, :, f["cos"]] = cos
    F[:, :, f["cos_gap"]] = _gap(cos)
    sent = np.zeros((n, m))
    pidx = profiles.index
    if len(pidx.sent_owner):
        starts = np.flatnonzero(np.r_[True, pidx.sent_owner[1:] != pidx.sent_owner[:-1]])
        owners = pidx.sent_owner[starts]
        for i, e in enumerate(sent_emb):
            if len(e):
                sent[i, owners] = np.maximum.reduceat((e @ pidx.sent_emb.T).max(axis=0), starts)
    F[:, :, f["sent_z"]] = _z(sent)
    F[:, :, f["sent"]] = sent
    F[:, :, f["sent_gap"]] = _gap(sent)
    F[:, :, f["name_cos_z"]] = _z(emb @ profiles.name_emb.T)
    pats = [_number_pattern(p) for p in profiles.profiles]
    for i, t in enumerate(texts):
        for k, p in enumerate(profiles.profiles):
            F[i, k, f["name_cover"]] = _bigram_cover(t, p.core)
            F[i, k, f["alias_len"]] = min(max((len(a) for a in p.names if a in t), default=0), MAX_NAME) / 10
            F[i, k, f["name_lcs"]] = _longest_shared(t, p.core) / max(min(len(p.core), 10), 1)
            F[i, k, f["number"]] = float(bool(pats[k] and pats[k].search(written[i])))
            F[i, k, f["ministry"]] = float(any(x in t for x in p.ministries))
        F[i, :, f["general_cues"]] = np.log1p(len(GENERAL_CUES.findall(t)))
    general = profiles.general
    F[:, :, f["general"]] = general[None, :]
    spec = ~general
    if spec.any():
        F[:, :, f["max_specific_cover"]] = F[:, spec, f["name_cover"]].max(axis=1, keepdims=True)
        F[:, :, f["cover_gap"]] = _gap(F[:, :, f["name_cover"]])
        F[:, :, f["max_specific_alias"]] = F[:, spec, f["alias_len"]].max(axis=1, keepdims=True)
    wi = profiles.window_index
    if wi is not None and len(wi):
        wb = _z(bm25(wi, texts))
        wc = emb @ wi.emb.T
        for k, rows in enumerate(profiles.drafts):
            if len(rows):
                F[:, k, f["draft_bm25_z"]] = wb[:, rows].max(axis=1)
                F[:, k, f["draft_cos"]] = wc[:, rows].max(axis=1)
    if precedent_vectors is not None and len(precedent_vectors):
        sims = emb @ precedent_vectors.T
        prec = np.full((n, m), np.nan)
        for k, rows in enumerate(profiles.known):
            if rows is not None and len(rows):
                prec[:, k] = sims[:, rows].max(axis=1)
        F[:, :, f["precedent"]], F[:, :, f["precedent_margin"]] = _known(prec, hide_precedent)
    if learned is not None and learned_names is not None:
        col = {nfkc(x): j for j, x in enumerate(learned_names)}
        lp = np.full((n, m), np.nan)
        for k, p in enumerate(profiles.profiles):
            j = col.get(nfkc(p.name))
            if j is not None:
                lp[:, k] = learned[:, j]
        F[:, :, f["learned"]], F[:, :, f["learned_margin"]] = _known(lp, hide_precedent)
    F[:, :, f["log_candidates"]] = np.log(m)
    return F


def list_fit(F: np.ndarray, profiles: CandidateProfiles) -> np.ndarray:
    """(opinions × FIT_COLUMNS): the best description similarity (whole text, best sentence), the best name
    cover over the specific candidates, and the similarity to the cross-cutting entry."""
    f = {name: j for j, name in enumerate(MAPPING_FEATURES)}
    general = profiles.general
    out = np.zeros((F.shape[0], len(FIT_COLUMNS)))
    if F.shape[0] == 0:
        return out
    spec = ~general if (~general).any() else general
    out[:, 0] = F[:, spec, f["cos"]].max(axis=1)
    out[:, 1] = F[:, spec, f["sent"]].max(axis=1)
    out[:, 2] = F[:, spec, f["name_cover"]].max(axis=1)
    out[:, 3] = F[:, general, f["cos"]].max(axis=1) if general.any() else 0.0
    return out


def sentence_embeddings(texts: Sequence[str], encode) -> list[np.ndarray]:
    """Per opinion, the embeddings of its sentences (one batch for all)."""
    sents = [sentences(t)[:12] or [nfkc(t)] for t in texts]
    flat = [s for ss in sents for s in ss]
    e = encode(flat) if flat else np.zeros((0, 512), dtype=np.float32)
    out, pos = [], 0
    for ss in sents:
        out.append(e[pos : pos + len(ss)])
        pos += len(ss)
    return out


class MappingModel:
    """The pair model: does this candidate of the list fit this opinion."""

    def __init__(self, seed: int = 0):
        self.clf = HistGradientBoostingClassifier(max_iter=250, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0, random_state=seed)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "MappingModel":
        X = np.array(X, dtype=np.float64)
        X[:, np.isnan(X).all(axis=0)] = 0.0  # a feature no training pair has (no drafts, no learned systems): constant
        self.clf.fit(X, y)
        return self

    def scores(self, F: np.ndarray) -> np.ndarray:
        """(opinions × candidates) pair logits."""
        n, m, d = F.shape
        if n == 0 or m == 0:
            return np.zeros((n, m))
        return self.clf.decision_function(F.reshape(n * m, d)).reshape(n, m)


def evidence_codes(F_row: np.ndarray, profile: _Profile, text: str, cover_min: float = 0.5) -> list[str]:
    """What tied the opinion to its candidate, as codes ``kind:value`` rendered by explain.py:
    ``name:<the shared part of the name>``, ``number:<id>``, ``ministry:<ministry>``, ``description``,
    ``draft``, ``precedent``, ``general``."""
    f = {name: j for j, name in enumerate(MAPPING_FEATURES)}
    t = nfkc(text)
    out = []
    if profile.general:
        if F_row[f["general_cues"]] > 0:
            out.append("general:" + "・".join(dict.fromkeys(GENERAL_CUES.findall(t)))[:40])
        return out
    alias = max((a for a in profile.names if a in t), key=len, default="")
    if alias:
        out.append(f"name:{alias}")
    elif F_row[f["name_lcs"]] * min(len(profile.core), 10) >= 3:
        size = int(round(F_row[f["name_lcs"]] * max(min(len(profile.core), 10), 1)))
        part = next((profile.core[s : s + size] for s in range(len(profile.core) - size + 1) if profile.core[s : s + size] in t), "")
        if part:
            out.append(f"name:{part}")
    if F_row[f["number"]] > 0:
        out.append(f"number:{profile.id}")
    if F_row[f["ministry"]] > 0:
        out.append("ministry:" + next(x for x in profile.ministries if x in t))
    if F_row[f["bm25_z"]] > 1.5 or F_row[f["cos_z"]] > 1.5:
        out.append("description")
    if not np.isnan(F_row[f["draft_bm25_z"]]) and F_row[f["draft_bm25_z"]] > 2:
        out.append("draft")
    near = not np.isnan(F_row[f["precedent_margin"]]) and F_row[f["precedent_margin"]] >= 0 and F_row[f["precedent"]] > 0.6
    if near or (not np.isnan(F_row[f["learned_margin"]]) and F_row[f["learned_margin"]] >= 0 and F_row[f["learned"]] > 0.5):
        out.append("precedent")
    return out


def softmax_rows(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: Sequence[np.ndarray], gold: Sequence[int]) -> float:
    """The temperature minimising the NLL of the gold candidate, over opinions whose lists may differ in length."""
    from scipy.optimize import minimize_scalar

    def nll(t: float) -> float:
        return float(-np.mean([np.log(max(softmax_rows(s[None, :], t)[0, g], 1e-12)) for s, g in zip(scores, gold)]))

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def hide_masks(n: int, m: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Training copies of the pairs: precedents as they are, hidden for every candidate (a list of new
    systems), hidden for a random half (a list mixing known and new systems)."""
    return [np.zeros((n, m), bool), np.ones((n, m), bool), rng.random((n, m)) < 0.5]
