"""The issue's acceptance flow through the real CLI, on SQLite and PostgreSQL:
run → decide (CLI and notebook API) → re-run with a corrected file and a retrained model → export."""

from dataclasses import replace

import pandas as pd
from openpyxl import load_workbook
from typer.testing import CliRunner

from pipeline.classify import save_model
from pipeline.cli import app
from pipeline.labeled import split
from pipeline.queue import Decision, decide, list_queue, open_queue, window_table
from pipeline.train import fit_opinion_model
from tests.conftest import write_csv

runner = CliRunner()
HEADER = ["番号", "団体名", "都道府県", "対象", "意見", "理由"]


def _window(folder, changed: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    text2 = "本町では令和10年3月まで現行システムの保守契約があるため、それまでは移行できない。"
    if changed:
        text2 = "本町では令和11年3月まで現行システムの保守契約があるため、それまでは移行できない。"
    rows = [
        ("1", "A市", "A県", "①", "入札参加資格の審査項目が団体ごとに異なるため、共通化と併せて標準項目を示してほしい。", "事業者の負担が大きいため。"),
        ("2", "B町", "A県", "", text2, ""),
        ("3", "C村", "A県", "全般", "丁寧に進めてほしい。", ""),
        ("4", "D市", "A県", "①", "入札参加資格の審査項目が団体ごとに異なるため、共通化と併せて標準項目を示してほしい。", "事業者の負担が大きいため。"),
    ]
    write_csv(folder / "a.csv", HEADER, rows)
    return folder


def test_decisions_survive_rerun_retrain_and_reach_the_export(tmp_path, db_url, tiny_model_dir, labeled, domain, params):
    raw = _window(tmp_path / "raw" / "R8-policy")
    out = tmp_path / "out"
    base = ["--out", str(out), "--db", db_url]
    res = runner.invoke(app, ["run", str(raw), "--model-dir", str(tiny_model_dir), *base])
    assert res.exit_code == 0, res.output

    # a CLI decision on the duplicate pair, a notebook-API decision on the contract opinion
    res = runner.invoke(app, ["queue", "decide", "1", "--window", "R8-policy", "--reviewer", "佐藤", "--category", "SHARE", "--addressed", "no", "--revision", "標準項目を追記", "--db", db_url])
    assert res.exit_code == 0 and "1, 4" in res.output, res.output
    engine = open_queue(db_url)
    decide(engine, domain, "R8-policy", "2", "鈴木", Decision(category="ORG_SPECIFIC"), expected_version=0)

    # corrected file (opinion 2 changed) and a retrained model
    _window(raw, changed=True)
    train = split(labeled, "train")
    model, _ = fit_opinion_model(train[train.index % 3 == 1], domain, replace(params.classify, features=("char", "cues")))
    retrained = tmp_path / "model2"
    save_model(model, retrained)
    res = runner.invoke(app, ["run", str(raw), "--model-dir", str(retrained), *base])
    assert res.exit_code == 0 and "人の判断は変更していません" in res.output, res.output

    t = window_table(engine, "R8-policy").set_index("opinion_id")
    assert t.loc[["1", "4"], "decision_category"].tolist() == ["SHARE", "SHARE"] and set(t.loc[["1", "4"], "status"]) == {"decided"}
    assert t.loc["2", "decision_category"] == "ORG_SPECIFIC" and t.loc["2", "status"] == "stale"
    res = runner.invoke(app, ["queue", "list", "--window", "R8-policy", "--status", "stale", "--db", db_url])
    assert res.exit_code == 0 and "1 件" in res.output and "要再確認" in res.output

    res = runner.invoke(app, ["export", "--window", "R8-policy", "--out", str(out), "--db", db_url])
    assert res.exit_code == 0, res.output
    exp = pd.read_csv(out / "wt_export.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    pair = exp[exp["代表意見ID"].isin(["1", "4"])].iloc[0]
    assert pair["同旨団体数"] == "2" and pair["判断者"] == "佐藤" and pair["記載の有無"] == "記載なし" and pair["修正意見"] == "標準項目を追記"
    stale = exp[exp["代表意見ID"] == "2"].iloc[0]
    assert stale["判断状況"].startswith("要再確認") and stale["区分"] == "除外"
    wb = load_workbook(out / "wt_export.xlsx")
    assert sum(ws.max_row - 1 for ws in wb.worksheets) == len(exp) == 3
    assert (out / "report.html").exists()


def test_bad_queue_commands_change_nothing(tmp_path, db_url, tiny_model_dir):
    raw = _window(tmp_path / "raw" / "R8-policy")
    assert runner.invoke(app, ["run", str(raw), "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--db", db_url]).exit_code == 0
    for args, msg in [
        (["queue", "decide", "1", "--window", "R9-none", "--reviewer", "x", "--category", "SHARE"], "キューにありません"),
        (["queue", "decide", "99", "--window", "R8-policy", "--reviewer", "x", "--category", "SHARE"], "ありません"),
        (["queue", "decide", "1", "--window", "R8-policy", "--reviewer", "x", "--category", "共有"], "不正"),
        (["queue", "list", "--window", "R8-policy", "--status", "done"], "status"),
        (["export", "--window", "R9-none"], "キューにありません"),
    ]:
        res = runner.invoke(app, [*args, "--db", db_url])
        assert res.exit_code == 2 and msg in res.output, (args, res.output)
    assert (list_queue(open_queue(db_url), "R8-policy")["status"] == "pending").all()
