import csv
import io

import pandas as pd
from openpyxl import load_workbook

from pipeline.export import group_rows, mask_pii, neutralise, write_export
from pipeline.queue import Decision, decide, open_queue, sync_window, window_table
from pipeline.report import build_report
from tests.test_queue import batch


def _groups(tmp_path, domain, window="R7-policy-x"):
    eng = open_queue(f"sqlite:///{tmp_path / 'q.db'}")
    b = batch(texts=["=HYPERLINK(\"http://evil\")費用負担を示されたい。担当 a@city.example.lg.jp 03-1234-5678", "=HYPERLINK(\"http://evil\")費用負担を示されたい。", "本町では契約が残る。", "@丁寧に進めてほしい。"])
    sync_window(eng, window, b)
    decide(eng, domain, window, "1", "佐藤", Decision(category="SHARE", addressed="no", revision_request="-追記を求める"))
    table = window_table(eng, window)
    return table, group_rows(table, domain, "policy")


def test_one_row_per_group_with_bodies_and_decision(tmp_path, domain):
    _, g = _groups(tmp_path, domain)
    assert len(g) == 3
    first = g.iloc[0]
    assert first["同旨団体数"] == 2 and first["同旨団体"] == "A市、B町"
    assert first["分類"] == "共有すべきもの" and first["判断者"] == "佐藤" and first["記載の有無"] == "記載なし"
    assert set(g["区分"]) == {"共有", "除外"}


def test_exports_read_back_with_japanese_masking_and_no_formulas(tmp_path, domain):
    _, g = _groups(tmp_path, domain)
    paths = write_export(g, tmp_path / "out")
    raw = paths["csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))  # a BOM-honouring reader, no CP932 guess
    assert rows[0]["分類"] == "共有すべきもの" and rows[0]["意見"].startswith("'=HYPERLINK")
    assert "a@city" not in raw.decode("utf-8-sig") and "1234-5678" not in raw.decode("utf-8-sig")
    assert rows[0]["修正意見"] == "'-追記を求める"
    wb = load_workbook(paths["xlsx"])
    assert wb.sheetnames == ["共有すべきもの", "除外した意見"]
    ws = wb["共有すべきもの"]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref.startswith("A1:")
    header = [c.value for c in ws[1]]
    assert "同旨団体数" in header and "記載の有無" in header
    cell = ws.cell(row=2, column=header.index("意見") + 1)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")  # kept as text, never a formula
    excluded = wb["除外した意見"]
    assert excluded.max_row == 3 and {excluded.cell(row=r, column=header.index("分類") + 1).value for r in (2, 3)} == {"団体固有の事情", "抽象的なもの"}
    assert ws.column_dimensions["A"].width >= 10


def test_neutralise_and_mask():
    assert neutralise("=1+1") == "'=1+1" and neutralise("+81") == "'+81" and neutralise("普通") == "普通" and neutralise(3) == 3
    assert "［メール省略］" in mask_pii("連絡 x.y@pref.example.lg.jp") and "［電話省略］" in mask_pii("TEL 099-123-4567")


def test_report_is_self_contained_and_japanese(tmp_path, domain):
    table, g = _groups(tmp_path, domain)
    html = build_report("R7-policy-x", table, g, domain, "2026-11-22 10:00")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "http://" not in html.replace('http://evil', '') and "<script" not in html
    assert "共有すべきもの" in html and "対象候補 × 分類" in html and "確認待ち" in html
    assert "&lt;" not in "".join(g["意見"])  # source text escaped only in HTML


def test_full_width_contacts_are_masked_in_every_text_column(tmp_path, domain):
    for raw in ["０３－１２３４－５６７８", "03（1234）5678", "tanaka＠city.example.lg.jp", "ｔａｎａｋａ@city.example.lg.jp", "内線２２１４", "099-123-4567"]:
        assert raw not in mask_pii(f"問合せ {raw} まで"), raw
    eng = open_queue(f"sqlite:///{tmp_path / 'q.db'}")
    sync_window(eng, "R7-policy-y", batch())
    decide(eng, domain, "R7-policy-y", "4", "佐藤", Decision(note="担当 ０３－１２３４－５６７８", revision_request="連絡 a@b.example.jp"))
    g = group_rows(window_table(eng, "R7-policy-y"), domain, "policy")
    row = g[g["代表意見ID"] == "4"].iloc[0]
    assert "１２３４" not in row["メモ"] and "a@b" not in row["修正意見"]


def test_partly_and_differently_decided_groups_are_flagged(tmp_path, domain):
    eng = open_queue(f"sqlite:///{tmp_path / 'q.db'}")
    sync_window(eng, "R7-policy-z", batch())
    decide(eng, domain, "R7-policy-z", "1", "佐藤", Decision(category="SHARE"), whole_group=False)
    g = group_rows(window_table(eng, "R7-policy-z"), domain, "policy")
    assert g[g["グループID"] == "G1"]["判断状況"].iloc[0].startswith("一部判断済")
    decide(eng, domain, "R7-policy-z", "2", "佐藤", Decision(category="RESOLVED"), whole_group=False)
    g = group_rows(window_table(eng, "R7-policy-z"), domain, "policy")
    assert g[g["グループID"] == "G1"]["判断状況"].iloc[0].startswith("判断不一致")


def test_empty_window_exports_and_reports(tmp_path, domain):
    eng = open_queue(f"sqlite:///{tmp_path / 'q.db'}")
    sync_window(eng, "R7-empty", batch().iloc[:0])
    table = window_table(eng, "R7-empty")
    g = group_rows(table, domain, "candidates")
    paths = write_export(g, tmp_path / "o")
    assert list(pd.read_csv(paths["csv"], encoding="utf-8-sig").columns)[:3] == ["照会回", "グループID", "代表意見ID"]
    assert "意見数" in build_report("R7-empty", table, g, domain, "now")


def test_report_renders_in_headless_chromium(tmp_path, domain):
    """The meeting report opens offline in a browser (screenshot taken; Debian's chromium)."""
    import shutil
    import subprocess

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("chromium is not installed (apt-get install chromium) — report not rendered")
    table, g = _groups(tmp_path, domain)
    page = tmp_path / "report.html"
    page.write_text(build_report("R7-policy-x", table, g, domain, "2026-11-22 10:00"), encoding="utf-8")
    assert "@font-face" in page.read_text(encoding="utf-8")  # Japanese glyphs travel with the page
    shot = tmp_path / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    subprocess.run([browser, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 20_000
