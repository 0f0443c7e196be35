"""Dedupe: group the opinions several bodies sent with the same wording (a prefecture's draft re-sent by
its municipalities, with the body's name, punctuation, 全角/半角 or a sentence changed).

Method (chosen on the labelled duplicates, see docs/decisions/0002-dedupe-minhash-lsh.md):
1. ``dedupe_key`` (normalize.py) removes what bodies change when they re-send a text;
2. identical keys collapse first, so 1,000 copies of one text cost one comparison;
3. character k-gram shingles → MinHash signatures (vectorised numpy) → LSH banding proposes candidate
   pairs without comparing all pairs (a bucket too large for all its pairs: ``lsh_candidates``);
4. every candidate is verified exactly (Jaccard, and containment for a sentence added/removed), all
   candidates at once on a sparse texts × shingles matrix;
5. verified pairs are joined into groups (connected components); the representative is the medoid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from pipeline.config import DedupeConfig

_MASK32 = np.uint64(0xFFFFFFFF)


# --------------------------------------------------------------------------- shingles and MinHash


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """``np.unique`` of an integer array by one sort (numpy 2.4's np.unique hashes first, several times
    slower on the millions of shingles and candidate codes here)."""
    a = np.sort(a)
    return np.delete(a, np.flatnonzero(a[1:] == a[:-1]) + 1)


def shingle_sets(keys: Sequence[str], k: int, chunk: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
    """The sorted unique 32-bit hashes of the character k-grams of each key, all keys at once, as CSR
    parts ``(indptr, hashes)``: key i's set is ``hashes[indptr[i]:indptr[i + 1]]``. A key shorter than k
    is padded with code point 0 (one shingle); an empty key has none."""
    indptr, parts = [np.zeros(1, dtype=np.int64)], []
    for start in range(0, len(keys), chunk):
        part = [key + "\0" * (k - len(key)) if key else "" for key in keys[start : start + chunk]]
        ends = np.cumsum([len(key) for key in part])
        cps = np.frombuffer("".join(part).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        width = max(len(cps) - k + 1, 0)
        h = np.zeros(width, dtype=np.uint64)
        for i in range(k):  # polynomial hash of each window, wrapping mod 2^64, folded to 32 bits
            h = h * np.uint64(1_000_003) + cps[i : i + width]
        row = np.searchsorted(ends, np.arange(width), side="right")  # the key each window starts in
        inside = np.arange(width) + k <= np.append(ends, 0)[row]  # windows that do not run into the next key
        h = (h[inside] ^ (h[inside] >> np.uint64(29))) & _MASK32
        code = _sorted_unique((row[inside].astype(np.uint64) << np.uint64(32)) | h)  # by key, then hash
        indptr.append(indptr[-1][-1] + np.cumsum(np.bincount((code >> np.uint64(32)).astype(np.int64), minlength=len(part))))
        parts.append(code & _MASK32)
    return np.concatenate(indptr), (np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64))


def shingle_hashes(key: str, k: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the character k-grams of ``key`` (one shingle for a shorter key)."""
    return shingle_sets([key], k)[1]


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


def band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """(n, bands) uint64: one hash per LSH band of ``sig`` (rows sharing a key agree on the band's rows)."""
    rows = sig.shape[1] // bands
    mult = np.random.default_rng(12345).integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    keys = np.empty((len(sig), bands), dtype=np.uint64)
    for bnd in range(bands):
        keys[:, bnd] = (sig[:, bnd * rows : (bnd + 1) * rows].astype(np.uint64) * mult).sum(axis=1)  # wraps mod 2^64
    return keys


