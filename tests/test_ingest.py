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
