"""End-to-end: the real `opinions` CLI on fixture files in tmp_path."""

import os
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.batch import CONTRACT_COLUMNS
from pipeline.cli import app
from tests.conftest import write_csv

runner = CliRunner()


def _data_rows(folder) -> int:
    """Data rows of a raw folder counted independently of the ingest code (pandas readers)."""
    n = 0
    for p in folder.iterdir():
        if p.suffix == ".xlsx":
            n += len(pd.read_excel(p, skiprows=1).dropna(how="all"))
        elif p.suffix == ".csv":
            for enc in ("utf-8-sig", "cp932"):
                try:
                    n += len(pd.read_csv(p, encoding=enc, dtype=str))
                    break
                except UnicodeDecodeError:
                    continue
    return n


def _db(tmp_path) -> list[str]:
    return ["--db", f"sqlite:///{tmp_path / 'queue.db'}"]


def test_tests_never_touch_the_users_database():
    """Guard (conftest): a command run without --db writes into the test's tmp_path, never into the
    project's review.db, the user's $OPINIONS_DATABASE_URL or configs/queue.yaml's server."""
    from pipeline import paths
    from pipeline.config import database_url

    url = database_url()
    assert url.startswith("sqlite:///") and str(paths.PROJECT_ROOT) not in url and "pytest" in url, url