def _band_pairs(keys: np.ndarray, sig: np.ndarray, bnd: int, max_bucket: int, window: int) -> np.ndarray:
    """Candidate pairs of one band: all pairs of a bucket of at most ``max_bucket`` members; in a larger
    bucket, each member with the next ``window`` members in the order of the signature columns that
    follow the band (so members agreeing beyond the band, i.e. one family, sit side by side)."""
    order = np.argsort(keys[:, bnd], kind="stable")
    sk = keys[order, bnd]
    starts = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]]))
    sizes = np.diff(np.append(starts, len(sk)))
    bucket = np.repeat(np.arange(len(starts)), sizes)
    end = (starts + sizes)[bucket]
    large = np.flatnonzero(sizes[bucket] > max_bucket)
    pairs = []
    if len(large):
        head = starts[bucket[large]]  # the bucket's first member (lowest index): the former star, kept
        pairs.append(np.stack([order[head], order[large]], axis=1)[head != large])
        rows = sig.shape[1] // keys.shape[1]
        cols = [((bnd + 1) * rows + c) % sig.shape[1] for c in range(2 * rows)]  # the next two bands' rows
        members = order[large]
        order[large] = members[np.lexsort([sig[members, c] for c in reversed(cols)] + [bucket[large]])]
    reach = end - np.arange(len(sk)) - 1
    reach[large] = np.minimum(reach[large], window)
    pos = np.flatnonzero(reach > 0)
    for d in range(1, int(reach.max(initial=0)) + 1):
        pos = pos[reach[pos] >= d]
        pairs.append(np.stack([order[pos], order[pos + d]], axis=1))
    return np.concatenate(pairs) if pairs else np.empty((0, 2), dtype=np.int64)


def lsh_candidates(sig: np.ndarray, bands: int, max_bucket: int = 64, window: int = 8) -> np.ndarray:
    """Candidate pairs (i < j, sorted, unique) sharing at least one band.

    A bucket of more than ``max_bucket`` members (a template re-sent by hundreds of bodies, or texts
    sharing a stock sentence) is not expanded to all its pairs. Its members are sorted by the signature
    rows of the next two bands and each is paired with its ``window`` followers in that order, plus with
    the bucket's first member (the former star, so no pair found before is lost). Copies of one text
    agree on most rows, so a family forms runs in that order and each run is chained by candidates that
    verification keeps; two families in one bucket form separate runs, and the few pairs across a
    boundary fail verification. The star alone lost every pair without the first member: when that
    member duplicates none of the others (a stock phrase both families quote), a whole family.
    Bound: each member proposes at most ``max(max_bucket - 1, window + 1)`` pairs per band, so at most
    ``bands * n * max(max_bucket - 1, window + 1)`` candidates in all (before de-duplication)."""
    n = len(sig)
    valid = np.flatnonzero(sig[:, 0] != np.iinfo(np.uint32).max) if n else np.empty(0, dtype=np.int64)
    if len(valid) < 2:
        return np.empty((0, 2), dtype=np.int64)
    vsig = sig[valid]
    keys = band_keys(vsig, bands)
    codes = []
    for bnd in range(bands):
        p = valid[_band_pairs(keys, vsig, bnd, max_bucket, window)]
        lo, hi = p.min(axis=1), p.max(axis=1)
        codes.append(lo.astype(np.int64) * n + hi)
    code = _sorted_unique(np.concatenate(codes))
    return np.stack([code // n, code % n], axis=1)


# --------------------------------------------------------------------------- verification


def overlap(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(Jaccard, containment of the smaller set in the larger) of two sorted unique hash arrays."""
    if len(a) == 0 or len(b) == 0:
        return 0.0, 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter), inter / min(len(a), len(b))


def is_duplicate(jaccard, containment, size_ratio, cfg: DedupeConfig):
    """Small edits keep Jaccard high; a sentence added or dropped keeps containment high instead.
    Works on floats and, elementwise, on arrays."""
    return (jaccard >= cfg.threshold) | ((containment >= cfg.containment) & (size_ratio >= cfg.min_size_ratio))


def shingle_matrix(indptr: np.ndarray, hashes: np.ndarray) -> sparse.csr_array:
    """Binary (keys × 2^32) matrix of ``shingle_sets``: the 32-bit hashes are the column numbers as they
    are, no renumbering needed (rows' columns are sorted and unique; sparse products never allocate per
    column). Shares the hashes' memory."""
    return sparse.csr_array((np.ones(len(hashes), dtype=np.int8), hashes.view(np.int64), indptr), shape=(len(indptr) - 1, 2**32))


def intersections(x: sparse.csr_array, a: np.ndarray, b: np.ndarray, budget: int = 8_000_000) -> np.ndarray:
    """|row a ∩ row b| of a binary CSR matrix for each pair, in chunks of about ``budget`` stored entries
    (the elementwise product of two binary rows stores exactly their common columns)."""
    out = np.zeros(len(a), dtype=np.int64)
    nnz = np.diff(x.indptr)
    cum = np.cumsum(nnz[a] + nnz[b])
    cuts = np.searchsorted(cum, np.arange(budget, cum[-1] if len(cum) else 0, budget), side="right")
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(a)]])):
        if hi > lo:
            out[lo:hi] = np.diff(x[a[lo:hi]].multiply(x[b[lo:hi]]).indptr)
    return out


