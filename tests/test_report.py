"""report.py: the meeting report's counts say what they count, its long lists page, and it stays small."""

import re

import pandas as pd

from pipeline.export import DIFF_COLUMN, group_rows
from pipeline.queue import open_queue, sync_window, window_table
from pipeline.report import CELL_CHARS, MAX_ROWS, PAGE_ROWS, build_report, diff_html, paged_table
from tests.test_queue import batch


def _synthetic(n_groups: int, size: int = 2, share_every: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A window table and export.group_rows-like groups: ``n_groups`` groups of ``size`` bodies."""
    n = n_groups * size
    table = pd.DataFrame({"present": True, "in_queue": True, "status": "pending", "final_candidate": "C01", "final_category": "ABSTRACT"}, index=range(n))
    shared = [bool(share_every) and i % share_every == 0 for i in range(n_groups)]
    groups = pd.DataFrame(
        {
            "グループID": [f"G{i:05d}" for i in range(n_groups)], "代表意見ID": [str(i) for i in range(n_groups)], "団体名（代表）": "某市",
            "同旨団体数": size, "同旨団体": "某市、某町", "対象候補ID": "C01", "分類": ["共有すべきもの" if s else "抽象的なもの" for s in shared],
            "区分": ["共有" if s else "除外" for s in shared], "意見": "丁寧に進めてほしい。", "理由": "", DIFF_COLUMN: "", "判断状況": "確認待ち",
        }
    )  # fmt: skip
    return table, groups


def test_headline_numbers_say_which_count_opinions_and_which_groups(tmp_path, domain):
    eng = open_queue(f"sqlite:///{tmp_path / 'q.db'}")
    sync_window(eng, "R7-x", batch())  # 4 opinions in 3 groups (1 and 2 are one group)
    table = window_table(eng, "R7-x")
    html = build_report("R7-x", table, group_rows(table, domain, "candidate-list"), domain, "now")
    assert "意見の数（団体が出した意見 1 件を 1 と数える）" in html and "グループの数（同旨の意見をまとめて 1 と数える）" in html
    assert "意見数（全体）<b>4 件</b>" in html and "グループ数（全体）<b>3 グループ</b>" in html
    assert "同旨グループ数（2団体以上）<b>1 グループ</b>" in html and "共有すべきもののグループ数<b>1 グループ</b>" in html
    assert "確認待ちの意見数<b>3 件</b>" in html  # the queue: 2 共有すべきもの + 1 marked for review


def test_the_duplicate_list_pages_instead_of_stopping_at_100(domain):
    table, groups = _synthetic(250)
    html = build_report("R7-x", table, groups, domain, "now")
    section = html.split("同旨の意見（2団体以上")[1].split("<h2>")[0]
    assert section.count("<details") == 3 and section.count("<details open>") == 1
    assert "<summary>101〜200 件目（全 250 グループ）</summary>" in section and "<summary>201〜250 件目（全 250 グループ）</summary>" in section
    assert all(f"G{i:05d}" in section for i in range(250))  # every group is on the page
    assert "<script" not in html and not re.search(r"(?:src|href)=['\"]https?:", html)  # no external resource, no script


def test_a_very_large_window_gives_a_bounded_page_that_says_what_it_left_out(domain):
    table, groups = _synthetic(MAX_ROWS + 234, share_every=3)
    html = build_report("R9-big", table, groups, domain, "now")
    section = html.split("同旨の意見（2団体以上")[1].split("<h2>")[0]
    assert section.count("<details") == MAX_ROWS // PAGE_ROWS
    assert f"G{MAX_ROWS - 1:05d}" in section and f"G{MAX_ROWS:05d}" not in section
    assert "このページには先頭の 1,000 グループを載せています。残りの 234 グループは wt_export.xlsx（wt_export.csv） にあります。" in section
    shared = html.split("共有すべきもの（対象候補別")[1].split("<h2>")[0]
    assert shared.count("<tr>") <= MAX_ROWS + shared.count("<thead>")  # the section's one budget


def test_paged_table_blocks_and_limit():
    frame = pd.DataFrame({"グループID": [f"G{i}" for i in range(45)]})
    html = paged_table(frame, page=10, limit=30)
    assert html.count("<details") == 3 and "21〜30 件目（全 45 グループ）" in html and "残りの 15 グループ" in html and "G30" not in html
    assert "<details" not in paged_table(frame.head(10), page=10)  # one page: a plain table


def test_long_cells_are_cut_with_a_pointer_to_the_export(domain):
    table, groups = _synthetic(1)
    groups["意見"] = "あ" * (CELL_CHARS + 50)
    groups["同旨団体数"] = 2
    html = build_report("R7-x", table, groups, domain, "now")
    assert "あ" * CELL_CHARS + f"…（全 {CELL_CHARS + 50} 字は wt_export.xlsx（wt_export.csv））" in html and "あ" * (CELL_CHARS + 1) not in html


def test_diff_marks_what_a_member_adds_and_leaves_out_and_escapes():
    assert diff_html("費用負担を示されたい。", "本町として費用負担を示されたい！<b>") == "<ins>本町として</ins>費用負担を示されたい<del>。</del><ins>！&lt;b&gt;</ins>"
    assert diff_html("同じ。", "同じ。") == "同じ。"
