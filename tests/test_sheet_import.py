"""Decisions made in wt_export.xlsx back into the queue (`opinions queue import`), on SQLite and
PostgreSQL: the round trip from `opinions run`, a LibreOffice re-save of a sorted file with added columns,
and each way a row is refused — another reviewer's decision, a decision that moved, a text that changed
since the export, a bad cell — reported by its cell address."""

import re
import shutil
import subprocess

import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.export import KEY_COLUMNS, export_window
from pipeline.queue import Decision, audit, decide, open_queue, sync_window, window_table
from tests.test_queue import batch
from tests.test_review_flow import _window

runner = CliRunner()
W = "R8-方針案"
SUMMARY = re.compile(r"適用 (\d+)・変更なし (\d+)・競合 (\d+)・要再確認 (\d+)・エラー (\d+)")


def _queue(db_url, kind="policy-draft", window=W, texts=None, candidates=None):
    engine = open_queue(db_url)
    sync_window(engine, window, batch(texts=texts), kind=kind, candidates=candidates)
    return engine


def _header(ws) -> dict[str, int]:
    return {c.value: c.column for c in ws[1] if c.value is not None}


def _rows(path) -> dict[str, tuple[str, int, dict[str, int]]]:
    """代表意見ID → (sheet, row, header → column) in a written file, found by header (never by position)."""
    wb = load_workbook(path)
    out = {}
    for ws in wb.worksheets:
        h = _header(ws)
        if "代表意見ID" not in h:
            continue
        for r in range(2, ws.max_row + 1):
            rep = ws.cell(row=r, column=h["代表意見ID"]).value
            if rep is not None:
                out[str(rep)] = (ws.title, r, h)
    return out


def _address(path, rep: str, header: str) -> str:
    """「シート『共有すべきもの』の P2」: where a cell of the row of representative ``rep`` is."""
    from openpyxl.utils import get_column_letter

    sheet, row, h = _rows(path)[rep]
    return f"シート『{sheet}』の {get_column_letter(h[header])}{row}"


def _fill(path, values: dict[str, dict[str, object]], out=None):
    """Type ``values`` (代表意見ID → header → value) into the rows of a written file, as a person would."""
    wb = load_workbook(path)
    where = _rows(path)
    for rep, cells in values.items():
        sheet, row, h = where[rep]
        for header, value in cells.items():
            cell = wb[sheet].cell(row=row, column=h[header])
            cell.value = value
            if isinstance(value, str) and value.startswith("="):  # typed with a leading ' in Excel: text, not a formula
                cell.data_type, cell.quotePrefix = "s", True
    out = out or path.with_name("filled.xlsx")
    wb.save(out)
    return out


def _import(path, db_url, *extra, reviewer="佐藤", window=W):
    res = runner.invoke(app, ["queue", "import", str(path), "--window", window, "--reviewer", reviewer, "--db", db_url, *extra])
    m = SUMMARY.search(res.output)
    counts = tuple(int(x) for x in m.groups()) if m else None
    return res, counts


def _decided(engine, window=W) -> pd.DataFrame:
    return window_table(engine, window).set_index("opinion_id")


# --------------------------------------------------------------------------- the round trip