def jaccard_containment(x: sparse.csr_array, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Jaccard, containment, size ratio) of the pairs of rows (a, b) of ``x``: ``overlap`` pair by pair
    (the same float divisions), all pairs at once."""
    sizes = np.diff(x.indptr)
    sa, sb, inter = sizes[a], sizes[b], intersections(x, a, b)
    small, big = np.minimum(sa, sb), np.maximum(sa, sb)
    ratio = lambda num, den: np.divide(num, den, out=np.zeros(len(num)), where=small > 0)  # noqa: E731  (empty set: 0, as overlap)
    return ratio(inter, sa + sb - inter), ratio(inter, small), ratio(small, big)


def _first_occurrence(keys: Sequence[str]) -> np.ndarray:
    """For each key, the index of the first key equal to it (empty keys point at themselves). A dict,
    not pd.factorize: that caches a UTF-8 copy inside every non-ASCII str (160 MB at 200k opinions)."""
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(k, i) if k else i for i, k in enumerate(keys)], dtype=np.int64)


def _verified(keys: Sequence[str], cfg: DedupeConfig) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, sparse.csr_array]:
    """``similar_pairs`` with what it computed on the way: (pairs, first occurrence of each key, the
    distinct non-empty keys' rows ``reps``, their shingle matrix in the order of ``reps``)."""
    keys = list(keys)
    first = _first_occurrence(keys)
    nonempty = np.array([bool(k) for k in keys], dtype=bool)
    own = first == np.arange(len(keys))
    copies, reps = np.flatnonzero(nonempty & ~own), np.flatnonzero(nonempty & own)
    indptr, hashes = shingle_sets([keys[r] for r in reps], cfg.shingle)
    x = shingle_matrix(indptr, hashes)
    i, j, jac, cont = [first[copies]], [copies], [np.ones(len(copies))], [np.ones(len(copies))]  # identical keys: each copy with the first
    if len(reps) >= 2:
        sig = minhash_signatures(np.split(hashes, indptr[1:-1]), cfg.num_perm, cfg.seed)
        cand = lsh_candidates(sig, cfg.bands)
        pj, pc, ratio = jaccard_containment(x, cand[:, 0], cand[:, 1])
        ok = is_duplicate(pj, pc, ratio, cfg)
        i, j, jac, cont = i + [reps[cand[ok, 0]]], j + [reps[cand[ok, 1]]], jac + [pj[ok]], cont + [pc[ok]]
    pairs = pd.DataFrame({"i": np.concatenate(i).astype(np.int64), "j": np.concatenate(j).astype(np.int64), "jaccard": np.concatenate(jac), "containment": np.concatenate(cont)})
    return pairs, first, reps, x


def similar_pairs(keys: Sequence[str], cfg: DedupeConfig) -> pd.DataFrame:
    """Verified duplicate pairs among ``keys`` (indexes into keys), with their Jaccard and containment:
    each copy of an identical key with its first occurrence, then the LSH candidates that pass
    ``is_duplicate``, in (i, j) order."""
    return _verified(keys, cfg)[0]


# --------------------------------------------------------------------------- groups


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Group number (0, 1, …) of each of ``n`` rows joined by the pairs (i, j), numbered in the order of
    each group's first row (so members listed by row are in row order, as before)."""
    graph = sparse.coo_array((np.ones(len(i), dtype=np.int8), (np.asarray(i), np.asarray(j))), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels]


def medoids(group: np.ndarray, first: np.ndarray, reps: np.ndarray, x: sparse.csr_array, max_distinct: int = 50) -> np.ndarray:
    """The representative row of each group: the distinct text most similar to the others, each
    text's similarity to another weighted by that text's number of identical copies (score = own
    copies − 1 + Σ Jaccard × copies), ties to the earliest row; a group of one distinct text, or of more
    than ``max_distinct``, takes its first row. ``group``/``first`` per row, ``x`` rows in ``reps`` order."""
    n_groups = int(group.max(initial=-1)) + 1
    best = np.full(n_groups, len(group), dtype=np.int64)
    np.minimum.at(best, group, np.arange(len(group)))  # each group's first row
    distinct = np.flatnonzero(first == np.arange(len(group)))
    per_group = np.bincount(group[distinct], minlength=n_groups)
    d = distinct[(per_group[group[distinct]] > 1) & (per_group[group[distinct]] <= max_distinct) & np.isin(distinct, reps)]
    if not len(d):
        return best
    d = d[np.argsort(group[d], kind="stable")]  # by group, rows ascending within it
    new_group = np.diff(np.append(-1, group[d])) != 0
    start = np.flatnonzero(new_group)[np.cumsum(new_group) - 1]  # where each text's group starts in d
    size = per_group[group[d]]
    # every ordered pair (p, q) of distinct texts of a group, p-major and q ascending, as the old loop summed
    p = np.repeat(np.arange(len(d)), size)
    q = np.repeat(start, size) + np.arange(len(p)) - np.repeat(np.cumsum(size) - size, size)
    p, q = p[p != q], q[p != q]
    copies = np.bincount(first, minlength=len(group))
    row = np.searchsorted(reps, d)
    jac = jaccard_containment(x, row[p], row[q])[0]
    score = np.zeros(len(d))
    np.add.at(score, p, jac * copies[d[q]])  # sequential, in pair order: the same float sum as before
    score = (copies[d] - 1) + score
    pick = np.lexsort((d, -score, group[d]))
    heads = pick[np.flatnonzero(np.diff(np.append(-1, group[d][pick])))]
    best[group[d[heads]]] = d[heads]
    return best


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
    pairs, first, reps, x = _verified(keys, cfg)
    pi, pj, sim = pairs["i"].to_numpy(), pairs["j"].to_numpy(), pairs["jaccard"].to_numpy()
    group = components(n, pi, pj)
    rep = medoids(group, first, reps, x)
    best_sim = np.zeros(n)
    np.maximum.at(best_sim, pi, sim)
    np.maximum.at(best_sim, pj, sim)
    ids = opinions["opinion_id"].tolist()
    bodies = pd.DataFrame({"g": group, "b": opinions["body"].fillna("").to_numpy()})
    bodies = bodies[bodies["b"] != ""].drop_duplicates()  # each body once per group, in row order
    names = bodies.groupby("g", sort=True)["b"].agg("、".join).reindex(range(len(rep)), fill_value="")
    gkey = [group_key(keys[r], str(ids[r])) for r in rep]
    out = opinions.copy()
    out["dup_group"] = [f"G{g + 1:05d}" for g in group]
    out["dup_key"] = [gkey[g] for g in group]
    out["dup_representative"] = [ids[rep[g]] for g in group]
    out["dup_count"] = np.bincount(group, minlength=len(rep))[group] if n else np.empty(0, dtype=np.int64)
    out["dup_bodies"] = names.to_numpy()[group].tolist() if n else []
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
