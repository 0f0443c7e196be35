import pandas as pd
import pytest

from pipeline.batch import CONTRACT_COLUMNS, RowCountError, output_frame, process_window
from pipeline.classify import classify_frame, load_model
from pipeline.ingest import ingest_window


def test_every_stage_keeps_every_row(raw_window, domain, params, tiny_model_dir):
    model = load_model(tiny_model_dir)
    ing = ingest_window(raw_window, "R9-test", domain, params.ingest)
    res = process_window(ing, params, lambda f: classify_frame(model, f, domain, None, "candidate-list"))
    assert len(res.opinions) == len(ing.opinions) == 4
    assert res.opinions["opinion_id"].tolist() == ing.opinions["opinion_id"].tolist()
    assert res.opinions.loc[0, "dup_count"] == 2  # the two 青森 bodies sent one text
    out = output_frame(res.opinions)
    assert list(out.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert set(out["needs_review"]) <= {"true", "false"}


def test_a_stage_that_drops_a_row_stops_the_batch(raw_window, domain, params):
    ing = ingest_window(raw_window, "R9-test", domain, params.ingest)
    with pytest.raises(RowCountError, match="classify"):
        process_window(ing, params, lambda f: f.iloc[1:])


def test_opinions_csv_opens_in_excel_and_keeps_the_contract(tmp_path):
    """UTF-8 with BOM (Excel takes a CSV without one for Shift_JIS), the contract's English header first,
    and the DVC stages' last step writes the same bytes as `opinions run`."""
    from pipeline.batch import WindowResult, write_outputs, write_stage_outputs
    from pipeline.ingest import Problem

    ops = pd.DataFrame({"opinion_id": ["1", "2"], "window": "R9-test", "body": ["八戸市", "弘前市"], "text": ["審査項目を統一してほしい。", "①について、異論なし"], "needs_review": [True, False], "dup_group": ["G1", "G2"], "dup_count": 1, "source_file": "a.csv"})
    problems = (Problem("a.csv", 3, "warning", "空欄の行を読み飛ばしました"),)
    files = write_outputs(WindowResult(ops, problems, {}), tmp_path / "run", {"window": "R9-test"})
    raw = files["opinions"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw[3:].decode("utf-8").startswith(",".join(CONTRACT_COLUMNS))
    back = pd.read_csv(files["opinions"], dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(back.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert back["text"].tolist() == ops["text"].tolist() and back["needs_review"].tolist() == ["true", "false"]
    assert files["ingest_report"].read_bytes().startswith(b"\xef\xbb\xbf")
    staged = write_stage_outputs(ops, {"window": "R9-test", "problems": [{"file": "a.csv", "row": 3, "level": "warning", "message": "空欄の行を読み飛ばしました"}]}, tmp_path / "stage")
    assert staged["opinions"].read_bytes() == raw and staged["ingest_report"].read_bytes() == files["ingest_report"].read_bytes()
