import numpy as np
import pandas as pd
import pytest

from pipeline.config import DedupeConfig
from pipeline.dedupe import (
    band_keys,
    group_duplicates,
    is_duplicate,
    jaccard_containment,
    link_prior,
    lsh_candidates,
    minhash_signatures,
    overlap,
    shingle_hashes,
    shingle_matrix,
    shingle_sets,
    similar_pairs,
)
from pipeline.normalize import normalise

BASE = "入札参加資格審査システムの共通化に当たっては、県と市町村が既に実施している共同受付との関係を整理し、移行時に事業者が二重に申請を行う期間が生じないよう配慮されたい。また、業者データを共通システムへ移行できるよう、データ項目の対応表を国において示していただきたい。"


def frame(texts, bodies=None):
    bodies = bodies or [f"団体{i}" for i in range(len(texts))]
    return normalise(pd.DataFrame({"opinion_id": [f"o{i}" for i in range(len(texts))], "text": texts, "reason": "", "body": bodies}))


def test_small_edits_group_together_and_topic_neighbours_do_not():
    texts = [
        BASE,
        BASE.replace("配慮されたい", "配慮願いたい").replace("、", ","),  # punctuation and wording
        BASE + "\n（担当：契約課 TEL 0178-43-1234）",  # officer contact appended
        "ＤＸ" + BASE.replace("また、", "\nまた、") + "特に小規模な町村では影響が大きい。",  # width, line break, sentence added
        "入札参加資格審査システムの共通化に当たっては、県と市町村の共同受付を廃止し、全ての申請を国のシステムに一本化すべきである。共同受付の維持費が重いため。",  # same topic, other request
    ]
    g = group_duplicates(frame(texts), DedupeConfig())
    assert g["dup_group"].iloc[:4].nunique() == 1
    assert g["dup_count"].iloc[0] == 4
    assert g["dup_group"].iloc[4] != g["dup_group"].iloc[0] and g["dup_count"].iloc[4] == 1
    assert g["dup_representative"].iloc[:4].nunique() == 1
    assert g["dup_bodies"].iloc[0] == "団体0、団体1、団体2、団体3"


def test_body_name_edits_are_duplicates():
    a = "八戸市としては、本市の事業者の負担を考慮し、申請項目を最小限にしていただきたい。事業者説明会の開催も求める。"
    b = "弘前市としては、当市の事業者の負担を考慮し、申請項目を最小限にしていただきたい。事業者説明会の開催も求める。"
    g = group_duplicates(frame([a, b], ["青森県八戸市", "青森県弘前市"]), DedupeConfig())
    assert g["dup_count"].tolist() == [2, 2]


def test_rows_are_conserved_and_empty_texts_are_not_grouped():
    g = group_duplicates(frame(["", "", BASE, "短い"]), DedupeConfig())
    assert len(g) == 4 and g["dup_count"].tolist() == [1, 1, 1, 1]
    assert g["dup_group"].is_unique


def test_identical_copies_collapse_before_lsh():
    texts = [BASE] * 300 + ["別の意見です。共通化の費用負担について具体的に示してほしい。"]
    pairs = similar_pairs(frame(texts)["dedupe_key"].tolist(), DedupeConfig())
    assert len(pairs) == 299  # each copy linked to the first, no 300*299/2 all-pairs


def test_minhash_estimates_jaccard():
    a = shingle_hashes("あいうえおかきくけこさしすせそたちつてと" * 3, 3)
    b = shingle_hashes("あいうえおかきくけこさしすせそなにぬねの" * 3, 3)
    sig = minhash_signatures([a, b], 256, seed=3)
    est = (sig[0] == sig[1]).mean()
    assert abs(est - overlap(a, b)[0]) < 0.12


def test_lsh_proposes_similar_not_dissimilar():
    rng = np.random.default_rng(0)
    docs = ["".join(rng.choice(list("あいうえおかきくけこさしすせそたちつてとなにぬねの"), 200)) for _ in range(50)]
    docs.append(docs[0][:190] + "はひふへほ")
    sh = [shingle_hashes(d, 3) for d in docs]
    cands = {tuple(p) for p in lsh_candidates(minhash_signatures(sh, 128, 1), 32).tolist()}
    assert (0, 50) in cands
    assert len(cands) < 50  # far fewer than the 1,275 pairs of all-pairs


