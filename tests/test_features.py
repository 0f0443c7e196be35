import pytest

from pipeline.features import CUE_NAMES, CueExtractor, cue_vector, parse_stated_candidate, reason_restates


@pytest.mark.parametrize(
    "stated, expected",
    [("①入札参加資格審査システム", "C01"), ("1", "C01"), ("（3）", "C03"), ("12", "C12"), ("⑫匿名加工", "C12"), ("預貯金照会のオンライン化", "C04"),
     ("選挙", "C05"), ("全般", "C00"), ("", ""), ("よく分からない", ""), ("【調査・検討】20業務に密接に関連する業務", "C13"), ("経由調査", "C08")],
)
def test_parse_stated_candidate(domain, stated, expected):
    assert parse_stated_candidate(stated, domain) == expected


def test_reason_that_restates_the_opinion():
    assert reason_restates("相談記録プラットフォームは不要である。", "相談記録プラットフォームは不要であるため。")
    assert not reason_restates("相談記録プラットフォームは不要である。", "既に県の支援システムで記録を共有しており、二重入力になるため。")


def test_cue_vector_has_named_columns():
    v = cue_vector("本町では令和9年まで契約が残るため移行できない。", "")
    assert len(v) == len(CUE_NAMES)
    named = dict(zip(CUE_NAMES, v))
    assert named["理由欄が空欄"] == 1.0
    assert named["団体自身への言及（本市・当町など）"] > 0
    assert CueExtractor().fit_transform(__import__("pandas").DataFrame({"match_text": ["a"], "match_reason": [""]})).shape == (1, len(CUE_NAMES))
