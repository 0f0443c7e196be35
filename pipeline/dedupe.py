"""Dedupe: group the opinions several bodies sent with the same wording (a prefecture's draft re-sent by
its municipalities, with the body's name, punctuation, 全角/半角 or a sentence changed).

Method (chosen on the labelled duplicates, see docs/decisions/0002-dedupe-minhash.md):
1. ``dedupe_key`` (normalize.py) removes what bodies change when they re-send a text;
2. identical keys collapse first, so 1,000 copies of one text cost one comparison;
3. character k-gram shingles → MinHash signatures (vectorised numpy) → LSH banding proposes candidate
   pairs without comparing all pairs;
4. every candidate is verified exactly (Jaccard, and containment for a sentence added/removed);
5. verified pairs are joined by union-find into groups; the representative is the group's medoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import DedupeConfig

_MASK32 = np.uint64(0xFFFFFFFF)


# --------------------------------------------------------------------------- shingles and MinHash


def shingle_hashes(key: str, k: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the character k-grams of ``key`` (one shingle for a shorter key)."""
    if not key:
        return np.empty(0, dtype=np.uint64)
    cps = np.frombuffer(key.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cps) < k:
        cps = np.concatenate([cps, np.zeros(k - len(cps), dtype=np.uint64)])
    h = np.zeros(len(cps) - k + 1, dtype=np.uint64)
    for i in range(k):  # polynomial hash of each window, wrapping mod 2^64, folded to 32 bits
        h = h * np.uint64(1_000_003) + cps[i : len(cps) - k + 1 + i]
    return np.unique((h ^ (h >> np.uint64(29))) & _MASK32)


def minhash_signatures(shingles: Sequence[np.ndarray], num_perm: int, seed: int, chunk: int = 20_000) -> np.ndarray:
    """(n, num_perm) MinHash signatures with multiply-shift hashing; empty sets get all-max rows."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.full((len(shingles), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    for start in range(0, len(shingles), chunk):
        part = shingles[start : start + chunk]
        sizes = np.array([len(s) for s in part])
        nonempty = np.flatnonzero(sizes)
        if len(nonempty) == 0:
            continue
        flat = np.concatenate([part[i] for i in nonempty])
        offsets = np.concatenate([[0], np.cumsum(sizes[nonempty])[:-1]])
        for p in range(num_perm):
            v = ((a[p] * flat + b[p]) >> np.uint64(32)).astype(np.uint32)
            sig[start + nonempty, p] = np.minimum.reduceat(v, offsets)
    return sig


def lsh_candidates(sig: np.ndarray, bands: int, max_bucket: int = 64) -> np.ndarray:
    """Candidate pairs (i < j) sharing at least one band; a bucket larger than ``max_bucket`` is
    joined as a star around its first member instead of all its pairs."""
    n, num_perm = sig.shape
    rows = num_perm // bands
    pairs: list[np.ndarray] = []
    valid = sig[:, 0] != np.iinfo(np.uint32).max
    idx_all = np.flatnonzero(valid)
    if len(idx_all) < 2:
        return np.empty((0, 2), dtype=np.int64)
    mult = np.random.default_rng(12345).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    for bnd in range(bands):
        block = sig[idx_all, bnd * rows : (bnd + 1) * rows].astype(np.uint64)
        keys = (block * mult).sum(axis=1)  # wraps mod 2^64: a hash of the band
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
        ends = np.concatenate([starts[1:], [len(sk)]])
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            members = idx_all[order[s:e]]
            if len(members) > max_bucket:
                pairs.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
            else:
                i, j = np.triu_indices(len(members), k=1)
                pairs.append(np.stack([members[i], members[j]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    allp = np.sort(np.concatenate(pairs), axis=1)
    return np.unique(allp, axis=0)


# --------------------------------------------------------------------------- verification


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Jaccard, containment of the smaller set in the larger) of two sorted unique hash arrays."""
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter), inter / min(len(a), len(b))


def is_duplicate(jaccard: float, containment: float, size_ratio: float, cfg: DedupeConfig) -> bool:
    """Small edits keep Jaccard high; a sentence added or dropped keeps containment high instead."""
    return jaccard >= cfg.threshold or (containment >= cfg.containment and size_ratio >= cfg.min_size_ratio)


def similar_pairs(keys: Sequence[str], cfg: DedupeConfig) -> pd.DataFrame:
    """Verified duplicate pairs among ``keys`` (indexes into keys), with their Jaccard and containment."""
    keys = list(keys)
    uniq: dict[str, int] = {}
    first_of = np.array([uniq.setdefault(k, i) if k else -1 for i, k in enumerate(keys)])
    reps = np.array(sorted(set(first_of[first_of >= 0])), dtype=np.int64)
    out = []
    # identical non-empty keys are duplicates of their first occurrence
    for i in np.flatnonzero((first_of >= 0) & (first_of != np.arange(len(keys)))):
        out.append((int(first_of[i]), int(i), 1.0, 1.0))
    if len(reps) >= 2:
        sh = [shingle_hashes(keys[i], cfg.shingle) for i in reps]
        sig = minhash_signatures(sh, cfg.num_perm, cfg.seed)
        for a, b in lsh_candidates(sig, cfg.bands):
            j, c = overlap(sh[a], sh[b])
            ratio = min(len(sh[a]), len(sh[b])) / max(len(sh[a]), len(sh[b]))
            if is_duplicate(j, c, ratio, cfg):
                out.append((int(reps[a]), int(reps[b]), j, c))
    return pd.DataFrame(out, columns=["i", "j", "jaccard", "containment"])


# --------------------------------------------------------------------------- groups