def test_link_prior_finds_earlier_window():
    cur = frame([BASE.replace("配慮されたい", "配慮してほしい"), "全く別の新しい意見。選挙結果の報告様式を統一してほしい。"])
    prior = frame([BASE])
    prior["window"] = "R6-candidates"
    prior["category"] = "SHARE"
    out = link_prior(cur, prior, DedupeConfig())
    assert out["prior_opinion_id"].tolist() == ["o0", ""]
    assert out["prior_category"].iloc[0] == "SHARE" and out["prior_similarity"].iloc[0] > 0.6


def test_link_prior_without_prior_adds_empty_columns():
    out = link_prior(frame([BASE]), pd.DataFrame(), DedupeConfig())
    assert out["prior_window"].tolist() == [""]


@pytest.mark.slow
def test_real_corpus_groups_are_small_and_fast():
    """On 2,622 real public comments: no giant chained group (precision guard)."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "shared" / "data" / "bunka-ai-pubcom-2024" / "comments.csv"
    if not src.exists():
        pytest.skip(f"real corpus not found at {src}")
    df = pd.read_csv(src, dtype=str, keep_default_na=False)
    g = group_duplicates(frame(df["comment"].tolist()), DedupeConfig())
    assert len(g) == len(df)
    assert g["dup_count"].max() < 30


# --------------------------------------------------------------------------- scale: vectorised paths and large buckets


def test_shingle_sets_match_one_key_at_a_time():
    keys = ["", "あ", "あい", "あいう", BASE, BASE[:40] + "〇" + BASE[40:], "", "ＤＸ推進"]
    for k in (1, 3, 5):
        indptr, hashes = shingle_sets(keys, k, chunk=3)  # chunk boundaries inside the list too
        assert len(indptr) == len(keys) + 1
        for i, key in enumerate(keys):
            assert np.array_equal(hashes[indptr[i] : indptr[i + 1]], shingle_hashes(key, k))
    assert len(shingle_hashes("", 3)) == 0 and len(shingle_hashes("あ", 3)) == 1


def test_vectorised_verification_equals_pairwise_overlap():
    rng = np.random.default_rng(5)
    keys = ["".join(rng.choice(list("あいうえおかきくけこ"), int(rng.integers(1, 60)))) for _ in range(40)] + [BASE, BASE[:-10], BASE + "特に小規模な町村では影響が大きい"]
    indptr, hashes = shingle_sets(keys, 3)
    x = shingle_matrix(indptr, hashes)
    a, b = np.triu_indices(len(keys), k=1)
    jac, cont, ratio = jaccard_containment(x, a, b)
    sh = [shingle_hashes(k, 3) for k in keys]
    for p in range(len(a)):
        assert (jac[p], cont[p]) == overlap(sh[a[p]], sh[b[p]])  # the same float divisions: exact
        assert ratio[p] == min(len(sh[a[p]]), len(sh[b[p]])) / max(len(sh[a[p]]), len(sh[b[p]]))
    assert bool(is_duplicate(jac[-1], cont[-1], ratio[-1], DedupeConfig()))  # BASE[:-10] vs BASE + sentence


def test_representative_is_the_weighted_medoid():
    """The text with two identical copies outweighs its variants: score = copies − 1 + Σ Jaccard × copies."""
    texts = [BASE + "特に小規模な町村では影響が大きい。", BASE, BASE, BASE.replace("配慮されたい", "配慮願いたい")]
    g = group_duplicates(frame(texts + ["全く別の新しい意見。選挙結果の報告様式を統一してほしい。"]), DedupeConfig())
    assert g["dup_count"].iloc[:4].tolist() == [4, 4, 4, 4]
    assert g["dup_representative"].iloc[0] == "o1"  # the text with two copies, its first copy
    assert g["dup_similarity"].iloc[1] == 1.0


def _families_in_one_bucket(family_size: int = 80, num_perm: int = 128, bands: int = 32):
    """Signatures of two families of near-copies (3 of 128 rows changed per copy) that agree on band 0,
    after 64 'stock phrase' texts placed first, each sharing one band with one family and a duplicate of
    nothing: every family bucket is above 64 members and led by a stock phrase."""
    rng = np.random.default_rng(7)
    rows = num_perm // bands
    base = {f: rng.integers(0, 2**32 - 1, num_perm, dtype=np.uint32) for f in "AB"}
    base["B"][:rows] = base["A"][:rows]
    sigs, label = [], []
    for f in "AB":
        for bnd in range(bands):
            s = rng.integers(0, 2**32 - 1, num_perm, dtype=np.uint32)
            s[bnd * rows : (bnd + 1) * rows] = base[f][bnd * rows : (bnd + 1) * rows]
            sigs.append(s)
            label.append(f"stock-{f}{bnd}")
    copies = []
    for f in "AB":
        for _ in range(family_size):
            s = base[f].copy()
            s[rng.choice(num_perm, 3, replace=False)] = rng.integers(0, 2**32 - 1, 3, dtype=np.uint32)
            copies.append((s, f))
    for i in rng.permutation(len(copies)):  # the two families interleaved, as files arrive
        sigs.append(copies[i][0])
        label.append(copies[i][1])
    return np.array(sigs), np.array(label)


def test_large_bucket_keeps_each_family_whole_and_apart():
    """A bucket > 64 whose first member duplicates none of the others (the former star around it proposed
    no pair of the families at all) and which holds two families: each family is still joined."""
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components

    sig, label = _families_in_one_bucket()
    keys = band_keys(sig, 32)
    for f in "AB":  # the situation: every bucket of the family's own band values is large and led by a stock text
        for bnd in range(32):
            values, counts = np.unique(keys[label == f, bnd], return_counts=True)
            members = np.flatnonzero(keys[:, bnd] == values[np.argmax(counts)])
            if f == "A" and bnd == 0:
                assert {"A", "B"} <= set(label[members])
            assert len(members) > 64 and label[members[0]].startswith("stock")
    cands = lsh_candidates(sig, 32)
    assert len(cands) <= 32 * len(sig) * 64  # the documented bound
    same = (label[cands[:, 0]] == label[cands[:, 1]]) & np.isin(label[cands[:, 0]], ["A", "B"])  # exact verification
    verified = cands[same]
    n, comp = connected_components(coo_array((np.ones(len(verified)), (verified[:, 0], verified[:, 1])), shape=(len(sig), len(sig))), directed=False)
    for f in "AB":
        rows = np.flatnonzero(label == f)
        assert len(set(comp[rows])) == 1, f"family {f} split into {len(set(comp[rows]))} parts"
    assert comp[label == "A"][0] != comp[label == "B"][0]


TAIL_A = "特に、電子入札システムとの連携方式については早期に仕様を公開し、市町村の改修費用に対する財政措置を講じていただきたい。"
TAIL_B = "なお、審査基準の統一に当たっては、地域要件や等級区分など各団体が独自に設けている項目の扱いを十分に協議してほしい。"


def test_two_real_families_sharing_a_large_bucket_stay_two_groups():
    """Two re-sent drafts sharing their first paragraph (Jaccard 0.55: not duplicates) with 70 edited copies
    each fall into one LSH bucket of over 64 texts; the groups are exactly the two families."""
    rng = np.random.default_rng(3)
    marks = [chr(0x4E00 + 37 * i) + chr(0x4E01 + 37 * i) for i in range(140)]  # a distinct word per copy
    texts, family = [], []
    for i in rng.permutation(140):
        base, tail = (BASE, TAIL_A) if i < 70 else (BASE, TAIL_B)
        at = int(rng.integers(5, len(tail) - 5))
        texts.append(base + tail[:at] + marks[i] + tail[at:])
        family.append("A" if i < 70 else "B")
    f = frame(texts)
    cfg = DedupeConfig()
    sig = minhash_signatures([shingle_hashes(k, cfg.shingle) for k in f["dedupe_key"]], cfg.num_perm, cfg.seed)
    keys = band_keys(sig, cfg.bands)
    family = np.array(family)
    mixed = [(bnd, v) for bnd in range(cfg.bands) for v, c in zip(*np.unique(keys[:, bnd], return_counts=True)) if c > 64 and {"A", "B"} <= set(family[keys[:, bnd] == v])]
    assert mixed, "the two families should share a bucket of more than 64"
    g = group_duplicates(f, cfg)
    assert g.loc[family == "A", "dup_group"].nunique() == 1 and g.loc[family == "B", "dup_group"].nunique() == 1
    assert g.loc[family == "A", "dup_group"].iloc[0] != g.loc[family == "B", "dup_group"].iloc[0]
    assert g["dup_count"].tolist() == [70] * 140
