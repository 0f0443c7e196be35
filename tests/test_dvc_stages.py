"""One pipeline (issue 9, item 13): `opinions run` and the DVC stages of dvc.yaml, run as dvc.yaml
writes them, produce the same files; the train stage's deps cover what training reads."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline import paths
from pipeline.cli import app

runner = CliRunner()
BATCH_STAGES = ("ingest", "normalise", "dedupe", "link_prior", "classify", "write")


def _dvc() -> dict:
    return yaml.safe_load((paths.PROJECT_ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def _invoke(args: list[str]) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (args, res.output)


def _stage_args(cmd: str, window: str, raw_dir, tmp_path, model_dir) -> list[str]:
    """A dvc.yaml command with its project paths moved into tmp_path (the window's raw folder, the
    interim files, the outputs root with the earlier window, the stage outputs, the model)."""
    argv = shlex.split(cmd.replace("${window}", window))
    assert argv[0] == "opinions", cmd

    def move(tok: str) -> str:
        if tok == f"data/raw/{window}":
            return str(raw_dir)
        if tok.startswith("data/interim/"):
            return str(tmp_path / "interim" / tok.removeprefix("data/interim/"))
        if tok == "outputs":  # --outputs-root: where the earlier windows are
            return str(tmp_path / "outputs")
        if tok.startswith("outputs/"):  # the stage path's own output folder, beside the run's
            return str(tmp_path / "stage_outputs" / tok.removeprefix("outputs/"))
        if tok == "models/default":
            return str(model_dir)
        assert not tok.startswith(("data/", "models/", "metrics/")), f"{tok}: a project path the test does not move ({cmd})"
        return tok

    return [move(t) for t in argv[1:]]


@pytest.fixture()
def policy_window(raw_window):
    """conftest's three-file window with the sample window's documents and window.yaml (policy-draft)."""
    sample = paths.RAW / "R7-sample"
    docs = raw_window / "references"
    docs.mkdir()
    for f in sorted((sample / "references").glob("*.md")):
        shutil.copy(f, docs / f.name)
    assert any(docs.iterdir()), "the sample window's references/ holds no .md document"
    shutil.copy(sample / "window.yaml", raw_window / "window.yaml")
    return raw_window


def test_run_and_the_dvc_stages_write_the_same_files(policy_window, tmp_path, tiny_model_dir, domain, monkeypatch):
    from pipeline.queue import Decision, decide, open_queue, window_table

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    monkeypatch.setenv("OPINIONS_DATABASE_URL", url)  # dvc.yaml's link-prior reads the default queue
    window, outputs = policy_window.name, tmp_path / "outputs"

    # an earlier window with one reviewer's decision: both paths link to it and carry the decision
    _invoke(["run", str(policy_window), "--window", "R6-a", "--out", str(outputs / "R6-a"), "--model-dir", str(tiny_model_dir), "--db", url])
    engine = open_queue(url)
    table = window_table(engine, "R6-a").set_index("opinion_id")
    human = "PRECONDITION" if table.loc["10", "category"] != "PRECONDITION" else "ABSTRACT"
    decide(engine, domain, "R6-a", "10", "佐藤", Decision(category=human), seen=table.loc["10", "read_code"])

    # path 1: opinions run
    _invoke(["run", str(policy_window), "--window", window, "--out", str(outputs / window), "--model-dir", str(tiny_model_dir), "--db", url])
    # path 2: the batch stages of dvc.yaml, in order, as dvc.yaml writes them
    stages = _dvc()["stages"]
    for name in BATCH_STAGES:
        _invoke(_stage_args(stages[name]["cmd"], window, policy_window, tmp_path, tiny_model_dir))

    run_dir, stage_dir = outputs / window, tmp_path / "stage_outputs" / window
    a = pd.read_csv(run_dir / "opinions.csv", dtype=str, keep_default_na=False)
    b = pd.read_csv(stage_dir / "opinions.csv", dtype=str, keep_default_na=False)
    assert len(a) == 4 and list(b.columns) == list(a.columns)
    assert b["opinion_id"].tolist() == a["opinion_id"].tolist()
    differing = [c for c in a.columns if b[c].tolist() != a[c].tolist()]
    assert not differing, {c: (a[c].tolist(), b[c].tolist()) for c in differing[:3]}
    assert (run_dir / "opinions.csv").read_bytes() == (stage_dir / "opinions.csv").read_bytes()  # encoding, BOM, quoting
    assert (run_dir / "ingest_report.csv").read_bytes() == (stage_dir / "ingest_report.csv").read_bytes()

    # the columns that once differed, and what the stages must carry from one file to the next
    a = a.set_index("opinion_id")
    assert (a["model_version"] != "").all() and a.loc["10", "prior_window"] == "R6-a" and a.loc["10", "prior_category"] == human
    ma = json.loads((run_dir / "run_manifest.json").read_text(encoding="utf-8"))
    mb = json.loads((stage_dir / "run_manifest.json").read_text(encoding="utf-8"))
    assert set(mb["timings_s"]) == set(ma["timings_s"]) == {"ingest", "normalise", "dedupe", "link_prior", "classify"}
    volatile = ("timings_s", "finished_at")
    assert {k: v for k, v in mb.items() if k not in volatile} == {k: v for k, v in ma.items() if k not in volatile}
    assert ma["kind"] == "policy-draft" and ma["prior_windows"] == ["R6-a"] and ma["model"]["data_version"] and ma["rows_in"] == 4


def test_the_classify_stage_reads_the_windows_documents():
    cmd = _dvc()["stages"]["classify"]
    assert "--raw-dir data/raw/${window}" in cmd["cmd"]
    assert {"data/raw/${window}/references", "data/raw/${window}/window.yaml"} <= set(cmd["deps"])


def test_the_train_stage_depends_on_everything_training_reads():
    """Every pipeline module `opinions train` imports (measured in a fresh interpreter, as the command
    imports them), the labelled corpus, its documents, harvested decisions and the classify params."""
    train = _dvc()["stages"]["train"]
    deps = {d if isinstance(d, str) else next(iter(d)) for d in train["deps"]}
    code = (
        "import sys\n"
        "import pipeline.cli\n"
        "from pipeline import classify, config, labeled, train\n"  # the imports of cli.train_default_model
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('pipeline.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=True).stdout.split()
    modules = {"pipeline/" + m.split(".", 1)[1].replace(".", "/") + ".py" for m in out}
    assert {"pipeline/train.py", "pipeline/normalize.py", "pipeline/labeled.py"} <= modules
    assert not modules - deps, f"dvc.yaml train deps miss {sorted(modules - deps)}"
    rel = lambda p: str(p.relative_to(paths.PROJECT_ROOT))  # noqa: E731
    assert {rel(paths.LABELED_CSV), rel(paths.LABELED_REFERENCES), rel(paths.HARVESTED), rel(paths.CONFIGS)} <= deps
    assert paths.HARVESTED.is_dir()  # a missing dep stops `dvc repro`: the folder's README keeps it
    assert train["params"] == ["classify"]


# --------------------------------------------------------------------------- metrics/ablation.csv (issue 9, item 16)


def test_ablate_writes_the_committed_columns_and_marks_the_chosen_row(tmp_path, monkeypatch):
    """`opinions ablate` (with training and scoring replaced by stand-ins: the real run retrains every
    set) always includes params.yaml's feature set, marks it ``chosen``, and writes the columns of the
    committed metrics/ablation.csv (which predates the ``chosen`` column: see metrics/README.md)."""
    from collections import defaultdict

    import pipeline.evaluate
    import pipeline.train
    from pipeline.config import load_params

    trained: list[tuple[str, ...]] = []

    def fit(train, domain, cfg, refs=None):
        trained.append(tuple(cfg.features))
        return object(), {"oof_category_macro_f1": 0.9}

    monkeypatch.setattr(pipeline.train, "fit_opinion_model", fit)
    monkeypatch.setattr(pipeline.evaluate, "evaluate_model", lambda model, rows, domain, refs=None: (defaultdict(lambda: 0.5), None, None))
    out = tmp_path / "ablation.csv"
    _invoke(["ablate", "--out", str(out), "--sets", "char;char,word,cues"])
    chosen = tuple(load_params().classify.features)
    assert trained == [("char",), ("char", "word", "cues"), chosen]  # not in --sets: added
    table = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert table.loc[table["chosen"] == "True", "features"].tolist() == ["+".join(chosen)]
    assert (table["cue_weight"] == str(load_params().classify.cue_weight)).all()
    committed = pd.read_csv(paths.METRICS / "ablation.csv", dtype=str, keep_default_na=False)
    assert [c for c in table.columns if c not in committed.columns] in ([], ["chosen"])
    assert [c for c in committed.columns if c not in table.columns] == []
    assert "+".join(chosen) in committed["features"].tolist()  # the chosen row is in the committed file
