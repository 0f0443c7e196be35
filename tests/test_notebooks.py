"""The analysts' notebooks (jupytext percent scripts) run top to bottom against real objects."""

import runpy
from pathlib import Path

from pipeline.queue import list_queue, open_queue, sync_window
from tests.test_queue import batch

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_labeled_data_notebook_runs():
    ns = runpy.run_path(str(NOTEBOOKS / "labeled_data.py"))
    assert len(ns["data"]) >= 1500 and "kappa" in ns["agreement_report"](ns["sample"]).columns


def test_review_notebook_decides_into_the_same_database(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    monkeypatch.setenv("OPINIONS_DATABASE_URL", url)
    engine = open_queue(url)
    sync_window(engine, "R7-sample", batch())
    ns = runpy.run_path(str(NOTEBOOKS / "review_queue.py"))
    decided = list_queue(engine, "R7-sample", "decided")  # what the CLI would list
    assert set(ns["written"]) == set(decided["opinion_id"]) and set(decided["decision_reviewer"]) == {"分析担当"}