@dataclass
class _UnionFind:
    parent: np.ndarray

    @classmethod
    def of(cls, n: int) -> "_UnionFind":
        return cls(np.arange(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _medoid(members: list[int], keys: Sequence[str], k: int) -> int:
    """The member most similar to the others (identical copies count once each, weighted by number);
    ties go to the earliest member. Groups of more than 50 distinct texts take the first member."""
    distinct: dict[str, list[int]] = {}
    for m in members:
        distinct.setdefault(keys[m], []).append(m)
    if len(distinct) == 1 or len(distinct) > 50:
        return members[0]
    sh = {key: shingle_hashes(key, k) for key in distinct}
    score = {key: (len(ms) - 1) + sum(overlap(sh[key], sh[o])[0] * len(distinct[o]) for o in distinct if o != key) for key, ms in distinct.items()}
    best = max(distinct, key=lambda key: (score[key], -distinct[key][0]))
    return distinct[best][0]


def group_key(representative_key: str, representative_id: str) -> str:
    """A duplicate group's key that stays the same when the window is re-run: a short hash of the
    representative's matching key (its text with the body's name, punctuation and contacts removed).

    Group numbers (``dup_group``) are renumbered every run, and the representative's *id* changes when
    that copy is withdrawn or a file is renumbered; the representative's *text* survives both as long as
    one copy is left, and two groups never share it (identical keys always fall into one group). An
    opinion with an empty key (empty text) is a group of its own, keyed by its id."""
    import hashlib

    basis = f"text:{representative_key}" if representative_key else f"id:{representative_id}"
    return "K" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:12]


def group_duplicates(opinions: pd.DataFrame, cfg: DedupeConfig) -> pd.DataFrame:
    """Add dup_group, dup_key, dup_representative, dup_count, dup_bodies, dup_similarity. Every row gets a
    group (a singleton is a group of one); rows are neither added nor removed. ``dup_group`` numbers the
    groups of this run; ``dup_key`` (``group_key``) names the same group across re-runs."""
    keys = opinions["dedupe_key"].tolist()
    n = len(keys)
    pairs = similar_pairs(keys, cfg)
    uf = _UnionFind.of(n)
    for i, j in zip(pairs["i"], pairs["j"]):
        uf.union(int(i), int(j))
    roots = [uf.find(i) for i in range(n)]
    best_sim = np.zeros(n)
    for i, j, s in zip(pairs["i"], pairs["j"], pairs["jaccard"]):
        best_sim[i] = max(best_sim[i], s)
        best_sim[j] = max(best_sim[j], s)
    members: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        members.setdefault(r, []).append(i)
    ids = opinions["opinion_id"].tolist()
    bodies = opinions["body"].fillna("").tolist()
    group_of = [""] * n
    key_of = [""] * n
    rep_of = [""] * n
    count_of = [0] * n
    bodies_of = [""] * n
    for g, (root, mem) in enumerate(sorted(members.items(), key=lambda kv: kv[1][0]), start=1):
        rep = _medoid(mem, keys, cfg.shingle)
        names = list(dict.fromkeys(b for b in (bodies[m] for m in mem) if b))
        gkey = group_key(keys[rep], str(ids[rep]))
        for m in mem:
            group_of[m] = f"G{g:05d}"
            key_of[m] = gkey
            rep_of[m] = ids[rep]
            count_of[m] = len(mem)
            bodies_of[m] = "、".join(names)
    out = opinions.copy()
    out["dup_group"] = group_of
    out["dup_key"] = key_of
    out["dup_representative"] = rep_of
    out["dup_count"] = count_of
    out["dup_bodies"] = bodies_of
    out["dup_similarity"] = np.round(best_sim, 3)
    return out


def link_prior(opinions: pd.DataFrame, prior: pd.DataFrame, cfg: DedupeConfig) -> pd.DataFrame:
    """Link each opinion to its closest near-identical opinion in earlier windows' outputs.

    ``prior`` holds earlier windows' rows with window, opinion_id, category and dedupe_key. Adds
    prior_window, prior_opinion_id, prior_category, prior_similarity (empty where there is none).
    """
    out = opinions.copy()
    for c in ("prior_window", "prior_opinion_id", "prior_category"):
        out[c] = ""
    out["prior_similarity"] = 0.0
    if prior.empty or out.empty:
        return out
    n = len(out)
    keys = out["dedupe_key"].tolist() + prior["dedupe_key"].fillna("").tolist()
    pairs = similar_pairs(keys, cfg)
    cross = pairs[(pairs["i"] < n) != (pairs["j"] < n)]
    # identical keys inside the current window point at their first occurrence only; spread links to all copies
    best: dict[int, tuple[float, int]] = {}
    for i, j, s in zip(cross["i"], cross["j"], cross["jaccard"]):
        cur, old = (i, j) if i < n else (j, i)
        if s > best.get(cur, (-1.0, -1))[0]:
            best[cur] = (s, old - n)
    same = out["dedupe_key"].tolist()
    by_key: dict[str, tuple[float, int]] = {}
    for cur, v in best.items():
        by_key.setdefault(same[cur], v)
    for cur in range(n):
        hit = best.get(cur) or by_key.get(same[cur]) if same[cur] else None
        if hit is None:
            continue
        s, old = hit
        row = prior.iloc[old]
        out.iat[cur, out.columns.get_loc("prior_window")] = row["window"]
        out.iat[cur, out.columns.get_loc("prior_opinion_id")] = row["opinion_id"]
        out.iat[cur, out.columns.get_loc("prior_category")] = row.get("category", "")
        out.iat[cur, out.columns.get_loc("prior_similarity")] = round(float(s), 3)
    return out
