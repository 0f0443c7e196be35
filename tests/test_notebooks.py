"""The analysts' notebooks (jupytext percent scripts) run top to bottom against real objects."""

import re
import runpy
from pathlib import Path

import pytest

from pipeline.queue import ConflictError, audit, list_queue, open_queue, sync_window, window_table
from tests.test_queue import batch

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
WINDOW = "R7-sample"  # the notebook's WINDOW


def test_labeled_data_notebook_runs():
    ns = runpy.run_path(str(NOTEBOOKS / "labeled_data.py"))
    assert len(ns["data"]) >= 1500 and "kappa" in ns["agreement_report"](ns["sample"]).columns


def _window():
    """The queue's test batch with what the batch writes for a reviewer to read: reasons, the model's
    reason, a cited passage, and a member that differs from its representative."""
    b = batch()
    b["reason"] = ["事業者の負担が大きいため。", "事業者の負担が大きいため、早急に。", "", ""]
    b["category_reason"] = "共有すべきもの（確信度 0.80）。判断フローチャートの①〜⑥のいずれにも当たらないため ⑦共有すべきもの。"
    b["nearest_passage"] = ["方針案_全般.md#費用負担#1", "方針案_全般.md#費用負担#1", "", ""]
    b["nearest_quote"] = ["費用負担の考え方は別途示す。", "費用負担の考え方は別途示す。", "", ""]
    b["addressed_suggestion"] = ["記載なし", "記載なし", "", ""]
    return b


@pytest.fixture()
def notebook(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    monkeypatch.setenv("OPINIONS_DATABASE_URL", url)
    engine = open_queue(url)
    sync_window(engine, WINDOW, _window(), kind="policy-draft")
    return engine, runpy.run_path(str(NOTEBOOKS / "review_queue.py"))


def test_running_every_cell_decides_nothing(notebook):
    engine, ns = notebook
    assert list_queue(engine, WINDOW, "decided").empty and audit(engine, WINDOW).empty
    assert ns["OPINION_ID"] == "1" and set(ns["members"]["opinion_id"]) == {"1", "2"}


def test_the_notebook_shows_what_the_reviewer_decides_on(notebook, domain):
    _, ns = notebook
    html = ns["opinion_html"](ns["shown"], ns["domain"], ns["members"])
    for shown in ("共通化の費用負担を示されたい。", "事業者の負担が大きいため。", "判断フローチャート", "「費用負担」（方針案_全般.md、1 段落目）", "費用負担の考え方は別途示す。", "修正意見の対象となる記載"):
        assert shown in html, shown
    # the member's differences from the representative, marked
    assert "<del>。</del><ins>！</ins>" in html and "<ins>、早急に</ins>" in html


def test_deciding_is_an_explicit_call_with_the_reviewers_name(notebook):
    engine, ns = notebook
    with pytest.raises(ValueError, match="判断者の名前"):
        ns["record"]("  ", category="共有すべきもの")
    assert list_queue(engine, WINDOW, "decided").empty
    written = ns["record"]("分析担当", category="共有すべきもの", candidate="①", addressed="記載なし", revision_request="費用負担の考え方を示されたい。")
    decided = list_queue(engine, WINDOW, "decided")  # what the CLI would list
    assert written == ["1", "2"] and set(decided["opinion_id"]) == {"1", "2"}  # the whole duplicate group
    assert set(decided["decision_reviewer"]) == {"分析担当"} and set(decided["decision_candidate_id"]) == {"C01"} and set(decided["decision_addressed"]) == {"no"}


def test_a_text_changed_after_it_was_shown_is_not_decided(notebook, domain):
    engine, ns = notebook
    changed = _window()
    changed.loc[1, "text"] = "共通化の費用負担を早急に示されたい！"
    sync_window(engine, WINDOW, changed)  # a re-run between reading and deciding
    with pytest.raises(ConflictError, match="確認コード"):
        ns["record"]("分析担当", category="共有すべきもの")
    assert list_queue(engine, WINDOW, "decided").empty


def test_the_form_records_only_when_its_button_is_pressed(notebook):
    engine, ns = notebook
    pytest.importorskip("ipywidgets")
    form = ns["form"]
    assert form is not None and list_queue(engine, WINDOW, "decided").empty
    fields = ns["fields"]
    fields["category"].value = "団体固有の事情"
    fields["only_this"].value = True
    ns["button"].click()  # no name yet: refused, nothing written
    assert list_queue(engine, WINDOW, "decided").empty
    fields["reviewer"].value = "分析担当"
    ns["button"].click()
    t = window_table(engine, WINDOW).set_index("opinion_id")
    assert t.loc["1", "decision_category"] == "ORG_SPECIFIC" and t.loc["1", "decision_reviewer"] == "分析担当"
    assert t.loc["2", "status"] == "pending"  # only this one


def test_an_opinion_is_chosen_by_the_number_of_the_listing_and_tables_are_japanese(notebook):
    """No generated id to type: the listing is numbered from 1 and 番号 picks the opinion shown; the
    tables an analyst reads have Japanese column names."""
    engine, ns = notebook
    view = ns["view"]
    assert list(view.index[:2]) == [1, 2] and ns["番号"] == 1 and ns["OPINION_ID"] == view.loc[1, "opinion_id"]
    shown = view[list(ns["COLUMNS"])].rename(columns=ns["COLUMNS"])
    assert not [c for c in shown.columns if re.fullmatch(r"[A-Za-z_]+", c)], list(shown.columns)
    ns["record"]("分析担当", category="共有すべきもの")
    decided = runpy.run_path(str(NOTEBOOKS / "review_queue.py"))  # the 記録を確かめる cells, after a decision
    table = decided["decided_view"]
    assert len(table) == 2 and set(table["判断者"]) == {"分析担当"} and set(table["分類"]) == {"共有すべきもの"}
    assert not [c for c in table.columns if re.fullmatch(r"[A-Za-z_]+", c)], list(table.columns)
