"""Grounding: passages that concern an opinion, and whether one settles it."""

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.grounding import bm25, build_index, request_sentences, retrieve, opinion_side, tag_candidate


def P(pid, file, headings, text):
    return SimpleNamespace(id=pid, file=file, headings=headings, text=text)


PASSAGES = [
    P("a#1", "推進方針案_01_入札参加資格審査システム.md", ("入札参加資格審査システムの共通化推進方針（案）", "3．スケジュール"), "共通システムは令和9年度から物品・役務の申請受付を開始する。建設工事については令和10年度からの対象化を検討する。"),
    P("b#1", "推進方針案_04_預貯金照会のオンライン化の拡大.md", ("預貯金照会のオンライン化の拡大", "1．要旨"), "令和8年度から生活保護及び税務に係る照会をオンライン化の対象とする。"),
    P("c#1", "01_基本方針.md", ("基本方針", "2．基本的な考え方"), "共通化は地方に義務付けるものではなく、各団体の主体的な判断による。"),
]


def fake_encode(texts):
    """Deterministic bag-of-bigrams vectors (tests of the mechanics need no neural encoder)."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, t in enumerate(texts):
        for a, b in zip(t, t[1:]):
            out[i, hash(a + b) % 256] += 1
    n = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(n == 0, 1, n)


def lemmas(text):
    return [text[i : i + 2] for i in range(0, len(text) - 1, 2)]


def test_request_sentences_pick_what_is_asked():
    t = "事業者の負担が大きい。建設工事も対象に含めていただきたい。以上の理由による。"
    assert request_sentences(t) == ["建設工事も対象に含めていただきたい。"]
    assert request_sentences("現状を述べるだけの文。もう一文。") == ["もう一文。"]


def test_tag_candidate_from_heading_or_file(domain):
    assert tag_candidate("推進方針案_04_預貯金照会のオンライン化の拡大.md", ("x",), domain) == "C04"
    assert tag_candidate("02_共通化候補一覧.md", ("一覧", "① 入札参加資格審査システム＜総務省＞"), domain) == "C01"
    assert tag_candidate("01_基本方針.md", ("基本方針", "費用負担"), domain) == ""


def test_bm25_and_retrieval_prefer_the_passage_that_concerns_the_opinion(domain):
    index = build_index(PASSAGES, domain, fake_encode, lemmas)
    s = bm25(index, ["生活保護の預貯金照会をオンライン化してほしい"])
    assert s.argmax() == 1
    side = opinion_side(["建設工事も共通システムの対象にしていただきたい。"], ["C01"], np.full((1, 6), 1 / 6), fake_encode, lemmas)
    ret = retrieve(index, side, k=2)
    assert index.ids[ret.top[0, 0]] == "a#1"
    assert ret.top.shape == (1, 2)


def test_removing_a_passage_removes_it_from_retrieval(domain):
    index = build_index(PASSAGES, domain, fake_encode, lemmas)
    smaller = index.without(["a#1"])
    assert "a#1" not in smaller.ids and len(smaller) == 2
    side = opinion_side(["建設工事も対象にしていただきたい。"], ["C01"], np.full((1, 6), 1 / 6), fake_encode, lemmas)
    ret = retrieve(smaller, side, k=5)
    assert (ret.top[0] >= -1).all() and (ret.top[0] < 2).all()  # never points past the passages left
