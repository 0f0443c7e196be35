import numpy as np
import pandas as pd
import pytest

from pipeline.config import DedupeConfig
from pipeline.dedupe import group_duplicates, link_prior, lsh_candidates, minhash_signatures, overlap, shingle_hashes, similar_pairs
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
