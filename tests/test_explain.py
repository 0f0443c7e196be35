"""explain.render: the reasons a WT member reads, written from the structured columns."""

import re

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.explain import SEP, decisive_phrases, evidence_phrase, flowchart_sentence, passage_label, phrase_at, render, top_cues

ORG = "本町では令和9年3月まで現行システムの保守契約が残っているため、それまでは移行できない。"
CUE_SELF = "cue:団体自身への言及（本市・当町など）:+"
CUE_REQUEST_ABSENT = "cue:要望の表現（〜すべき・〜されたい・〜してほしい）:-"


def _row(**kw) -> dict:
    base = {
        "opinion_id": "1", "text": ORG, "reason": "", "category": "ORG_SPECIFIC", "category_confidence": 0.83, "runner_up": "PRECONDITION",
        "runner_up_confidence": 0.1, "prediction_set": "ORG_SPECIFIC", "category_evidence": "", "precedent_ids": "", "observations": "",
        "candidate_id": "C00", "candidate_confidence": 0.7, "stated_id": "", "candidate_evidence": "", "review_codes": "",
        "resolved_by": "", "resolved_quote": "", "addressed_suggestion": "", "nearest_passage": "", "nearest_quote": "",
    }  # fmt: skip
    base.update(kw)
    return base


def _at(text: str, fragment: str) -> tuple[int, int]:
    i = text.find(fragment)
    assert i >= 0
    return i, i + len(fragment)


@pytest.mark.parametrize(
    "fragment, phrase",
    [
        ("町で", "本町"),  # a character n-gram becomes the word it is part of, without its particle
        ("約が残", "保守契約が残っているため"),  # compound noun, the verb in its て-form with いる, the formal noun
        ("ている", "残っているため"),  # a fragment of function words: the words around it
        ("移行で", "移行できない"),  # サ変 noun + できる, the negation kept
    ],
)
def test_an_ngram_hit_is_widened_to_whole_words(fragment, phrase):
    assert phrase_at(ORG, *_at(ORG, fragment)) == phrase


def test_a_hit_that_is_only_a_particle_keeps_it():
    text = "事業者の負担が大きいので、標準化してほしい。"
    assert phrase_at(text, *_at(text, "ので")) == "大きいので"


def test_widened_phrases_are_shown_once_and_with_what_they_mean():
    codes = ["text:町で", "text:本町", CUE_SELF, "text:契約", "struct:reason_empty:+"]
    assert decisive_phrases(codes, ORG, "", k=5) == ["「本町」（団体自身への言及）", "「保守契約」", "理由欄が空欄"]


def test_evidence_not_in_this_opinion_is_not_shown():
    assert evidence_phrase("text:ガバメント", ORG, "") == ""
    assert evidence_phrase("word:標準化", ORG, "") == ""
    assert evidence_phrase("emb__12", ORG, "") == ""


def test_an_absent_cue_says_so_and_a_weak_one_says_it_is_rare():
    assert evidence_phrase(CUE_REQUEST_ABSENT, ORG, "") == "要望の表現（〜すべき・〜されたい・〜してほしい）が見られない"
    assert evidence_phrase(CUE_REQUEST_ABSENT, "標準化を求める。", "").endswith("が少ない")


def test_reason_column_phrases_are_marked_as_such():
    assert evidence_phrase("reason:苦情", "審査項目を統一してほしい。", "事業者からの苦情が多いため。") == "理由欄の「苦情」"


def test_length_cues_give_the_count_not_a_logarithm():
    assert evidence_phrase("struct:text_length:-", "短い。", "") == "意見の分量が少ない（3字）"
    assert evidence_phrase("struct:reason_length:-", "短い。", "") == "理由欄が空欄"


@pytest.mark.parametrize(
    "category, rule",
    [("OUT_OF_SCOPE", "最初の問い ①射程外"), ("ORG_SPECIFIC", "①・②には当たらず、③団体固有の事情"), ("ABSTRACT", "①〜③には当たらず、④抽象的なもの"), ("RESOLVED", "①には当たらず、②解決済"), ("SHARE", "①〜⑥のいずれにも当たらないため ⑦共有すべきもの")],
)
def test_the_flowchart_question_that_decided_is_named(category, rule):
    assert rule in flowchart_sentence(category)


def test_category_reason_reads_like_an_analyst_wrote_it(domain):
    precedents = pd.DataFrame({"opinion_id": ["W3-0142", "W1-0007"], "text": ["本市は令和10年まで保守契約が残るため、共通SaaSへの移行はその後とする。担当：情報政策課 佐藤花子 03-1234-5678", "別の意見"], "category": ["ORG_SPECIFIC", "SHARE"]})
    row = _row(category_evidence=SEP.join(["text:町で", "emb__3", CUE_SELF, "text:約が残"]), precedent_ids="W3-0142|W9-9999", observations="reason_empty|self_reference")
    out = render(pd.DataFrame([row]), domain, precedents)
    reason = out["category_reason"].iloc[0]
    assert reason.startswith("団体固有の事情（確信度 0.83）。")
    assert "③団体固有の事情" in reason and "判断フローチャート" in reason
    assert "「本町」（団体自身への言及）" in reason and "「保守契約が残っているため」" in reason
    assert "「町で」" not in reason and "埋め込み" not in reason  # no fragment, no model internals
    assert "似た過去の意見: 「本市は令和10年まで保守契約が残るため" in reason and "（団体固有の事情）" in reason
    assert not re.search(r"W\d-\d{4}", reason)  # past opinions by their text, never by an id of data/labeled/
    assert "03-1234-5678" not in reason
    assert "次に近い分類: 前提条件を整理すべきもの（0.10）" in reason and "確認事項: 理由欄は空欄、団体自身への言及あり" in reason


