from __future__ import annotations

import pandas as pd
import pytest

from pipeline.ingest import IngestError, assign_ids, decode_bytes, ingest_window, normalise_header, read_file
from tests.conftest import OPINIONS, write_csv, write_xlsx

HEADER = ["番号", "団体名", "都道府県", "対象", "意見", "理由"]


def test_window_of_mixed_formats_keeps_every_row_once(raw_window, domain, ingest_cfg):
    res = ingest_window(raw_window, "R9-test", domain, ingest_cfg)
    ops = res.opinions
    assert len(ops) == 4
    assert sorted(ops["source_file"].unique()) == ["aomori.csv", "iwate.xlsx", "towada.csv"]
    assert ops["opinion_id"].is_unique
    assert set(ops["window"]) == {"R9-test"}
    # the CP932 file decoded, the xlsx header found below its title row
    assert "保守契約" in ops.loc[ops["source_file"] == "towada.csv", "text"].iloc[0]
    iwate = ops[ops["source_file"] == "iwate.xlsx"].iloc[0]
    assert iwate["source_row"] == 3 and iwate["body"] == "岩手県" and iwate["opinion_id"] == "20"
    assert set(ops["ingest_status"]) == {"ok"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932", "shift_jis"])
def test_csv_encodings(tmp_path, domain, ingest_cfg, encoding):
    rows_in = OPINIONS[1:4]  # strict Shift_JIS has no ①: CP932 (Windows) does
    p = write_csv(tmp_path / "a.csv", HEADER, rows_in, encoding=encoding)
    rows, problems = read_file(p, domain, ingest_cfg)
    assert [r["text"] for r in rows] == [o[4] for o in rows_in]
    assert not [x for x in problems if x.level == "error"]


def test_undecodable_file_names_the_file(tmp_path, domain, ingest_cfg):
    d = tmp_path / "w"
    d.mkdir()
    (d / "broken.csv").write_bytes("意見\n".encode("utf-8") + b"\x81\x00\xff\xfe\xfa\n")
    write_csv(d / "good.csv", HEADER, OPINIONS[:1])
    with pytest.raises(IngestError) as e:
        ingest_window(d, "w", domain, ingest_cfg)
    assert "broken.csv" in str(e.value) and "文字コード" in str(e.value)


def test_missing_opinion_column_is_an_error_naming_file_and_headers(tmp_path, domain, ingest_cfg):
    d = tmp_path / "w"
    d.mkdir()
    write_csv(d / "nocol.csv", ["番号", "団体名", "コメント欄"], [("1", "A市", "x")])
    with pytest.raises(IngestError) as e:
        ingest_window(d, "w", domain, ingest_cfg)
    msg = str(e.value)
    assert "nocol.csv" in msg and "意見の列が見つかりません" in msg and "コメント欄" in msg


def test_empty_file_is_a_warning_not_a_failure(tmp_path, domain, ingest_cfg):
    d = tmp_path / "w"
    d.mkdir()
    (d / "empty.csv").write_bytes(b"")
    write_csv(d / "header_only.csv", HEADER, [])
    write_csv(d / "good.csv", HEADER, OPINIONS[:2])
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert len(res.opinions) == 2
    files = {p.file for p in res.problems}
    assert {"empty.csv", "header_only.csv"} <= files


def test_empty_opinion_row_is_kept_and_flagged(tmp_path, domain, ingest_cfg):
    p = write_csv(tmp_path / "a.csv", HEADER, [OPINIONS[0], ("9", "B町", "C県", "全般", "", "理由だけ書いた")])
    d = p.parent
    res = ingest_window(d, "w", domain, ingest_cfg)
    row = res.opinions.iloc[1]
    assert row["ingest_status"] == "empty_text" and row["reason"] == "理由だけ書いた"
    assert any(x.row == 3 and "空欄" in x.message for x in res.problems)


def test_wholly_blank_rows_are_reported(tmp_path, domain, ingest_cfg):
    p = write_csv(tmp_path / "a.csv", HEADER, [OPINIONS[0], ("", "", "", "", "", ""), OPINIONS[1]])
    res = ingest_window(p.parent, "w", domain, ingest_cfg)
    assert len(res.opinions) == 2
    assert any("空白の行" in x.message and x.row == 3 for x in res.problems)


def test_duplicate_ids_are_regenerated_and_reported(tmp_path, domain, ingest_cfg):
    d = tmp_path / "w"
    d.mkdir()
    write_csv(d / "a.csv", HEADER, [OPINIONS[0], OPINIONS[1]])
    write_csv(d / "b.csv", HEADER, [("1",) + OPINIONS[2][1:]])  # id 1 again, in another file
    res = ingest_window(d, "w", domain, ingest_cfg)
    ops = res.opinions
    assert ops["opinion_id"].is_unique
    assert ops.loc[ops["source_id"] == "1", "opinion_id"].tolist() == ["a#2", "b#2"]
    assert ops.loc[ops["source_id"] == "2", "opinion_id"].tolist() == ["2"]
    assert (ops.loc[ops["source_id"] == "1", "ingest_status"] == "id_regenerated").all()
    assert any("重複" in x.message for x in res.problems)


def test_missing_id_column_generates_stable_ids(tmp_path, domain, ingest_cfg):
    p = write_csv(tmp_path / "kochi.csv", ["自治体名", "意見等"], [("A市", "意見その1。"), ("B町", "意見その2。")])
    ids = ingest_window(p.parent, "w", domain, ingest_cfg).opinions["opinion_id"].tolist()
    again = ingest_window(p.parent, "w", domain, ingest_cfg).opinions["opinion_id"].tolist()
    assert ids == ["kochi#2", "kochi#3"] == again


def test_cell_over_limit_is_kept_whole_and_flagged(tmp_path, domain, ingest_cfg):
    long = "長い意見。" * 2500  # 12,500 characters
    p = write_csv(tmp_path / "a.csv", HEADER, [("1", "A市", "A県", "全般", long, "")])
    res = ingest_window(p.parent, "w", domain, ingest_cfg)
    row = res.opinions.iloc[0]
    assert row["text"] == long and row["ingest_status"] == "too_long"
    assert any("10,000" in x.message and x.row == 2 for x in res.problems)


def test_formula_looking_cell_stays_text(tmp_path, domain, ingest_cfg):
    p = write_csv(tmp_path / "a.csv", HEADER, [("1", "A市", "A県", "全般", "=HYPERLINK(\"http://x\")と書かれた意見", "+理由")])
    row = ingest_window(p.parent, "w", domain, ingest_cfg).opinions.iloc[0]
    assert row["text"].startswith("=HYPERLINK") and row["reason"] == "+理由"


def test_multiline_cells_and_row_numbers(tmp_path, domain, ingest_cfg):
    p = write_csv(tmp_path / "a.csv", HEADER, [("1", "A市", "A県", "全般", "一行目\n二行目\n①三行目", ""), OPINIONS[1]])
    ops = ingest_window(p.parent, "w", domain, ingest_cfg).opinions
    assert ops["text"].iloc[0] == "一行目\n二行目\n①三行目"
    assert ops["source_row"].tolist() == [2, 3]


def test_xlsx_numbers_and_sheets(tmp_path, domain, ingest_cfg):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "表紙"
    ws.append(["この照会への回答です"])
    ws2 = wb.create_sheet("回答")
    ws2.append(["No", "団体名", "意見"])
    ws2.append([1.0, "A市", "意見です。"])
    ws2.append([2, "B町", "別の意見です。"])
    wb.save(tmp_path / "book.xlsx")
    res = ingest_window(tmp_path, "w", domain, ingest_cfg)
    assert res.opinions["opinion_id"].tolist() == ["1", "2"]
    assert any("表紙" in x.file for x in res.problems)


def test_unsupported_files_are_reported_not_read(tmp_path, domain, ingest_cfg):
    write_csv(tmp_path / "a.csv", HEADER, OPINIONS[:1])
    (tmp_path / "memo.docx").write_bytes(b"PK")
    res = ingest_window(tmp_path, "w", domain, ingest_cfg)
    assert len(res.opinions) == 1
    assert any(x.file == "memo.docx" for x in res.problems)


def test_folder_without_files_is_an_error(tmp_path, domain, ingest_cfg):
    with pytest.raises(IngestError):
        ingest_window(tmp_path, "w", domain, ingest_cfg)
    with pytest.raises(IngestError):
        ingest_window(tmp_path / "nope", "w", domain, ingest_cfg)


def test_header_normalisation():
    assert normalise_header(" ご意見（200字以内） ") == "ご意見"
    assert normalise_header("Ｎｏ．") == "no."
    assert normalise_header("※意見") == "意見"


def test_utf16_excel_text(tmp_path, domain, ingest_cfg):
    text = "番号\t団体名\t意見\n1\tA市\t意見です。\n"
    (tmp_path / "u.txt").write_bytes(text.encode("utf-16"))
    assert ingest_window(tmp_path, "w", domain, ingest_cfg).opinions["text"].tolist() == ["意見です。"]


def test_decode_prefers_utf8():
    assert decode_bytes("意見".encode("utf-8"), "x")[1] == "utf-8"
    assert decode_bytes("意見".encode("cp932"), "x")[1] == "cp932"


def test_assign_ids_never_collides():
    f = pd.DataFrame({"source_id": ["a#2", "", "x"], "source_file": ["a.csv", "a.csv", "b.csv"], "source_sheet": ["", "", ""], "source_row": [3, 2, 2]})
    ids, _ = assign_ids(f)
    assert ids.is_unique


# --------------------------------------------------------------------------- holes (issue 9, item 2)

import re  # noqa: E402
import shutil  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _window(tmp_path, name="w") -> Path:
    d = tmp_path / name
    d.mkdir()
    return d


def _fatal(d, domain, ingest_cfg) -> str:
    with pytest.raises(IngestError) as e:
        ingest_window(d, "w", domain, ingest_cfg)
    msg = str(e.value)
    assert "Traceback" not in msg and JAPANESE.search(msg)
    return msg


def _xlsx_with_dimension(path: Path, rows: int, dimension: str) -> Path:
    """An .xlsx whose sheet says it spans ``dimension`` (as some producers write it), holding ``rows`` opinions."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "回答"
    ws.append(["番号", "団体名", "意見", "理由"])
    for i in range(1, rows + 1):
        ws.append([i, f"{i}市", f"意見その{i}。", f"理由その{i}。"])
    tmp = path.with_suffix(".tmp.xlsx")
    wb.save(tmp)
    with zipfile.ZipFile(tmp) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data, n = re.subn(rb'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{dimension}"/>'.encode(), data)
                assert n == 1
            zout.writestr(item, data)
    tmp.unlink()
    return path


def test_xlsx_with_a_wrong_stored_dimension_loses_no_row(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    _xlsx_with_dimension(d / "dim.xlsx", 6, "A1:B3")  # says 2 columns x 3 rows; holds 4 x 7
    ops = ingest_window(d, "w", domain, ingest_cfg).opinions
    assert ops["text"].tolist() == [f"意見その{i}。" for i in range(1, 7)]
    assert ops["reason"].iloc[-1] == "理由その6。"


def test_opinion_files_in_sub_folders_are_read(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    write_csv(d / "a.csv", HEADER, OPINIONS[:1])
    (d / "青森県").mkdir()
    write_csv(d / "青森県" / "a.csv", HEADER, [("", "青森県弘前市", "青森県", "", "サブフォルダの意見です。", "")])
    write_csv(d / "青森県" / "b.csv", HEADER, OPINIONS[2:3])
    (d / "青森県" / "loop").symlink_to(d, target_is_directory=True)  # a link back into the window: walked once
    res = ingest_window(d, "w", domain, ingest_cfg)
    ops = res.opinions
    assert len(ops) == 3 and ops["opinion_id"].is_unique
    assert sorted(ops["source_file"]) == ["a.csv", "青森県/a.csv", "青森県/b.csv"]
    assert ops.loc[ops["source_file"] == "青森県/a.csv", "opinion_id"].tolist() == ["青森県/a#2"]


def test_references_folder_and_window_yaml_are_not_opinion_files(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    write_csv(d / "a.csv", HEADER, OPINIONS[:2])
    (d / "references").mkdir()
    write_csv(d / "references" / "候補一覧.csv", ["候補", "説明"], [("C01", "入札")])
    (d / "references" / "方針案.md").write_text("# 方針案\n", encoding="utf-8")
    (d / "window.yaml").write_text("kind: policy-draft\n", encoding="utf-8")
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert len(res.opinions) == 2
    assert not [p for p in res.problems if "window.yaml" in p.file or "references" in p.file]


def test_unsupported_file_in_a_sub_folder_is_reported_with_its_path(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    write_csv(d / "a.csv", HEADER, OPINIONS[:1])
    (d / "old").mkdir()
    (d / "old" / "memo.docx").write_bytes(b"PK")
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert any(p.file == "old/memo.docx" and "対応していない形式" in p.message for p in res.problems)


@pytest.mark.parametrize("name", ["kaitou.xls", "kaitou.ods"])
def test_xls_and_ods_are_read(tmp_path, domain, ingest_cfg, name):
    d = _window(tmp_path)
    shutil.copy(FIXTURES / name, d / name)
    res = ingest_window(d, "w", domain, ingest_cfg)
    ops = res.opinions
    assert ops["opinion_id"].tolist() == ["101", "102"]
    assert ops["source_row"].tolist() == [4, 5] and set(ops["source_sheet"]) == {"回答"}
    assert ops["text"].iloc[1] == "照会の様式を統一していただきたい。\n二行目の補足。"
    assert any("記入例" in p.file and "記入例" in p.message for p in res.problems)


def test_xls_renamed_to_xlsx_is_read_for_what_it_is(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    shutil.copy(FIXTURES / "kaitou.xls", d / "renamed.xlsx")
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert res.opinions["opinion_id"].tolist() == ["101", "102"]
    assert any(p.file == "renamed.xlsx" and "中身は別の形式" in p.message for p in res.problems)


@pytest.mark.parametrize("name", ["broken.xls", "broken.ods", "broken.xlsx"])
def test_broken_workbook_names_the_file(tmp_path, domain, ingest_cfg, name):
    d = _window(tmp_path)
    write_csv(d / "a.csv", HEADER, OPINIONS[:1])
    (d / name).write_bytes(b"\xd0\xcf\x11\xe0 not really a workbook")
    msg = _fatal(d, domain, ingest_cfg)
    assert f"［エラー］ {name}: " in msg and "開けません" in msg


def test_data_sheet_with_an_unknown_header_stops_naming_file_and_sheet(tmp_path, domain, ingest_cfg):
    from openpyxl import Workbook

    d = _window(tmp_path)
    wb = Workbook()
    ws = wb.active
    ws.title = "回答"
    ws.append(["番号", "団体名", "意見"])
    ws.append([1, "A市", "意見です。"])
    ws2 = wb.create_sheet("追加分")
    ws2.append(["No", "団体", "コメント"])  # no opinion column the aliases know
    ws2.append([2, "B町", "追加の意見です。"])
    wb.save(d / "book.xlsx")
    msg = _fatal(d, domain, ingest_cfg)
    assert "book.xlsx［追加分］" in msg and "意見の列が見つかりません" in msg and "コメント" in msg


def test_empty_and_example_sheets_are_reported_as_skipped(tmp_path, domain, ingest_cfg):
    from openpyxl import Workbook

    d = _window(tmp_path)
    wb = Workbook()
    wb.active.title = "回答"
    wb.active.append(["番号", "団体名", "意見"])
    wb.active.append([1, "A市", "意見です。"])
    wb.create_sheet("Sheet2")
    ex = wb.create_sheet("記入例")
    ex.append(["番号", "団体名", "意見"])
    ex.append([1, "〇〇市", "（記入例）〇〇について"])
    wb.create_sheet("説明").append(["このシートには記入方法を記載しています。"])
    wb.save(d / "book.xlsx")
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert res.opinions["text"].tolist() == ["意見です。"]
    files = {p.file: p.message for p in res.problems}
    assert "空" in files["book.xlsx［Sheet2］"]
    assert "記入例" in files["book.xlsx［記入例］"] and "1 行" in files["book.xlsx［記入例］"]
    assert "book.xlsx［説明］" in files


def test_csv_cell_over_the_csv_field_limit_names_file_and_row(tmp_path, domain, ingest_cfg):
    import csv as csv_module

    d = _window(tmp_path)
    huge = "長" * (csv_module.field_size_limit() + 10)
    write_csv(d / "huge.csv", HEADER, [OPINIONS[0], ("2", "B町", "", "", huge, "")])
    msg = _fatal(d, domain, ingest_cfg)
    assert "huge.csv 3行目" in msg and "131,072" in msg


def test_unclosed_quote_names_file_and_row(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    (d / "q.csv").write_text('番号,団体名,意見\n1,A市,意見です。\n2,B町,"閉じ忘れの意見\n3,C村,次の意見\n', encoding="utf-8")
    msg = _fatal(d, domain, ingest_cfg)
    assert "q.csv 3行目" in msg and "引用符" in msg


def test_nul_bytes_are_removed_and_reported_with_rows(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    (d / "nul.csv").write_bytes("番号,団体名,意見\n1,A市,意見\x00です。\n2,B町,別の意見\x00\x00です。\n".encode("utf-8"))
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert res.opinions["text"].tolist() == ["意見です。", "別の意見です。"]
    assert any(p.file == "nul.csv" and "NUL" in p.message and p.row == 2 and "2-3 行目" in p.message for p in res.problems)


def test_utf16_without_bom_is_read(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    (d / "u.txt").write_bytes("番号\t団体名\t意見\n1\tA市\t意見です。\n".encode("utf-16-le"))
    assert ingest_window(d, "w", domain, ingest_cfg).opinions["text"].tolist() == ["意見です。"]


@pytest.mark.parametrize("name", ["locked.csv", "locked.xlsx", "locked.xls"])
def test_locked_or_unreadable_file_names_the_file(tmp_path, domain, ingest_cfg, monkeypatch, name):
    d = _window(tmp_path)
    write_csv(d / "a.csv", HEADER, OPINIONS[:1])
    target = d / name
    shutil.copy(FIXTURES / "kaitou.xls", target) if name.endswith(".xls") else write_csv(target, HEADER, OPINIONS[1:2]) if name.endswith(".csv") else write_xlsx(target, HEADER, OPINIONS[1:2])
    real_open = open

    def locked_open(file, *args, **kwargs):  # what Windows answers while Excel holds the file
        if str(file).endswith(name):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", locked_open)
    monkeypatch.setattr(Path, "read_bytes", lambda self: locked_open(self, "rb").read())
    msg = _fatal(d, domain, ingest_cfg)
    assert name in msg and "開けません" in msg and "Excel" in msg


def test_excel_lock_file_is_reported(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    write_xlsx(d / "book.xlsx", HEADER, OPINIONS[:1])
    (d / "~$book.xlsx").write_bytes(b"\x05owner")
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert len(res.opinions) == 1
    assert any(p.file == "~$book.xlsx" and "book.xlsx" in p.message and "Excel" in p.message for p in res.problems)


def test_messages_are_japanese_with_their_level(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    write_csv(d / "nocol.csv", ["番号", "コメント欄"], [("1", "x")])
    msg = _fatal(d, domain, ingest_cfg)
    assert msg.startswith("［エラー］ nocol.csv 1行目:")


def test_extra_cells_and_ambiguous_headers_are_reported(tmp_path, domain, ingest_cfg):
    d = _window(tmp_path)
    (d / "x.csv").write_text("番号,意見,ご意見\n1,一つ目,二つ目,はみ出し\n", encoding="utf-8")
    res = ingest_window(d, "w", domain, ingest_cfg)
    assert res.opinions["text"].tolist() == ["一つ目"]
    assert any(p.row == 1 and p.message == "列「ご意見」も意見の列と解釈できますが、先の列「意見」を使います。" for p in res.problems)
    assert any(p.row == 2 and "見出しより多い" in p.message for p in res.problems)


def test_readme_table_of_bad_inputs_names_tests_that_exist():
    """README 「入力の不備とその表示」: at least 30 cases, each naming a test that exists."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert "### 入力の不備とその表示" in readme
    section = readme.split("### 入力の不備とその表示", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) >= 30
    here = Path(__file__).parent
    defined = set(re.findall(r"^def (test_\w+)", (here / "test_ingest.py").read_text(encoding="utf-8") + (here / "test_normalize.py").read_text(encoding="utf-8"), re.M))
    for row in rows:
        named = re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[1])
        assert named and set(named) <= defined, row[:60]
