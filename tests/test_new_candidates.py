"""Next year's candidates (slow: the default model, trained once per session).

The candidate comes from the window's list: change the list, the candidate must follow. The held-out
windows (data/labeled/heldout/, never trained or tuned on) hold a floor below the figures measured when
the feature landed (README, metrics/heldout/metrics.json), so that a regression shows."""

import pandas as pd
import pytest

from pipeline.candidates import finish
from pipeline.classify import load_model, predict
from pipeline.config import Candidate
from pipeline.evaluate import evaluate_model
from pipeline.labeled import load_heldout
from pipeline.normalize import normalise

pytestmark = pytest.mark.slow

# a system no labelled window is about (仮ナンバー was the example until R9, which is about it, joined training)
OPINION = "空き家バンクに登録した物件の情報が市町村ごとに別々のサイトに載っていて、移住を考える人は自治体を比べにくい。空き家バンクの物件情報を共通の様式で載せ、市町村をまたいで探せるようにしてほしい。"
SYSTEMS = {
    "vacant": ("移住希望者向け物件情報（空き家バンク）の登録・紹介システム", "国土交通省", "市町村が運営する空き家バンクの物件登録と、利用を希望する人の登録、物件の紹介を共通のシステムで行う。"),
    "temp": ("自動車臨時運行許可（仮ナンバー）の申請・管理システム", "国土交通省", "市町村が行う自動車の臨時運行許可（仮ナンバー）の申請受付、許可証と番号標の貸出し・返納の管理を共通のシステムで行う。"),
    "food": ("食品衛生法に基づく営業許可・届出システム", "厚生労働省", "飲食店等の営業許可の申請と届出を、保健所が共通のシステムで受け付ける。"),
    "hunt": ("狩猟免許・鳥獣捕獲等許可の申請システム", "環境省", "狩猟免許の申請・更新と鳥獣の捕獲等の許可の申請を共通のシステムで受け付ける。"),
    "house": ("公営住宅管理システム", "国土交通省", "公営住宅の入居者募集、抽選、家賃の算定を共通のシステムで行う。"),
}


@pytest.fixture(scope="module")
def default_model(fresh_sample_run):
    assert fresh_sample_run.result.exit_code == 0, fresh_sample_run.result.output
    return load_model(fresh_sample_run.model_dir)


def _domain(domain, entries):
    """A window's list as the product builds it (short names derived, 全般 added: candidates.finish)."""
    cands = [Candidate(cid, n, SYSTEMS[key][0], (), SYSTEMS[key][1], SYSTEMS[key][2]) for n, (cid, key) in enumerate(entries, start=1)]
    return domain.with_candidates(finish(cands, "test").candidates)


def _predict(model, domain):
    frame = normalise(pd.DataFrame({"opinion_id": ["x"], "window": ["W"], "body": ["A市"], "prefecture": [""], "stated_candidate": [""], "text": [OPINION], "reason": [""]}))
    return predict(model, frame, domain, None, "candidate-list", explain=True).iloc[0]


def test_the_window_list_decides_the_candidate(default_model, domain):
    r = _predict(default_model, _domain(domain, [("K01", "food"), ("K02", "vacant"), ("K03", "hunt")]))
    assert r["candidate_id"] == "K02" and r["candidate_name"].startswith("移住希望者向け物件情報")
    # the same system under another id, elsewhere in the list: the decision follows
    r = _predict(default_model, _domain(domain, [("R9-01", "vacant"), ("R9-02", "house"), ("R9-03", "food")]))
    assert r["candidate_id"] == "R9-01"
    assert "name:空き家バンク" in r["candidate_evidence"].split("|")  # the short name in the opinion tied it


def test_a_system_missing_from_the_list_is_not_forced_onto_another(default_model, domain):
    r = _predict(default_model, _domain(domain, [("K01", "food"), ("K02", "hunt"), ("K03", "house")]))
    # the softmax is sure of the best of a list that lacks the system; the pair logit says nothing fits well
    assert r["candidate_id"] == "C00" or "candidate_unlisted" in r["review_codes"].split("|"), (r["candidate_id"], r["candidate_confidence"], r["review_codes"])


def test_held_out_windows_keep_their_floor(default_model, domain, corpus_refs):
    rows = load_heldout(domain=domain, lists=corpus_refs.candidates)
    assert set(rows["window"]) == {"R12-candidates", "R13-policy"}  # scored once, after the design was fixed
    m, _, pred = evaluate_model(default_model, rows, domain, corpus_refs)
    assert len(pred) == len(rows)
    assert m["candidate_accuracy"] >= 0.90  # measured 0.969 (R12+R13, stop 17)
    # regression guards, not the targets: measured 0.012 (1 of 81 共有すべきもの auto-excluded; 0.037 on R10+R11
    # at stop 16; the issue asks ≤ 0.02) and macro-F1 0.856 (the issue asks ≥ 0.90; 解決済 F1 0.38 pulls it down)
    assert m["share_auto_excluded"] <= 0.06
    assert m["category_macro_f1"] >= 0.80
    assert m["grounding"]["resolved_auto_without_citation"] == 0