def test_resolved_reason_quotes_the_passage_that_settles_it(domain):
    row = _row(category="RESOLVED", resolved_by="方針案_C03.md#建築確認 > 今後の進め方#2", resolved_quote="電子申請の受付は令和8年度から全団体で開始する。")
    reason = render(pd.DataFrame([row]), domain)["category_reason"].iloc[0]
    assert "②解決済" in reason
    assert "解決済とする根拠の記載: 「建築確認 > 今後の進め方」（方針案_C03.md、2 段落目）「電子申請の受付は令和8年度から全団体で開始する。」" in reason
    no_passage = render(pd.DataFrame([_row(category="RESOLVED")]), domain)["category_reason"].iloc[0]
    assert "根拠の記載は特定できていません" in no_passage


def test_shared_reason_in_a_policy_window_names_the_nearest_passage(domain):
    row = _row(category="SHARE", addressed_suggestion="記載なし", nearest_passage="方針案_C01.md#審査項目#1", nearest_quote="審査項目は当面各団体の定めによる。")
    reason = render(pd.DataFrame([row]), domain)["category_reason"].iloc[0]
    assert "方針案に対応する記載はない見込み（最も近い記載: 「審査項目」（方針案_C01.md、1 段落目）「審査項目は当面各団体の定めによる。」）" in reason


def test_passages_are_named_by_heading_and_long_quotes_cut(domain):
    assert passage_label("a.md#見出し > 小見出し#3") == "「見出し > 小見出し」（a.md、3 段落目）"
    row = _row(category="RESOLVED", resolved_by="a.md#見出し#1", resolved_quote="あ" * 150)
    reason = render(pd.DataFrame([row]), domain)["category_reason"].iloc[0]
    assert "「" + "あ" * 60 + "…」" in reason and "あ" * 61 not in reason


def test_candidate_reason_is_kept(domain):
    row = _row(candidate_id="C01", stated_id="C01", candidate_evidence="name:入札参加資格|description:")
    reason = render(pd.DataFrame([row]), domain)["candidate_reason"].iloc[0]
    assert reason.startswith("C01 入札参加資格審査システム（確信度 0.70、対象欄の記載と一致）。")
    assert "手がかり: 本文に名称（の一部）「入札参加資格」、候補一覧の説明と内容が近い。" in reason


def test_render_keeps_every_row_and_adds_the_columns(domain):
    frame = pd.DataFrame([_row(opinion_id=str(i), review_codes="ambiguous|candidate_low" if i == 1 else "") for i in range(3)])
    out = render(frame, domain)
    assert len(out) == 3 and out["opinion_id"].tolist() == ["0", "1", "2"]
    assert out["review_reasons"].tolist() == ["", "分類が一つに絞れない；対象候補の確信度が低い", ""]
    empty = render(frame.iloc[:0], domain)
    assert {"category_reason", "candidate_reason", "review_reasons"} <= set(empty.columns) and len(empty) == 0


def test_top_cues_returns_codes_the_renderer_can_quote():
    texts = ["本町では保守契約が残る。", "当町では契約の更新時期が異なる。", "審査項目を標準化してほしい。", "添付書類を統一してほしい。"] * 3
    model = Pipeline([("features", ColumnTransformer([("char_text", TfidfVectorizer(analyzer="char", ngram_range=(1, 3)), "match_text")])), ("clf", LogisticRegression())])
    frame = pd.DataFrame({"match_text": texts})
    model.fit(frame, ["ORG_SPECIFIC", "ORG_SPECIFIC", "SHARE", "SHARE"] * 3)
    X = model.named_steps["features"].transform(frame.iloc[:1])
    codes = top_cues(model, X[0], list(model.classes_).index("ORG_SPECIFIC"), k=4)
    assert codes and all(c.startswith("text:") and len(c) >= len("text:") + 2 for c in codes)
    phrases = decisive_phrases(codes, texts[0], "")
    assert phrases and all(p.startswith("「") for p in phrases)
    # each phrase is a run of whole words of the opinion
    assert all(p.strip("「」") in texts[0] for p in phrases)


def test_a_number_is_quoted_whole_not_cut_at_its_point_or_comma():
    """The tagger splits 「約1.4倍」 at the point: the reason quoted 「約1」 (seen on the sample window)."""
    reason = "本市の試算では、運用経費は移行前と比較して約1.4倍となる見込みである。対象は1,200件に上る。"
    assert evidence_phrase("cue:事実・具体例（数字・事例）:+", "短い意見。", reason) == "理由欄の「約1.4倍」（事実・具体例）"
    assert evidence_phrase("reason:200", "", reason) == "理由欄の「1,200件」"