def test_run_writes_the_contract(raw_window, tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(raw_window), "--out", str(out), "--model-dir", str(tiny_model_dir), *_db(tmp_path)])
    assert res.exit_code == 0, res.output
    ops = pd.read_csv(out / "opinions.csv", dtype=str, keep_default_na=False)
    assert len(ops) == 4 and list(ops.columns[: len(CONTRACT_COLUMNS)]) == list(CONTRACT_COLUMNS)
    assert set(ops["window"]) == {"R9-test"}  # defaults to the folder name
    assert (ops["category"] != "").all() and (ops["candidate_id"] != "").all()
    assert (out / "run_manifest.json").exists() and (out / "ingest_report.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert "4 件の意見" in res.output
    # and the meeting materials, as `opinions export --window R9-test --out OUT` writes them
    for name in ("wt_export.csv", "wt_export.xlsx", "report.html"):
        assert (out / name).exists() and str(out / name) in res.output, name
    exported = runner.invoke(app, ["export", "--window", "R9-test", "--out", str(tmp_path / "again"), *_db(tmp_path)])
    assert exported.exit_code == 0 and (tmp_path / "again" / "wt_export.csv").read_bytes() == (out / "wt_export.csv").read_bytes()


def test_second_window_links_to_the_first(raw_window, tmp_path, tiny_model_dir):
    outputs = tmp_path / "outputs"
    assert runner.invoke(app, ["run", str(raw_window), "--out", str(outputs / "R6-a"), "--window", "R6-a", "--model-dir", str(tiny_model_dir), *_db(tmp_path)]).exit_code == 0
    res = runner.invoke(app, ["run", str(raw_window), "--out", str(outputs / "R7-b"), "--window", "R7-b", "--model-dir", str(tiny_model_dir), *_db(tmp_path)])
    assert res.exit_code == 0, res.output
    ops = pd.read_csv(outputs / "R7-b" / "opinions.csv", dtype=str, keep_default_na=False)
    assert (ops["prior_window"] == "R6-a").all()


def test_the_prior_link_carries_the_human_decision(raw_window, tmp_path, tiny_model_dir, domain):
    """A reviewer corrected an R6 opinion: R7's link to it shows the decision, not the model's old label."""
    from pipeline.queue import Decision, decide, list_queue, open_queue, window_table

    outputs, db = tmp_path / "outputs", _db(tmp_path)
    assert runner.invoke(app, ["run", str(raw_window), "--out", str(outputs / "R6-a"), "--window", "R6-a", "--model-dir", str(tiny_model_dir), *db]).exit_code == 0
    engine = open_queue(db[1])
    table = window_table(engine, "R6-a").set_index("opinion_id")
    model = table["category"]
    human = "PRECONDITION" if model["10"] != "PRECONDITION" else "ABSTRACT"  # 本市の保守契約: corrected by a person
    decide(engine, domain, "R6-a", "10", "佐藤", Decision(category=human), seen=table.loc["10", "read_code"])
    assert list_queue(engine, "R6-a", "decided")["opinion_id"].tolist() == ["10"]
    res = runner.invoke(app, ["run", str(raw_window), "--out", str(outputs / "R7-b"), "--window", "R7-b", "--model-dir", str(tiny_model_dir), *db])
    assert res.exit_code == 0, res.output
    ops = pd.read_csv(outputs / "R7-b" / "opinions.csv", dtype=str, keep_default_na=False).set_index("opinion_id")
    assert ops.loc["10", "prior_opinion_id"] == "10" and ops.loc["10", "prior_category"] == human
    others = ops.index[ops.index != "10"]
    assert ops.loc[others, "prior_category"].tolist() == model.reindex(ops.loc[others, "prior_opinion_id"]).tolist()  # undecided: the model's label


def test_rerun_without_kind_keeps_the_kind_the_queue_holds(raw_window, tmp_path, tiny_model_dir):
    """A window run once with --kind policy-draft and re-run without it stays a policy-draft window for
    classification too (not only in the queue and export)."""
    import json

    out = tmp_path / "out"
    base = [str(raw_window), "--out", str(out), "--model-dir", str(tiny_model_dir), *_db(tmp_path)]
    assert runner.invoke(app, ["run", *base, "--kind", "policy-draft"]).exit_code == 0
    res = runner.invoke(app, ["run", *base])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "policy-draft" and manifest["kind_source"] == "queue"
    assert "方針案がないため" in res.output  # the window has no references/: no 記載の有無 verdict, said so


def test_bad_file_stops_with_its_name(tmp_path, tiny_model_dir):
    d = tmp_path / "w"
    d.mkdir()
    write_csv(d / "ok.csv", ["意見"], [("意見です。",)])
    write_csv(d / "bad.csv", ["団体名", "備考"], [("A市", "x")])
    res = runner.invoke(app, ["run", str(d), "--out", str(tmp_path / "o"), "--model-dir", str(tiny_model_dir), *_db(tmp_path)])
    assert res.exit_code == 2 and "bad.csv" in res.output and not (tmp_path / "o" / "opinions.csv").exists()


@pytest.mark.slow
def test_fresh_install_trains_then_runs_the_sample(fresh_sample_run):
    """The README's main job: no model yet → trains the default model from data/labeled, then runs
    the bundled sample window, with the network variables set offline."""
    run = fresh_sample_run
    assert run.result.exit_code == 0, run.result.output
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    ops = pd.read_csv(run.out / "opinions.csv", dtype=str, keep_default_na=False)
    assert len(ops) == _data_rows(run.sample) > 100  # every row of every file, once
    assert ops["opinion_id"].is_unique
    assert (run.model_dir / "text.skops").exists() and (run.model_dir / "coverage.skops").exists()


def test_report_numbers_become_valid_mlflow_metric_names():
    """A report key MLflow refuses (「epsilons.*」) stopped the first training of a fresh install."""
    import re

    from pipeline.cli import _flat

    names = _flat("", {"epsilons": {"SHARE": 0.02, "*": 0.1}, "a b": 1, "日本語": 2, "nested": {"x/y": 3}})
    assert len(names) == 5
    assert all(re.fullmatch(r"[0-9A-Za-z_\-. :/]+", n) for n in names), names


# --------------------------------------------------------------------------- Typer/Click's own messages in Japanese (issue 10)

ENGLISH = re.compile(r"Usage:|Try '|Error|Missing (option|argument)|No such (option|command)|requires an argument|does not take|unexpected extra|Invalid value|Show this message|\[required\]|\[default:|Options|Commands|Arguments|<str>|<int>|<bool>")


@pytest.mark.parametrize(
    "args, japanese",
    [
        (["queue", "decide", "--window", "W"], "オプション --reviewer の指定が必要です（判断者の名前）。"),
        (["run"], "引数 受信フォルダ の指定が必要です"),
        (["queue", "decide", "--window", "W", "--reviewer", "佐藤", "--row", "三"], "--row には整数を指定してください。"),
        (["queue", "decide", "--window", "W", "--reviewer", "佐藤", "--rwo", "3"], "オプション --rwo はありません。もしかして: --row"),
        (["queue", "list", "--window"], "オプション --window の後に値を指定してください。"),
        (["queue", "list", "--window", "W", "--all=1"], "オプション --all は値を取りません"),
        (["queue", "lst"], "コマンド「lst」はありません。もしかして: list"),
        (["expor"], "コマンド「expor」はありません。もしかして: export"),
        (["queue", "decide", "1", "2", "--window", "W", "--reviewer", "佐藤"], "余分な引数があります: 2。"),
    ],
)
def test_usage_errors_are_japanese(args, japanese):
    res = runner.invoke(app, args)
    out = re.sub(r"[│╭╮╰╯─\s]+", "", res.output)  # the error panel wraps lines
    assert res.exit_code == 2 and re.sub(r"\s+", "", japanese) in out, res.output
    assert "使い方:" in res.output or "エラー" in res.output
    assert not ENGLISH.search(res.output), res.output


@pytest.mark.parametrize("args", [["--help"], ["queue", "--help"], ["queue", "decide", "--help"], ["queue", "import", "--help"], ["run", "--help"], ["export", "--help"]])
def test_help_is_japanese(args):
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "使い方: " in res.output and "この説明を表示して終了する。" in res.output and "オプション" in res.output
    assert not ENGLISH.search(res.output), res.output


def test_every_queue_option_a_user_types_has_a_japanese_help():
    """--window and --db of the queue commands and export had no help text at all."""
    import typer.main

    group = typer.main.get_command(app)
    ctx = group.make_context("opinions", ["queue"], resilient_parsing=True)
    queue = group.get_command(ctx, "queue")
    commands = [queue.get_command(ctx, n) for n in ("list", "decide", "import", "harvest")] + [group.get_command(ctx, "export")]
    for cmd in commands:
        for p in cmd.params:
            assert p.help and JAPANESE_CHARS.search(p.help), (cmd.name, p.name)


JAPANESE_CHARS = re.compile(r"[ぁ-んァ-ヶ一-龠]")


def test_the_windows_kind_is_accepted_as_people_say_it():
    from pipeline.cli import kind_from_input
    from pipeline.references import load_window_meta

    assert [kind_from_input(k) for k in ("方針案", "候補一覧", " policy-draft ", None)] == ["policy-draft", "candidate-list", "policy-draft", None]
    assert load_window_meta(__import__("pathlib").Path("/nonexistent"), kind_from_input("方針案")).kind == "policy-draft"


# --------------------------------------------------------------------------- issue 11: `queue list` in pages


def test_list_page_and_the_rows_it_names():
    from pipeline.cli import LIST_ALL_UP_TO, PER_PAGE, list_page, shown_rows

    assert list_page(LIST_ALL_UP_TO, None, None) == (0, None, 1)  # a small window: everything, as before
    assert list_page(200_000, None, None) == (0, PER_PAGE, 1)  # a campaign window: the first page
    assert list_page(200_000, 3, None) == (2 * PER_PAGE, PER_PAGE, 3)
    assert list_page(4, None, 3) == (0, 3, 1) and list_page(23, 2, 5) == (5, 5, 2)
    for page, per_page, option in [(0, None, "--page"), (-1, 5, "--page"), (None, 0, "--per-page")]:
        with pytest.raises(ValueError, match=f"{option} には 1 以上"):
            list_page(10, page, per_page)
    assert shown_rows(0, 50, 200_000) == "1〜50件目／全 200,000件"
    assert shown_rows(1_000, 30, 1_030) == "1,001〜1,030件目／全 1,030件"


def _listed_rows(output: str) -> dict[int, tuple[str, str]]:
    """row number → (opinion id, 確認コード) as `queue list` prints them."""
    return {int(m[0]): (m[1], m[2]) for m in re.findall(r"^\s*(\d+)  \[[^\]]+\] (\S+)  確認コード ([0-9a-f]{8})", output, flags=re.M)}


def test_queue_list_pages_keep_the_row_numbers_decide_uses(tmp_path, monkeypatch):
    """`queue list --page/--per-page` prints rows offset+1… of the same numbered listing, says which of
    how many, and points to the next page; `queue decide --row N` reads only row N of that listing
    (numbered_queue offset N-1, limit 1) with the same filters, so a row of page 2 decides what it showed."""
    import pipeline.cli as cli
    import pipeline.queue as q
    from pipeline.queue import numbered_queue, open_queue, sync_window
    from tests.test_queue import W, _big_batch

    db = f"sqlite:///{tmp_path / 'q.db'}"
    engine = open_queue(db)
    sync_window(engine, W, _big_batch())  # 23 opinions
    base = ["queue", "list", "--window", W, "--db", db, "--all"]

    res = runner.invoke(app, [*base, "--page", "2", "--per-page", "5"])
    assert res.exit_code == 0, res.output
    assert f"{W}: 6〜10件目／全 23件" in res.output, res.output
    rows = _listed_rows(res.output)
    want = numbered_queue(engine, W, everything=True)
    assert list(rows) == [6, 7, 8, 9, 10]
    assert [rows[n] for n in rows] == [(want.loc[n - 1, "opinion_id"], want.loc[n - 1, "read_code"]) for n in rows]
    assert f"次のページ: opinions queue list --window {W} --all --page 3 --per-page 5" in res.output, res.output

    last = runner.invoke(app, [*base, "--page", "5", "--per-page", "5"])
    assert last.exit_code == 0 and "21〜23件目／全 23件" in last.output and "次のページ" not in last.output, last.output
    assert list(_listed_rows(last.output)) == [21, 22, 23]
    for args, msg in [(["--page", "6", "--per-page", "5"], "6 ページ目はありません（" + W + " --all: 全 23件、1 ページ 5 件で 5 ページまで）"), (["--page", "0"], "--page には 1 以上"), (["--per-page", "0"], "--per-page には 1 以上")]:
        res = runner.invoke(app, [*base, *args])
        assert res.exit_code == 2 and msg in res.output, (args, res.output)

    # no --page: everything when small (as before), the first page of PER_PAGE when large
    everything = runner.invoke(app, base)
    assert everything.exit_code == 0 and f"{W}: 23 件" in everything.output and list(_listed_rows(everything.output)) == list(range(1, 24)), everything.output
    monkeypatch.setattr(cli, "LIST_ALL_UP_TO", 20)
    monkeypatch.setattr(cli, "PER_PAGE", 8)
    first = runner.invoke(app, base)
    assert "1〜8件目／全 23件" in first.output and list(_listed_rows(first.output)) == list(range(1, 9)), first.output
    assert "--page 2 --per-page 8" in first.output

    # decide --row 7 (page 2 above): only that row is read, with the listing's filters
    calls = []
    real = q.numbered_queue
    monkeypatch.setattr(q, "numbered_queue", lambda *a, **k: (calls.append((a[2:], k)), real(*a, **k))[1])
    decide = ["queue", "decide", "--window", W, "--db", db, "--reviewer", "佐藤", "--all", "--only-this"]
    res = runner.invoke(app, [*decide, "--row", "7", "--seen", rows[7][1], "--category", "共有すべきもの"])
    assert res.exit_code == 0 and f"7 番 = 意見 {rows[7][0]}、1 件: {rows[7][0]}" in res.output, res.output
    assert calls == [((None,), {"everything": True, "offset": 6, "limit": 1})]
    assert numbered_queue(engine, W, "decided")["opinion_id"].tolist() == [rows[7][0]]
    # the same row under another filter is another opinion: its code does not match
    res = runner.invoke(app, [*decide[:-2], "--row", "7", "--seen", rows[7][1], "--category", "共有すべきもの"])
    assert res.exit_code == 2 and "変わっています" in res.output, res.output
    for row in ("0", "24"):
        res = runner.invoke(app, [*decide, "--row", row, "--seen", rows[7][1], "--category", "共有すべきもの"])
        assert res.exit_code == 2 and f"番号 {row} は一覧（{W} --all: 23 件）にありません" in res.output, res.output