def test_round_trip_run_export_fill_import_queue_and_reexport(tmp_path, db_url, tiny_model_dir):
    raw = _window(tmp_path / "raw" / W, kind="policy-draft")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(raw), "--model-dir", str(tiny_model_dir), "--out", str(out), "--db", db_url])
    assert res.exit_code == 0, res.output
    xlsx = out / "wt_export.xlsx"
    assert str(xlsx) in res.output and str(out / "report.html") in res.output and str(out / "wt_export.csv") in res.output  # the run wrote the meeting materials
    engine = open_queue(db_url)
    t = _decided(engine)
    assert t.loc["1", "dup_key"] == t.loc["4", "dup_key"] != t.loc["2", "dup_key"]  # opinions 1 and 4 are one group
    rep = t.loc["1", "dup_representative"]
    filled = _fill(xlsx, {rep: {"判断：分類": "前提条件を整理すべきもの", "判断：対象候補": "C01 入札参加資格審査システム", "判断：記載の有無": "記載なし", "判断：修正意見": "標準項目を追記", "判断：メモ": "会議で確認"}})

    res, counts = _import(filled, db_url)
    assert res.exit_code == 0 and counts == (1, 0, 0, 0, 0), res.output
    t = _decided(engine)
    pair = t.loc[["1", "4"]]
    assert pair["decision_category"].tolist() == ["PRECONDITION"] * 2 and pair["decision_candidate_id"].tolist() == ["C01"] * 2
    assert set(pair["status"]) == {"decided"} and set(pair["decision_reviewer"]) == {"佐藤"} and set(pair["decision_addressed"]) == {"no"}
    assert set(pair["decision_revision_request"]) == {"標準項目を追記"} and set(pair["decision_note"]) == {"会議で確認"}
    assert t.loc[["2", "3"], "decision_reviewer"].isna().all()  # blank rows decide nothing

    res = runner.invoke(app, ["export", "--window", W, "--out", str(tmp_path / "again"), "--db", db_url])
    assert res.exit_code == 0, res.output
    exp = pd.read_csv(tmp_path / "again" / "wt_export.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig").set_index("代表意見ID")
    row = exp.loc[rep]
    assert row["分類"] == "前提条件を整理すべきもの" and row["判断者"] == "佐藤" and row["判断状況"] == "確定" and row["記載の有無"] == "記載なし" and row["修正意見"] == "標準項目を追記"
    again = tmp_path / "again" / "wt_export.xlsx"
    sheet, r, h = _rows(again)[rep]
    ws = load_workbook(again)[sheet]
    assert ws.cell(row=r, column=h["判断：分類"]).value == "前提条件を整理すべきもの" and ws.cell(row=r, column=h["判断：メモ"]).value == "会議で確認"

    # the re-exported file as it is, imported by someone else: nothing to write, nobody's decision overwritten
    res, counts = _import(again, db_url, reviewer="鈴木")
    assert res.exit_code == 0 and counts == (0, 1, 0, 0, 0), res.output
    assert set(_decided(engine).loc[["1", "4"], "decision_reviewer"]) == {"佐藤"}


