"""The zero-shot mapping's features (mechanics; the quality is measured on held-out windows)."""

import numpy as np
import pytest

from pipeline.config import Candidate
from pipeline.mapping import MAPPING_FEATURES, MAPPING_PRECEDENT, _gap, build_profiles, evidence_codes, list_fit, pair_features
from tests.test_grounding import fake_encode as _encode

F = {name: j for j, name in enumerate(MAPPING_FEATURES)}


def _lemmas(text):
    return [text[i : i + 2] for i in range(len(text) - 1)]


@pytest.fixture()
def profiles(domain):
    cands = [
        Candidate("K01", 1, "公営住宅管理システム", ("公営住宅",), "国土交通省", "公営住宅の入居者募集、抽選、家賃の算定を共通のシステムで行う。"),
        Candidate("K02", 2, "自動車臨時運行許可（仮ナンバー）の申請・管理システム", ("仮ナンバー",), "国土交通省", "仮ナンバーの貸出しと返納を管理する。"),
        Candidate("K03", 3, "狩猟免許・鳥獣捕獲等許可の申請システム", ("狩猟免許",), "環境省", "狩猟免許の申請と更新を受け付ける。"),
        Candidate("C00", None, "全般（候補を横断する意見）", ("全般",), "", "候補を横断する意見。", general=True),
    ]
    return build_profiles(domain.with_candidates(cands), _encode, _lemmas)


def features(profiles, texts, **kw):
    emb = _encode(texts)
    return pair_features(profiles, texts, emb, [emb[i : i + 1] for i in range(len(texts))], **kw)


def test_names_numbers_and_ministries_are_read(profiles):
    X = features(profiles, ["②は不要と考える。", "公営住宅の家賃算定を共通化してほしい。", "環境省の狩猟の手続について"])
    assert X.shape == (3, 4, len(MAPPING_FEATURES))
    assert X[0, 1, F["number"]] == 1 and X[0, 0, F["number"]] == 0  # 「②」 is read as written (NFKC would make it 「2」)
    assert X[1, 0, F["alias_len"]] > 0 and X[1, 0, F["name_cover"]] > X[1, 1, F["name_cover"]]
    assert X[2, 2, F["ministry"]] == 1 and X[2, 0, F["ministry"]] == 0
    assert X[0, 3, F["general"]] == 1 and X[0, 0, F["general"]] == 0


def test_a_new_system_has_no_learned_features(profiles):
    X = features(profiles, ["公営住宅の家賃"], precedent_vectors=_encode(["公営住宅の家賃を共通化"]))
    assert np.isnan(X[:, :, MAPPING_PRECEDENT]).all()  # no labelled opinion is about these systems
    learned = np.array([[0.9, 0.1]])
    X = features(profiles, ["公営住宅の家賃"], learned=learned, learned_names=["公営住宅管理システム", "入札参加資格審査システム"])
    assert X[0, 0, F["learned"]] == pytest.approx(0.9)
    assert np.isnan(X[0, 1, F["learned"]])  # a system of the list the classifier never learned


def test_gap_is_the_margin_over_the_best_other():
    g = _gap(np.array([[3.0, 1.0, 2.0]]))
    assert g.tolist() == [[1.0, -2.0, -1.0]]


def test_list_fit_and_evidence(profiles):
    texts = ["仮ナンバーを借りたまま返さない人への対応を市町村で共有したい。"]
    X = features(profiles, texts)
    fit = list_fit(X, profiles)
    assert fit.shape == (1, 4) and fit[0, 2] == pytest.approx(X[0, :3, F["name_cover"]].max())
    codes = evidence_codes(X[0, 1], profiles.profiles[1], texts[0])
    assert "name:仮ナンバー" in codes


def test_an_empty_batch(profiles):
    assert features(profiles, []).shape == (0, 4, len(MAPPING_FEATURES))
