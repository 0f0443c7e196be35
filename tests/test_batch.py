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