def _resave_with_libreoffice(path, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        pytest.skip("LibreOffice がありません（apt-get install libreoffice-calc-nogui）— LibreOffice で保存し直したファイルの取り込みは確かめていません")
    outdir = tmp_path / "resaved"
    res = subprocess.run(
        [soffice, f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}", "--headless", "--norestore", "--convert-to", "xlsx", "--outdir", str(outdir), str(path)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert (outdir / path.name).exists(), res.stdout + res.stderr
    return outdir / path.name


def _sort_and_add_columns(path, out):
    """What a person does before saving: sorts each sheet's rows (here: reversed), adds a column at the
    front and one in the middle. Columns are moved by rewriting whole rows, as a sort does."""
    wb = load_workbook(path)
    for ws in wb.worksheets:
        if ws.sheet_state != "visible":
            continue
        grid = [[(c.value, c.data_type, c.quotePrefix) for c in row] for row in ws.iter_rows()]
        header, data = grid[0], grid[1:][::-1]
        mid = [v for v, _, _ in header].index("意見")
        text = lambda v: (v, "s", False)
        new = [[text("担当者の確認"), *header[:mid], text("会議での扱い"), *header[mid:]]] + [[text(f"確認{i}"), *r[:mid], text(None), *r[mid:]] for i, r in enumerate(data)]
        ws.delete_rows(1, ws.max_row)
        for r, values in enumerate(new, start=1):
            for c, (v, kind, quoted) in enumerate(values, start=1):
                cell = ws.cell(row=r, column=c)
                cell.value = v
                if v is not None and kind == "s":
                    cell.data_type, cell.quotePrefix = "s", quoted
    wb.save(out)
    return out


def test_a_sorted_file_with_added_columns_resaved_by_libreoffice_imports_the_same(tmp_path, db_url, domain):
    engine = _queue(db_url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    filled = _fill(xlsx, {"1": {"判断：分類": "共有すべきもの", "判断：記載の有無": "記載あり", "判断：修正意見": "-先頭がマイナスの修正意見"}, "3": {"判断：分類": "射程外", "判断：メモ": "=先頭が等号のメモ"}})
    moved = _sort_and_add_columns(filled, tmp_path / "sorted.xlsx")
    resaved = _resave_with_libreoffice(moved, tmp_path)
    assert load_workbook(resaved)["共有すべきもの"].cell(row=1, column=1).value == "担当者の確認"  # the columns really moved

    res, counts = _import(resaved, db_url)
    assert res.exit_code == 0 and counts == (2, 0, 0, 0, 0), res.output
    t = _decided(engine)
    assert t.loc[["1", "2"], "decision_category"].tolist() == ["SHARE", "SHARE"] and set(t.loc[["1", "2"], "decision_addressed"]) == {"yes"}
    assert t.loc["1", "decision_revision_request"] == "-先頭がマイナスの修正意見"
    assert t.loc["3", "decision_category"] == "OUT_OF_SCOPE" and t.loc["3", "decision_note"] == "=先頭が等号のメモ"
    assert pd.isna(t.loc["4", "decision_reviewer"])
    again = export_window(engine, W, tmp_path / "again", domain).xlsx
    sheet, r, h = _rows(again)["3"]
    ws = load_workbook(again)[sheet]
    cell = ws.cell(row=r, column=h["判断：メモ"])
    assert ws.cell(row=r, column=h["判断：分類"]).value == "射程外" and cell.value == "=先頭が等号のメモ" and cell.data_type == "s"  # still text, never a formula


# --------------------------------------------------------------------------- what is refused, and where


def test_conflicts_and_stale_rows_are_reported_by_cell_address_and_the_rest_applies(tmp_path, db_url, domain):
    engine = _queue(db_url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    table = _decided(engine)
    decide(engine, domain, W, "3", "鈴木", Decision(category="ABSTRACT"), seen=table.loc["3", "read_code"])  # another reviewer, after the export
    sync_window(engine, W, batch(texts=["共通化の費用負担を示されたい。", "共通化の費用負担を示されたい！", "本町では契約が残る。", "丁寧に、慎重に進めてほしい。"]))  # 4 corrected
    filled = _fill(xlsx, {"1": {"判断：分類": "共有すべきもの"}, "3": {"判断：分類": "団体固有の事情"}, "4": {"判断：分類": "抽象的なもの"}})

    res, counts = _import(filled, db_url)
    assert res.exit_code == 1 and counts == (1, 0, 1, 1, 0), res.output
    assert f"{_address(xlsx, '3', '判断：分類')}（C村の意見）：競合" in res.output and "鈴木" in res.output
    assert f"{_address(xlsx, '4', '判断：分類')}（D県の意見）：要再確認" in res.output and "確認コード" in res.output
    t = _decided(engine)
    assert t.loc[["1", "2"], "decision_category"].tolist() == ["SHARE", "SHARE"]
    assert t.loc["3", "decision_category"] == "ABSTRACT" and t.loc["3", "decision_reviewer"] == "鈴木"  # not overwritten
    assert pd.isna(t.loc["4", "decision_reviewer"])


def test_a_decision_that_moved_since_the_export_is_a_conflict(tmp_path, db_url, domain):
    engine = _queue(db_url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    decide(engine, domain, W, "1", "佐藤", Decision(category="RESOLVED"), seen=_decided(engine).loc["1", "read_code"])  # the same reviewer, in the CLI
    res, counts = _import(_fill(xlsx, {"1": {"判断：分類": "共有すべきもの"}}), db_url)
    assert res.exit_code == 1 and counts == (0, 0, 1, 0, 0), res.output
    assert f"{_address(xlsx, '1', '判断：分類')}（A市の意見）：競合" in res.output and "版 0 → 1" in res.output
    assert set(_decided(engine).loc[["1", "2"], "decision_category"]) == {"RESOLVED"}


def test_a_file_with_a_bad_cell_applies_nothing_unless_forced(tmp_path, db_url, domain):
    engine = _queue(db_url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    filled = _fill(xlsx, {"1": {"判断：分類": "共有すべきもの"}, "3": {"判断：分類": "共有", "判断：対象候補": "C99 存在しない候補"}, "4": {"判断：分類": "抽象的なもの", "判断：記載の有無": "たぶん"}})

    res, counts = _import(filled, db_url)
    assert res.exit_code == 2 and counts == (1, 0, 0, 0, 2), res.output
    assert f"{_address(xlsx, '3', '判断：分類')}（C村の意見）：エラー — 分類「共有」は不正です" in res.output.replace("\n", "")
    assert f"{_address(xlsx, '3', '判断：対象候補')}" in res.output and f"{_address(xlsx, '4', '判断：記載の有無')}" in res.output
    assert "何も取り込んでいません" in res.output
    assert _decided(engine)["decision_reviewer"].isna().all() and audit(engine, W).empty

    res, counts = _import(filled, db_url, "--dry-run", "--force")
    assert counts == (1, 0, 0, 0, 2) and "書き込みなし" in res.output, res.output
    assert _decided(engine)["decision_reviewer"].isna().all()

    res, counts = _import(filled, db_url, "--force")
    assert res.exit_code == 1 and counts == (1, 0, 0, 0, 2), res.output
    t = _decided(engine)
    assert t.loc[["1", "2"], "decision_category"].tolist() == ["SHARE", "SHARE"] and t.loc[["3", "4"], "decision_reviewer"].isna().all()


def test_a_dry_run_writes_nothing(tmp_path, db_url, domain):
    engine = _queue(db_url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    res, counts = _import(_fill(xlsx, {"1": {"判断：分類": "共有すべきもの"}}), db_url, "--dry-run")
    assert res.exit_code == 0 and counts == (1, 0, 0, 0, 0) and "書き込みなし" in res.output, res.output
    assert _decided(engine)["decision_reviewer"].isna().all() and audit(engine, W).empty


def test_a_memo_alone_does_not_confirm_the_models_category(tmp_path, domain):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = _queue(url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    res, counts = _import(_fill(xlsx, {"4": {"判断：メモ": "あとで確認"}}), url)
    assert res.exit_code == 2 and counts == (0, 0, 0, 0, 1), res.output
    assert f"{_address(xlsx, '4', '判断：分類')}（D県の意見）：エラー" in res.output
    assert _decided(engine)["decision_reviewer"].isna().all()


def test_untouched_rows_are_unchanged_and_masked_texts_keep_what_is_stored(tmp_path, domain):
    """The export masks an officer's number in a memo; a row left as exported writes nothing, and a row
    whose category is changed keeps the stored memo instead of its masked form."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = _queue(url)
    memo = "担当 03-1234-5678 に確認済み"
    decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE", note=memo), seen=_decided(engine).loc["1", "read_code"])
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    sheet, r, h = _rows(xlsx)["1"]
    assert "1234-5678" not in load_workbook(xlsx)[sheet].cell(row=r, column=h["判断：メモ"]).value
    res, counts = _import(xlsx, url)
    assert res.exit_code == 0 and counts == (0, 1, 0, 0, 0), res.output
    res, counts = _import(_fill(xlsx, {"1": {"判断：分類": "解決済"}}), url)
    assert res.exit_code == 0 and counts == (1, 0, 0, 0, 0), res.output
    t = _decided(engine)
    assert t.loc["1", "decision_category"] == "RESOLVED" and t.loc["1", "decision_note"] == memo and int(t.loc["1", "decision_version"]) == 2


def test_rows_of_another_window_added_rows_and_formulas_are_errors(tmp_path, domain):
    from openpyxl.utils import get_column_letter

    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = _queue(url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    filled = _fill(xlsx, {"1": {"照会回": "R7-policy", "判断：分類": "共有すべきもの"}, "3": {"判断：分類": "射程外"}})
    wb = load_workbook(filled)
    sheet, r, h = _rows(filled)["3"]
    ws = wb[sheet]
    ws.cell(row=r, column=h["判断：メモ"]).value = "=1+1"  # a formula typed into Excel
    ws.cell(row=ws.max_row + 1, column=h["判断：分類"]).value = "抽象的なもの"  # a row a person added
    added = f"シート『{sheet}』の {get_column_letter(h['取込用：意見ID'])}{ws.max_row}"
    wb.save(filled)
    res, counts = _import(filled, url)
    assert res.exit_code == 2 and counts == (0, 0, 0, 0, 3), res.output
    assert f"{_address(xlsx, '1', '照会回')}" in res.output and "R7-policy" in res.output
    assert f"{_address(xlsx, '3', '判断：メモ')}" in res.output and "数式" in res.output
    assert added in res.output and "取込用の列" in res.output
    assert _decided(engine)["decision_reviewer"].isna().all()


def test_one_group_in_two_rows_that_disagree_is_an_error(tmp_path, domain):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = _queue(url)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    wb = load_workbook(xlsx)
    sheet, r, h = _rows(xlsx)["1"]
    ws = wb[sheet]
    ws.append([c.value for c in ws[r]])  # a copied row
    ws.cell(row=r, column=h["判断：分類"]).value = "共有すべきもの"
    ws.cell(row=ws.max_row, column=h["判断：分類"]).value = "解決済"
    wb.save(tmp_path / "twice.xlsx")
    res, counts = _import(tmp_path / "twice.xlsx", url)
    assert res.exit_code == 2 and counts == (1, 0, 0, 0, 1) and "判断が異なります" in res.output, res.output


def test_the_windows_own_candidate_list_is_the_drop_down_and_what_is_accepted(tmp_path, domain):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    cands = {"source": "window.yaml", "general_id": "K00", "candidates": [
        {"id": "K01", "number": 1, "name": "食品営業許可申請システム", "ministry": "厚生労働省", "aliases": []},
        {"id": "K02", "number": 2, "name": "公営住宅管理システム", "ministry": "国土交通省", "aliases": []},
        {"id": "K00", "number": None, "name": "全般", "ministry": "", "aliases": []},
    ]}  # fmt: skip
    engine = _queue(url, kind="candidate-list", candidates=cands)
    xlsx = export_window(engine, W, tmp_path / "out", domain).xlsx
    wb = load_workbook(xlsx)
    assert [c.value for c in wb["選択肢"]["B"][1:] if c.value] == ["K01 食品営業許可申請システム", "K02 公営住宅管理システム", "K00 全般"]
    assert "判断：記載の有無" not in _header(wb["共有すべきもの"])  # a candidate-list window
    res, counts = _import(_fill(xlsx, {"1": {"判断：分類": "共有すべきもの", "判断：対象候補": "K02 公営住宅管理システム"}, "3": {"判断：分類": "射程外", "判断：対象候補": "C01 入札参加資格審査システム"}}), url)
    assert res.exit_code == 2 and counts == (1, 0, 0, 0, 1) and _address(xlsx, "3", "判断：対象候補") in res.output, res.output
    res, counts = _import(_fill(xlsx, {"1": {"判断：分類": "共有すべきもの", "判断：対象候補": "K02 公営住宅管理システム"}, "3": {"判断：分類": "射程外", "判断：対象候補": "①"}}), url)
    assert res.exit_code == 0 and counts == (2, 0, 0, 0, 0), res.output
    t = _decided(engine)
    assert t.loc["1", "decision_candidate_id"] == "K02" and t.loc["3", "decision_candidate_id"] == "K01"


def test_files_that_are_not_an_export_are_refused_in_japanese(tmp_path, domain):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = _queue(url)
    made = export_window(engine, W, tmp_path / "out", domain)
    wb = Workbook()
    wb.active.append(["意見", "判断：分類"])
    wb.active.append(["x", "共有すべきもの"])
    wb.save(tmp_path / "other.xlsx")
    for path, msg in ((made.csv, ".xlsx"), (tmp_path / "other.xlsx", "取込用の列"), (tmp_path / "none.xlsx", "ありません")):
        res, _ = _import(path, url)
        assert res.exit_code == 2 and msg in res.output and "変更は行っていません" in res.output, (path, res.output)
    res, _ = _import(made.xlsx, url, window="R9-none")
    assert res.exit_code == 2 and "キューにありません" in res.output
    assert set(KEY_COLUMNS) <= set(_header(load_workbook(made.xlsx)["共有すべきもの"]))


def test_the_workbook_is_read_read_only_and_reads_as_an_editable_one(tmp_path):
    """issue 11: the import opens the file read-only (streamed, never written) and closes it; it reads the
    same rows and cells as a normally opened workbook — a title row above the header, blank cells, a
    formula, a row left empty in between — and a stale <dimension> smaller than the sheet loses no row."""
    import zipfile

    from pipeline.export import DECISION_CATEGORY, DECISION_NOTE
    from pipeline.sheet_import import load_workbook_file, read_rows

    wb = Workbook()
    ws = wb.active
    ws.title = "共有すべきもの"
    ws.append(["照会回 R7 の意見"])  # a title row a person added
    ws.append(["団体名（代表）", "照会回", DECISION_CATEGORY, "備考", DECISION_NOTE, *KEY_COLUMNS])
    ws.append(["A市", W, "共有すべきもの", None, None, "1", "K1", 0, "0123abcd"])
    ws.append(["B町", W, None, None, "メモだけ", "2", "K2", 1, "89abcdef"])
    ws.append([])  # an empty row in between
    ws.append([None, W, "=1+1", None, None, "3", "K3", 0, "deadbeef"])
    ws.append(["C村", W, None, None, None, "4", "K4", 0, "00000000"])  # nothing filled: not read
    ws.append([None, None, "抽象的なもの"])  # a filled row whose key cells are blank (A…B and F… empty)
    path = tmp_path / "filled.xlsx"
    wb.save(path)

    def cells(rows):
        return [(r.sheet, r.row, sorted(r.cells.items())) for r in rows]

    editable = read_rows(load_workbook(path))
    streamed = load_workbook_file(path)
    assert streamed.read_only
    try:
        assert cells(read_rows(streamed)[0]) == cells(editable[0]) and not editable[1]
    finally:
        streamed.close()
    rows = editable[0]
    assert [r.row for r in rows] == [3, 4, 6, 8]
    formula = rows[2].cells[DECISION_CATEGORY]
    assert formula.formula and formula.address == "C6" and rows[3].cells[KEY_COLUMNS[0]].address == "F8"

    # a writer that left the dimension of a smaller sheet: read-only openpyxl would stop at row 4
    stale = tmp_path / "stale.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stale, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:I4"/>', data)
                assert n == 1
            dst.writestr(item, data)
    streamed = load_workbook_file(stale)
    try:
        assert cells(read_rows(streamed)[0]) == cells(editable[0])
    finally:
        streamed.close()
