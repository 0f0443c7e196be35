"""The issue's acceptance flow through the real CLI, on SQLite and PostgreSQL:
run → list → decide what was listed (CLI and notebook API) → re-run with a corrected file and a retrained
model → export."""

import re
from dataclasses import replace

import pandas as pd
from openpyxl import load_workbook
from typer.testing import CliRunner

from pipeline.classify import save_model
from pipeline.cli import app
from pipeline.labeled import split
from pipeline.queue import Decision, audit, decide, list_queue, open_queue, sync_window, window_info, window_table
from pipeline.train import fit_opinion_model
from tests.conftest import write_csv

runner = CliRunner()
HEADER = ["番号", "団体名", "都道府県", "対象", "意見", "理由"]


def _window(folder, changed: bool = False, kind: str | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    if kind:
        (folder / "window.yaml").write_text(f"kind: {kind}\n", encoding="utf-8")
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


def listed(output: str) -> dict[str, tuple[str, str]]:
    """opinion id → (確認コード, 版) as `queue list` prints them: what a reviewer passes back."""
    return {m[0]: (m[1], m[2]) for m in re.findall(r"\] (\S+)  確認コード ([0-9a-f]{8})  版 v(\d+)", output)}


W = "R8-方針案"  # a policy-draft window whose name says nothing a program could guess from
JAPANESE = re.compile(r"[ぁ-んァ-ヶ一-龠]")


def test_decisions_survive_rerun_retrain_and_reach_the_export(tmp_path, db_url, tiny_model_dir, labeled, domain, params):
    raw = _window(tmp_path / "raw" / W, kind="policy-draft")
    out = tmp_path / "out"
    base = ["--out", str(out), "--db", db_url]
    res = runner.invoke(app, ["run", str(raw), "--model-dir", str(tiny_model_dir), *base])
    assert res.exit_code == 0, res.output
    engine = open_queue(db_url)
    assert window_info(engine, W)["kind"] == "policy-draft"

    # a CLI decision on the duplicate pair, on what `queue list` showed; a notebook-API decision on the contract opinion
    res = runner.invoke(app, ["queue", "list", "--window", W, "--all", "--db", db_url])  # --all: whatever the tiny model queued
    assert res.exit_code == 0 and "確認コード" in res.output, res.output
    code, version = listed(res.output)["1"]
    res = runner.invoke(app, ["queue", "decide", "1", "--window", W, "--reviewer", "佐藤", "--category", "SHARE", "--addressed", "no", "--revision", "標準項目を追記", "--seen", code, "--expect-version", version, "--db", db_url])
    assert res.exit_code == 0 and "1, 4" in res.output, res.output
    row = list_queue(engine, W, everything=True).set_index("opinion_id").loc["2"]
    decide(engine, domain, W, "2", "鈴木", Decision(category="ORG_SPECIFIC"), expected_version=int(row["decision_version"]), seen=row["read_code"])

    # corrected file (opinion 2 changed) and a retrained model
    _window(raw, changed=True)
    train = split(labeled, "train")
    model, _ = fit_opinion_model(train[train.index % 3 == 1], domain, replace(params.classify, features=("char", "cues")))
    retrained = tmp_path / "model2"
    save_model(model, retrained)
    res = runner.invoke(app, ["run", str(raw), "--model-dir", str(retrained), *base])
    assert res.exit_code == 0 and "人の判断は変更していません" in res.output, res.output

    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc[["1", "4"], "decision_category"].tolist() == ["SHARE", "SHARE"] and set(t.loc[["1", "4"], "status"]) == {"decided"}
    assert t.loc["2", "decision_category"] == "ORG_SPECIFIC" and t.loc["2", "status"] == "stale"
    res = runner.invoke(app, ["queue", "list", "--window", W, "--status", "stale", "--db", db_url])
    assert res.exit_code == 0 and "1 件" in res.output and "要再確認" in res.output
    assert window_info(engine, W)["kind"] == "policy-draft"  # still: window.yaml says so on every run

    res = runner.invoke(app, ["export", "--window", W, "--out", str(out), "--db", db_url])
    assert res.exit_code == 0, res.output
    exp = pd.read_csv(out / "wt_export.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    pair = exp[exp["代表意見ID"].isin(["1", "4"])].iloc[0]
    assert pair["同旨団体数"] == "2" and pair["判断者"] == "佐藤" and pair["記載の有無"] == "記載なし" and pair["修正意見"] == "標準項目を追記"
    stale = exp[exp["代表意見ID"] == "2"].iloc[0]
    assert stale["判断状況"].startswith("要再確認") and stale["区分"] == "除外"
    wb = load_workbook(out / "wt_export.xlsx")
    assert sum(ws.max_row - 1 for ws in wb.worksheets if ws.sheet_state == "visible") == len(exp) == 3  # 選択肢: the hidden drop-down lists
    assert (out / "report.html").exists()


def test_bad_queue_commands_change_nothing(tmp_path, db_url, tiny_model_dir):
    raw = _window(tmp_path / "raw" / "R8-policy")
    assert runner.invoke(app, ["run", str(raw), "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--db", db_url]).exit_code == 0
    for args, msg in [
        (["queue", "decide", "1", "--window", "R9-none", "--reviewer", "x", "--category", "SHARE", "--seen", "00000000"], "キューにありません"),
        (["queue", "decide", "99", "--window", "R8-policy", "--reviewer", "x", "--category", "SHARE", "--seen", "00000000"], "ありません"),
        (["queue", "decide", "1", "--window", "R8-policy", "--reviewer", "x", "--category", "共有", "--seen", "00000000"], "不正"),
        (["queue", "decide", "1", "--window", "R8-policy", "--reviewer", "x", "--category", "SHARE", "--seen", "00000000"], "確認コード"),
        (["queue", "list", "--window", "R8-policy", "--status", "done"], "status"),
        (["export", "--window", "R9-none"], "キューにありません"),
    ]:
        res = runner.invoke(app, [*args, "--db", db_url])
        assert res.exit_code == 2 and msg in res.output and JAPANESE.search(res.output), (args, res.output)
    assert (list_queue(open_queue(db_url), "R8-policy")["status"] == "pending").all()


def test_a_decision_needs_what_the_reviewer_read(tmp_path, db_url, tiny_model_dir):
    """`queue decide` without the 確認コード, or with one from before a re-run, stops and writes nothing."""
    raw = _window(tmp_path / "raw" / "R8-policy")  # no window.yaml: a candidate-list window, whatever its name
    # an opinion left blank with only a reason: ingest flags it, so it is listed whatever the model says
    write_csv(raw / "b.csv", HEADER, [("5", "E村", "A県", "", "", "理由のみ記載")])
    base = ["--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--db", db_url]
    assert runner.invoke(app, ["run", str(raw), *base]).exit_code == 0
    engine = open_queue(db_url)
    assert window_info(engine, "R8-policy")["kind"] == "candidate-list"
    listing = runner.invoke(app, ["queue", "list", "--window", "R8-policy", "--db", db_url]).output
    code, _ = listed(listing)["5"]
    decide_5 = ["queue", "decide", "5", "--window", "R8-policy", "--reviewer", "佐藤", "--category", "UNCLEAR_BASIS", "--db", db_url]
    res = runner.invoke(app, decide_5)
    assert res.exit_code == 2 and "確認コード" in res.output and "変更は行っていません" in res.output, res.output
    write_csv(raw / "b.csv", HEADER, [("5", "E村", "A県", "", "", "理由のみ記載（訂正版）")])  # corrected, re-run after the listing
    assert runner.invoke(app, ["run", str(raw), *base]).exit_code == 0
    res = runner.invoke(app, [*decide_5, "--seen", code])
    assert res.exit_code == 2 and "確認コード" in res.output and "読み直し" in res.output, res.output
    assert audit(engine, "R8-policy").empty
    fresh, _ = listed(runner.invoke(app, ["queue", "list", "--window", "R8-policy", "--db", db_url]).output)["5"]
    assert fresh != code
    res = runner.invoke(app, [*decide_5, "--seen", fresh])
    assert res.exit_code == 0 and "（1 件: 5）" in res.output, res.output


# --------------------------------------------------------------------------- issue 10 item 2: no English code, no generated id


def numbered(output: str) -> dict[int, tuple[str, str]]:
    """row number → (opinion id, 確認コード) as `queue list` prints them."""
    return {int(m[0]): (m[1], m[2]) for m in re.findall(r"^\s*(\d+)  \[[^\]]+\] (\S+)  確認コード ([0-9a-f]{8})", output, flags=re.M)}


def test_decide_by_the_row_number_of_a_listing_in_japanese(tmp_path, db_url):
    """`queue list` numbers its lines; `queue decide --row N` recomputes the same listing (same filters,
    nothing stored) and refuses when row N no longer shows what the reviewer read."""
    from tests.test_queue import batch

    engine = open_queue(db_url)
    sync_window(engine, W, batch(), kind="policy-draft")
    base = ["--window", W, "--db", db_url]
    listing = runner.invoke(app, ["queue", "list", *base, "--status", "確認待ち"])
    assert listing.exit_code == 0 and "--row 番号" in listing.output, listing.output
    rows = numbered(listing.output)
    assert [oid for oid, _ in rows.values()] == ["1", "2", "4"] and list(rows) == [1, 2, 3]
    assert numbered(runner.invoke(app, ["queue", "list", *base, "--status", "確認待ち"]).output) == rows  # reproducible

    decide = ["queue", "decide", *base, "--reviewer", "佐藤", "--status", "確認待ち"]
    res = runner.invoke(app, [*decide, "--row", "3", "--seen", rows[3][1], "--category", "抽象的なもの", "--candidate", "①", "--addressed", "記載なし"])
    assert res.exit_code == 0 and "3 番 = 意見 4" in res.output, res.output
    t = window_table(engine, W).set_index("opinion_id")
    assert (t.loc["4", "decision_category"], t.loc["4", "decision_candidate_id"], t.loc["4", "decision_addressed"]) == ("ABSTRACT", "C01", "no")

    # opinion 4 left the 確認待ち listing: its row 3 is gone, and nothing moved into it
    res = runner.invoke(app, [*decide, "--row", "3", "--seen", rows[3][1], "--category", "共有すべきもの"])
    assert res.exit_code == 2 and "ありません" in res.output and "変更は行っていません" in res.output, res.output
    # a re-run changed opinion 1's text: row 1 is still opinion 1, but not what was read
    sync_window(engine, W, batch(texts=["共通化の費用負担を早急に示されたい。", "共通化の費用負担を示されたい！", "本町では契約が残る。", "丁寧に進めてほしい。"]))
    res = runner.invoke(app, [*decide, "--row", "1", "--seen", rows[1][1], "--category", "共有すべきもの"])
    assert res.exit_code == 2 and "変わっています" in res.output and "読み直して" in res.output, res.output
    assert window_table(engine, W).set_index("opinion_id")["decision_reviewer"].notna().sum() == 1

    # the listing without the filter numbers differently: its own number and code work
    everything = numbered(runner.invoke(app, ["queue", "list", *base, "--all"]).output)
    assert [oid for oid, _ in everything.values()] == ["1", "2", "3", "4"]
    res = runner.invoke(app, ["queue", "decide", *base, "--reviewer", "佐藤", "--all", "--row", "3", "--seen", everything[3][1], "--category", "団体固有の事情"])
    assert res.exit_code == 0 and "3 番 = 意見 3" in res.output, res.output
    res = runner.invoke(app, ["queue", "list", *base, "--status", "確定"])
    assert res.exit_code == 0 and [oid for oid, _ in numbered(res.output).values()] == ["3", "4"], res.output

    for args, msg in [
        ([*decide, "1", "--row", "1", "--seen", rows[1][1], "--category", "共有すべきもの"], "どちらか一方"),
        ([*decide, "--seen", rows[1][1], "--category", "共有すべきもの"], "どちらか一方"),
        ([*decide, "--row", "1", "--seen", rows[1][1], "--addressed", "yes?"], "記載の有無"),
        (["queue", "list", *base, "--status", "済み"], "確認待ち"),
    ]:
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and msg in res.output, (args, res.output)


def test_at_a_terminal_decide_shows_the_opinion_and_records_on_yes_without_a_code(tmp_path, db_url, monkeypatch):
    """No 確認コード to type: at a terminal `queue decide --row N` without --seen shows the opinion, its
    group and the decision, and records only on はい/y — checked against what it showed."""
    import pipeline.cli as cli
    from tests.test_queue import batch

    engine = open_queue(db_url)
    b = batch()
    b["reason"] = ["事業者の負担が大きいため。", "", "", ""]
    sync_window(engine, W, b, kind="policy-draft")
    monkeypatch.setattr(cli, "_can_ask", lambda: True)
    decide = ["queue", "decide", "--window", W, "--db", db_url, "--reviewer", "佐藤", "--row", "1", "--category", "共有すべきもの", "--addressed", "記載なし"]

    res = runner.invoke(app, decide, input="n\n")
    assert res.exit_code == 1 and "記録しませんでした" in res.output, res.output
    for shown in ("共通化の費用負担を示されたい。", "事業者の負担が大きいため。", "同旨グループ: 2 件（A市、B町）", "記録する判断（同旨グループの 2 件すべて）: 分類 共有すべきもの、記載の有無 記載なし"):
        assert shown in res.output, (shown, res.output)
    assert list_queue(engine, W, "decided").empty and audit(engine, W).empty

    res = runner.invoke(app, decide, input="はい\n")
    assert res.exit_code == 0 and "1 番 = 意見 1、2 件: 1, 2" in res.output, res.output
    assert set(list_queue(engine, W, "decided")["opinion_id"]) == {"1", "2"}

    # an opinion id works the same; --only-this shows that only this one is decided
    res = runner.invoke(app, ["queue", "decide", "4", "--window", W, "--db", db_url, "--reviewer", "佐藤", "--category", "抽象的なもの", "--only-this"], input="y\n")
    assert res.exit_code == 0 and "記録する判断（この意見だけ）: 分類 抽象的なもの" in res.output, res.output


def test_without_a_terminal_decide_still_needs_the_code(tmp_path, db_url):
    from tests.test_queue import batch

    sync_window(open_queue(db_url), W, batch(), kind="policy-draft")
    res = runner.invoke(app, ["queue", "decide", "--window", W, "--db", db_url, "--reviewer", "佐藤", "--row", "1", "--category", "共有すべきもの"], input="y\n")
    assert res.exit_code == 2 and "--seen" in res.output and "端末から" in res.output and "変更は行っていません" in res.output, res.output
    assert list_queue(open_queue(db_url), W, "decided").empty
