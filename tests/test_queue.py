"""Review queue on SQLite and, where a server is available, PostgreSQL (OPINIONS_TEST_PG_URL)."""

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.queue import (
    EVIDENCE_FIELDS,
    MIGRATIONS,
    ConflictError,
    Decision,
    QueueError,
    audit,
    decide,
    decided_labels,
    harvest,
    list_queue,
    open_queue,
    sync_window,
    window_info,
    window_table,
)

W = "R7-policy-test"


@pytest.fixture()
def engine(db_url):
    eng = open_queue(db_url)
    yield eng
    eng.dispose()


def batch(texts=None, categories=None, needs=None):
    texts = texts or ["共通化の費用負担を示されたい。", "共通化の費用負担を示されたい！", "本町では契約が残る。", "丁寧に進めてほしい。"]
    n = len(texts)
    return pd.DataFrame(
        {
            "opinion_id": [str(i + 1) for i in range(n)],
            "body": ["A市", "B町", "C村", "D県"][:n],
            "text": texts,
            "reason": "",
            "dup_group": ["G1", "G1", "G2", "G3"][:n],
            "dup_representative": ["1", "1", "3", "4"][:n],
            "dup_count": [2, 2, 1, 1][:n],
            "candidate_id": "C00",
            "candidate_confidence": 0.9,
            "category": categories or ["SHARE", "SHARE", "ORG_SPECIFIC", "ABSTRACT"],
            "category_confidence": 0.8,
            "needs_review": needs or ["false", "false", "false", "true"],
        }
    )


def test_sync_and_queue_membership(engine):
    assert sync_window(engine, W, batch()) == {"inserted": 4, "updated": 0, "missing_now": 0}
    q = list_queue(engine, W)
    assert q["opinion_id"].tolist() == ["1", "2", "4"]  # SHARE, SHARE, needs_review; not the confident exclusion
    assert set(q["status"]) == {"pending"}


def test_decision_applies_to_group_and_is_audited(engine, domain):
    sync_window(engine, W, batch())
    written = decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE", addressed="no", revision_request="追記を求める"))
    assert written == ["1", "2"]
    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc["2", "status"] == "decided" and t.loc["2", "decision_addressed"] == "no"
    log = audit(engine, W, "2")
    assert {"category", "addressed", "revision_request", "model_category"} <= set(log["field"]) and set(log["reviewer"]) == {"佐藤"}
    assert decide(engine, domain, W, "3", "佐藤", Decision(category="SHARE"), whole_group=True) == ["3"]
    assert decide(engine, domain, W, "2", "佐藤", Decision(note="個別"), whole_group=False) == ["2"]


def test_rerun_never_overwrites_a_decision_and_flags_changed_text(engine, domain):
    sync_window(engine, W, batch())
    decide(engine, domain, W, "1", "佐藤", Decision(category="RESOLVED"))
    # re-run: the model now says ABSTRACT for 1, and body 2 corrected its text
    changed = batch(texts=["共通化の費用負担を示されたい。", "共通化の費用負担を、早期に示されたい。", "本町では契約が残る。", "丁寧に進めてほしい。"], categories=["ABSTRACT", "SHARE", "ORG_SPECIFIC", "ABSTRACT"])
    assert sync_window(engine, W, changed)["updated"] == 4
    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc["1", "category"] == "ABSTRACT" and t.loc["1", "decision_category"] == "RESOLVED" and t.loc["1", "status"] == "decided"
    assert t.loc["2", "status"] == "stale" and t.loc["2", "decision_category"] == "RESOLVED"
    assert t.loc["1", "final_category"] == "RESOLVED"
    assert list_queue(engine, W, "stale")["opinion_id"].tolist() == ["2"]


def test_rerun_without_an_opinion_keeps_it(engine, domain):
    sync_window(engine, W, batch())
    decide(engine, domain, W, "3", "佐藤", Decision(category="ORG_SPECIFIC"))
    assert sync_window(engine, W, batch().iloc[[0, 1, 3]])["missing_now"] == 1
    t = window_table(engine, W).set_index("opinion_id")
    assert not t.loc["3", "present"] and t.loc["3", "decision_category"] == "ORG_SPECIFIC"


def test_concurrent_reviewers_conflict_instead_of_overwriting(engine, domain):
    sync_window(engine, W, batch())
    seen = int(list_queue(engine, W).set_index("opinion_id").loc["4", "decision_version"])  # both load v0
    decide(engine, domain, W, "4", "佐藤", Decision(category="ABSTRACT"), expected_version=seen)
    with pytest.raises(ConflictError, match="更新されています"):
        decide(engine, domain, W, "4", "鈴木", Decision(category="SHARE"), expected_version=seen)
    with pytest.raises(ConflictError, match="--overwrite"):
        decide(engine, domain, W, "4", "鈴木", Decision(category="SHARE"))
    assert window_table(engine, W).set_index("opinion_id").loc["4", "decision_category"] == "ABSTRACT"
    decide(engine, domain, W, "4", "鈴木", Decision(category="SHARE"), overwrite=True)
    assert audit(engine, W, "4")["reviewer"].tolist()[-1] == "鈴木"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window="nope", opinion_id="1", decision=Decision(category="SHARE")), "キューにありません"),
        (dict(window=W, opinion_id="99", decision=Decision(category="SHARE")), "ありません"),
        (dict(window=W, opinion_id="1", decision=Decision(category="SHAREE")), "不正"),
        (dict(window=W, opinion_id="1", decision=Decision(candidate_id="C99")), "不正"),
        (dict(window=W, opinion_id="1", decision=Decision(addressed="maybe")), "yes"),
    ],
)
def test_bad_requests_change_nothing(engine, domain, kwargs, message):
    sync_window(engine, W, batch())
    with pytest.raises(QueueError, match=message):
        decide(engine, domain, reviewer="佐藤", **kwargs)
    assert audit(engine, W).empty and (window_table(engine, W)["status"] == "pending").all()


def test_harvest_gives_valid_training_rows(engine, domain):
    from pipeline.labeled import validate

    sync_window(engine, W, batch())
    decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE", candidate_id="C01"))
    decide(engine, domain, W, "4", "佐藤", Decision(category="ABSTRACT"))
    rows = harvest(engine, W)
    validate(rows, domain)
    assert rows["opinion_id"].tolist() == [f"{W}:1", f"{W}:2", f"{W}:4"] and set(rows["split"]) == {"train"}
    assert rows["dup_group"].tolist()[:2] == [f"{W}:rep:1"] * 2  # the group's key (no dedupe key in this frame: its representative)


def test_locked_sqlite_database_gives_a_clear_message(tmp_path, domain):
    path = tmp_path / "locked.db"
    engine = open_queue(f"sqlite:///{path}")
    sync_window(engine, W, batch())
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(QueueError, match="ロック"):
            decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"))
    finally:
        blocker.rollback()
        blocker.close()
    assert audit(engine, W).empty


def test_migrations_are_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    open_queue(url)
    eng = open_queue(url)  # second open: no error, schema at head
    with eng.connect() as c:
        assert c.execute(sa.text("select version_num from alembic_version")).scalar() == "0004"


def test_group_decision_skips_opinions_that_left_the_window(engine, domain):
    """Group ids are renumbered per run: a removed opinion keeps its old id and must not be touched."""
    sync_window(engine, W, batch())  # 1,2 in G1
    rerun = batch().iloc[[1, 2, 3]].copy()  # opinion 1 left; the new G1 is {2}
    sync_window(engine, W, rerun)
    assert decide(engine, domain, W, "2", "佐藤", Decision(category="ABSTRACT")) == ["2"]
    assert "1" not in harvest(engine, W)["opinion_id"].str.split(":").str[-1].tolist()


def test_expected_version_does_not_overwrite_other_members(engine, domain):
    sync_window(engine, W, batch())
    decide(engine, domain, W, "2", "鈴木", Decision(category="RESOLVED"), whole_group=False)
    with pytest.raises(ConflictError, match="鈴木"):
        decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"), expected_version=0)
    assert window_table(engine, W).set_index("opinion_id").loc["2", "decision_category"] == "RESOLVED"


def test_repeating_a_decision_is_harmless(engine, domain):
    sync_window(engine, W, batch())
    decide(engine, domain, W, "4", "佐藤", Decision(category="ABSTRACT"))
    n = len(audit(engine, W))
    assert decide(engine, domain, W, "4", "佐藤", Decision(category="ABSTRACT")) == ["4"]
    assert len(audit(engine, W)) == n


def test_times_are_shown_in_japan_time():
    from pipeline.queue import jst

    assert jst(pd.Timestamp("2026-11-22 01:30")) == "2026-11-22 10:30"
    assert jst(pd.Timestamp("2026-11-22 01:30", tz="UTC")) == "2026-11-22 10:30"


# --------------------------------------------------------------------------- group identity (issue 9, item 5)


def _dedupe(rows, params):
    from pipeline.dedupe import group_duplicates
    from pipeline.normalize import normalise

    frame = pd.DataFrame(rows, columns=["opinion_id", "body", "text"]).assign(reason="")
    return group_duplicates(normalise(frame), params.dedupe).set_index("opinion_id")


SAME = "入札参加資格の審査項目が団体ごとに異なるため、共通化と併せて標準項目を示してほしい。"
OTHER = "ガバメントクラウドへの移行経費について財政支援を拡充されたい。"


def test_group_key_survives_a_rerun_with_a_copy_withdrawn_or_added(params):
    full = _dedupe([("1", "A市", SAME), ("2", "B町", SAME), ("3", "C村", SAME.replace("、", "")), ("4", "D県", OTHER)], params)
    key = full.loc["1", "dup_key"]
    assert full.loc[["1", "2", "3"], "dup_key"].tolist() == [key] * 3 and full.loc["4", "dup_key"] != key
    withdrawn = _dedupe([("2", "B町", SAME), ("3", "C村", SAME.replace("、", "")), ("4", "D県", OTHER)], params)  # the representative's copy left
    assert withdrawn.loc["2", "dup_representative"] != full.loc["2", "dup_representative"]
    assert withdrawn.loc["2", "dup_key"] == key and withdrawn.loc["4", "dup_key"] == full.loc["4", "dup_key"]
    added = _dedupe([("0", "E市", "本市の保守契約が令和9年まで残るため移行できない。"), ("1", "A市", SAME), ("2", "B町", SAME), ("4", "D県", OTHER)], params)
    assert added.loc["1", "dup_group"] != full.loc["1", "dup_group"]  # numbers moved ...
    assert added.loc["1", "dup_key"] == key and added.loc["4", "dup_key"] == full.loc["4", "dup_key"]  # ... keys did not
    empty = _dedupe([("1", "A市", ""), ("2", "B町", ""), ("3", "C村", SAME)], params)
    assert empty.loc["1", "dup_key"] != empty.loc["2", "dup_key"]  # two empty opinions are not one group


def test_a_decision_on_an_opinion_that_left_stays_with_it(engine, domain):
    """Run 1: {1,2} is G1. Run 2: 1 and 2 withdrawn, the numbers move (3 is now G1): deciding 1 must not
    reach 3, which merely inherited the number."""
    first = batch().assign(dup_key=["KA", "KA", "KB", "KC"])
    sync_window(engine, W, first)
    rerun = batch().iloc[[2, 3]].assign(dup_group=["G1", "G2"], dup_key=["KB", "KC"])
    sync_window(engine, W, rerun)
    assert decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE")) == ["1"]
    assert decide(engine, domain, W, "3", "佐藤", Decision(category="ORG_SPECIFIC")) == ["3"]
    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc["2", "decision_reviewer"] is None or pd.isna(t.loc["2", "decision_reviewer"])


def test_a_group_decision_follows_the_key_to_the_current_members(engine, domain):
    sync_window(engine, W, batch().assign(dup_key=["KA", "KA", "KB", "KC"]))
    grown = pd.concat([batch(), batch().iloc[[0]].assign(opinion_id="5", body="E市")], ignore_index=True)
    grown = grown.assign(dup_group=["G2", "G2", "G1", "G3", "G2"], dup_key=["KA", "KA", "KB", "KC", "KA"], dup_count=[3, 3, 1, 1, 3])
    sync_window(engine, W, grown)  # 5 joined the group, whose number changed
    assert decide(engine, domain, W, "5", "佐藤", Decision(category="SHARE")) == ["1", "2", "5"]


# --------------------------------------------------------------------------- decide what was read (item 6)


def test_a_decision_is_made_on_the_text_that_was_read(engine, domain):
    sync_window(engine, W, batch())
    seen = list_queue(engine, W).set_index("opinion_id").loc["1", "read_code"]
    assert len(seen) == 8
    # a re-run between `queue list` and `decide`: body B corrected its copy (still in the group)
    sync_window(engine, W, batch(texts=["共通化の費用負担を示されたい。", "共通化の費用負担を早期に示されたい！", "本町では契約が残る。", "丁寧に進めてほしい。"]))
    with pytest.raises(ConflictError, match="確認コード"):
        decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"), seen=seen)
    with pytest.raises(ConflictError, match="確認コード"):
        decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"), whole_group=False, seen=seen)
    assert audit(engine, W).empty and window_table(engine, W)["decision_reviewer"].isna().all()
    fresh = list_queue(engine, W).set_index("opinion_id").loc["1", "read_code"]
    assert fresh != seen and decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"), seen=fresh) == ["1", "2"]
    assert (window_table(engine, W).set_index("opinion_id").loc[["1", "2"], "status"] == "decided").all()


def test_a_new_member_of_the_group_changes_what_was_read(engine, domain):
    sync_window(engine, W, batch())
    seen = list_queue(engine, W).set_index("opinion_id").loc["4", "read_code"]
    joined = pd.concat([batch(), batch().iloc[[3]].assign(opinion_id="5", body="E市")], ignore_index=True).assign(dup_representative=["1", "1", "3", "4", "4"])
    sync_window(engine, W, joined)
    with pytest.raises(ConflictError, match="同旨グループ"):
        decide(engine, domain, W, "4", "佐藤", Decision(category="ABSTRACT"), seen=seen)
    assert audit(engine, W).empty


# --------------------------------------------------------------------------- window kind (item 8) and evidence columns


def test_window_kind_is_stored_never_guessed(engine):
    import pipeline.queue as q

    assert not hasattr(q, "window_kind")  # no guessing from the window's name
    sync_window(engine, "R7-方針案", batch(), kind="policy-draft")
    assert window_info(engine, "R7-方針案")["kind"] == "policy-draft"
    sync_window(engine, "R7-方針案", batch())  # kind=None: the stored kind stays
    assert window_info(engine, "R7-方針案")["kind"] == "policy-draft" and window_info(engine, "R7-方針案")["runs"] == 2
    sync_window(engine, W, batch())  # "policy" in the name means nothing
    assert window_info(engine, W)["kind"] == "candidate-list"
    sync_window(engine, W, batch(), kind="policy")  # the value 0001 wrote is still understood
    assert window_info(engine, W)["kind"] == "policy-draft"
    with pytest.raises(QueueError, match="candidate-list"):
        sync_window(engine, W, batch(), kind="方針")
    with pytest.raises(QueueError, match="キューにありません"):
        window_info(engine, "R9-none")


def test_evidence_columns_are_stored_per_opinion(engine):
    ev = {"resolved_by": "方針案.md#2 検討の方向性#1", "resolved_quote": "標準化を検討する", "addressed_suggestion": "記載なし", "nearest_passage": "方針案.md#3#2", "nearest_quote": "費用負担は今後", "prediction_set": "SHARE|RESOLVED"}
    sync_window(engine, W, batch().assign(**ev, dup_key=["KA", "KA", "KB", "KC"]))
    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc["1", list(EVIDENCE_FIELDS)].tolist() == list(ev.values()) and t.loc["3", "dup_key"] == "KB"
    sync_window(engine, W, batch())  # a frame without them: empty, not stale values
    t = window_table(engine, W).set_index("opinion_id")
    assert (t[list(EVIDENCE_FIELDS)] == "").all().all() and t.loc["3", "dup_key"] == "rep:3"


def test_a_0001_database_is_upgraded(db_url, domain):
    """A queue created before revision 0002: kinds mapped to DOMAIN.md's values, present rows keep
    their group (numbers of one run agree), an absent row is in no current group, evidence empty."""
    from alembic import command
    from alembic.config import Config

    eng = sa.create_engine(db_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    ts = pd.Timestamp("2026-11-22", tz="UTC").to_pydatetime()
    with eng.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        windows = sa.table("windows", *(sa.column(c) for c in ("window", "kind", "created_at", "last_run_at", "runs")))
        conn.execute(windows.insert(), [{"window": "R7-policy", "kind": "policy", "created_at": ts, "last_run_at": ts, "runs": 2}, {"window": "R6-x", "kind": "candidates", "created_at": ts, "last_run_at": ts, "runs": 1}])
        items = sa.table("items", *(sa.column(c) for c in ("window", "opinion_id", "text", "text_hash", "dup_group", "category", "candidate_id", "present", "row_order", "updated_at")))
        rows = [("1", "G1", True), ("2", "G1", True), ("9", "G1", False), ("3", "G2", True)]
        conn.execute(items.insert(), [{"window": "R7-policy", "opinion_id": o, "text": "x", "text_hash": "h" + o, "dup_group": g, "category": "SHARE", "candidate_id": "C00", "present": p, "row_order": i, "updated_at": ts} for i, (o, g, p) in enumerate(rows)])
    eng.dispose()
    engine = open_queue(db_url)
    try:
        assert window_info(engine, "R7-policy")["kind"] == "policy-draft" and window_info(engine, "R6-x")["kind"] == "candidate-list"
        t = window_table(engine, "R7-policy").set_index("opinion_id")
        assert (t[list(EVIDENCE_FIELDS)] == "").all().all()
        assert decide(engine, domain, "R7-policy", "9", "佐藤", Decision(category="SHARE")) == ["9"]
        assert decide(engine, domain, "R7-policy", "1", "佐藤", Decision(category="SHARE")) == ["1", "2"]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- real concurrency (item 7)


def _decide_in_another_process(db_url, opinion_id, reviewer, seen, extra, barrier, results):
    """Child process: the real CLI, started together with another; the first write to ``decisions`` is
    delayed so that both have read before either writes (the race a lock must close)."""
    import time

    import sqlalchemy as sa
    from typer.testing import CliRunner

    from pipeline.cli import app

    paused = []

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def _pause(conn, cursor, statement, parameters, context, executemany):
        if not paused and statement.lstrip().upper().startswith(("INSERT INTO DECISIONS", "UPDATE DECISIONS")):
            paused.append(1)
            time.sleep(0.6)

    barrier.wait(timeout=120)
    res = CliRunner().invoke(app, ["queue", "decide", opinion_id, "--window", W, "--reviewer", reviewer, "--category", "SHARE", "--note", reviewer, "--seen", seen, "--db", db_url, *extra])
    results.put((reviewer, res.exit_code, res.output))


def _race(db_url, contenders):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh interpreters: no connection inherited from this one
    barrier, results = ctx.Barrier(len(contenders)), ctx.Queue()
    procs = [ctx.Process(target=_decide_in_another_process, args=(db_url, *c, barrier, results)) for c in contenders]
    for p in procs:
        p.start()
    out = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return {reviewer: (code, output) for reviewer, code, output in out}


def test_two_processes_deciding_one_group_at_once(engine, db_url):
    sync_window(engine, W, batch())
    seen = list_queue(engine, W).set_index("opinion_id").loc["1", "read_code"]
    # round 1: two first decisions (inserts), on two members of the same group
    res = _race(db_url, [("1", "佐藤", seen, []), ("2", "鈴木", seen, [])])
    codes = sorted(code for code, _ in res.values())
    assert codes == [0, 2], res
    winner = next(r for r, (code, _) in res.items() if code == 0)
    loser_output = next(out for code, out in res.values() if code == 2)
    assert winner in loser_output and "変更は行っていません" in loser_output, loser_output
    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc[["1", "2"], "decision_reviewer"].tolist() == [winner] * 2 and t.loc[["1", "2"], "decision_note"].tolist() == [winner] * 2
    assert t.loc[["1", "2"], "decision_version"].tolist() == [1, 1] and set(audit(engine, W)["reviewer"]) == {winner}
    # round 2: two updates over version 1 (each says so and may overwrite): still one wins, whole
    res = _race(db_url, [("1", "田中", seen, ["--expect-version", "1", "--overwrite"]), ("2", "高橋", seen, ["--expect-version", "1", "--overwrite"])])
    assert sorted(code for code, _ in res.values()) == [0, 2], res
    winner = next(r for r, (code, _) in res.items() if code == 0)
    assert "更新されています" in next(out for code, out in res.values() if code == 2)
    t = window_table(engine, W).set_index("opinion_id")
    assert t.loc[["1", "2"], "decision_reviewer"].tolist() == [winner] * 2 and t.loc[["1", "2"], "decision_version"].tolist() == [2, 2]
    log = audit(engine, W)
    assert set(log["reviewer"]) == {next(iter(set(log["reviewer"]) - {"田中", "高橋"})), winner}


# --------------------------------------------------------------------------- the prior link and harvesting (items 9, 10, 14)


def test_decided_labels_are_the_human_decisions_on_the_current_text(engine, domain):
    sync_window(engine, W, batch())
    decide(engine, domain, W, "1", "佐藤", Decision(category="RESOLVED"))
    decide(engine, domain, W, "3", "佐藤", Decision(category="SHARE"))
    sync_window(engine, W, batch(texts=["共通化の費用負担を示されたい。", "共通化の費用負担を示されたい！", "本町では契約が令和9年まで残る。", "丁寧に進めてほしい。"]))  # 3 changed: stale
    got = decided_labels(engine, [W])
    assert got[["opinion_id", "category", "reviewer"]].values.tolist() == [["1", "RESOLVED", "佐藤"], ["2", "RESOLVED", "佐藤"]]
    assert decided_labels(engine, ["R1-none"]).empty and len(decided_labels(engine)) == 2


def test_harvested_rows_keep_no_contacts(engine, domain):
    texts = [
        "共通化の費用負担を示されたい。\n担当：情報政策課 佐藤花子 TEL 098-866-2200",
        "共通化の費用負担を示されたい！（問い合わせ先 taro.sato@city.example.lg.jp）",
        "本町では契約が残る。",
        "丁寧に進めてほしい。",
    ]
    sync_window(engine, W, batch(texts=texts).assign(reason=["", "担当者の事務負担が増えるため。内線 1234", "", ""]))
    decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"))
    rows = harvest(engine, W).set_index("opinion_id")
    joined = "\n".join(rows["text"].tolist() + rows["reason"].tolist())
    for leaked in ("098-866-2200", "taro.sato", "花子", "1234"):
        assert leaked not in joined, joined
    assert rows.loc[f"{W}:1", "text"] == "共通化の費用負担を示されたい。"
    assert rows.loc[f"{W}:2", "reason"].startswith("担当者の事務負担が増えるため。")  # an opinion about 担当者 stays


def test_harvested_rows_are_not_committed_by_accident():
    import subprocess

    from pipeline import paths

    if not (paths.PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    res = subprocess.run(["git", "check-ignore", "-q", "data/labeled/harvested/R7-sample.csv"], cwd=paths.PROJECT_ROOT)
    assert res.returncode == 0, "data/labeled/harvested/ must be git-ignored"


def test_training_refuses_harvested_dev_texts(tmp_path, domain, labeled):
    """The bundled sample window is made of dev texts: harvesting it must not feed dev into training."""
    from pipeline.labeled import load_training_corpus, split

    dev = split(labeled, "dev").iloc[:2]
    rows = pd.DataFrame(
        {
            "opinion_id": ["R7-sample:1", "R7-sample:2", "R7-sample:3"],
            "window": "R7-sample",
            "body": [dev["body"].iloc[0], dev["body"].iloc[1], "A市"],
            "prefecture": "",
            "stated_candidate": "",
            # the first as the sample carries it, the second re-typed in full width with other punctuation
            "text": [dev["text"].iloc[0], dev["text"].iloc[1].replace("、", "，").replace("。", "．") + "\n担当：情報政策課", "独自の新しい意見として、入札参加資格の申請様式の統一を求める。"],
            "reason": "",
            "candidate_id": "C01",
            "category": "SHARE",
            "dup_group": "",
            "note": "",
            "writer": "review:R7-sample",
            "split": "train",
        }
    )
    harvested = tmp_path / "harvested"
    harvested.mkdir()
    rows.to_csv(harvested / "R7-sample.csv", index=False)
    with pytest.warns(UserWarning, match="2 件は評価用"):
        corpus = load_training_corpus(harvested=harvested, domain=domain, windows=tmp_path / "no-windows")
    assert corpus.attrs["refused_dev_rows"] == 2
    assert corpus["opinion_id"].str.startswith("R7-sample:").sum() == 1 and len(corpus) == len(labeled) + 1


def test_harvest_command_says_how_many_rows_are_dev_texts(tmp_path, domain, labeled):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.labeled import split

    dev = split(labeled, "dev").iloc[0]
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = open_queue(url)
    frame = batch(texts=[dev["text"] + "\n担当：情報政策課 佐藤 TEL 098-866-2200", "共通化の費用負担を示されたい！", "本町では契約が残る。", "丁寧に進めてほしい。"])
    sync_window(engine, W, frame.assign(body=[dev["body"], "B町", "C村", "D県"], dup_group=["G1", "G2", "G3", "G4"], dup_representative=["1", "2", "3", "4"]))
    decide(engine, domain, W, "1", "佐藤", Decision(category="SHARE"))
    decide(engine, domain, W, "2", "佐藤", Decision(category="SHARE"))
    out = tmp_path / "harvested" / f"{W}.csv"
    res = CliRunner().invoke(app, ["queue", "harvest", "--window", W, "--out", str(out), "--db", url])
    assert res.exit_code == 0 and "2 件" in res.output and "1 件は評価用（dev 分割）" in res.output, res.output
    written = out.read_text(encoding="utf-8")
    assert "098-866-2200" not in written and "佐藤 TEL" not in written


# --------------------------------------------------------------------------- scale (issue 11): sync in batches, listing in SQL


def _big_batch(n=23):
    """n opinions in groups of three (G1 = 1–3 …), every fifth marked for review, every fourth SHARE."""
    return pd.DataFrame(
        {
            "opinion_id": [f"o{i:03d}" for i in range(n)],
            "body": [f"団体{i}" for i in range(n)],
            "text": [f"共通化の意見 {i // 3} の本文。" + ("追加の一文。" if i % 3 == 2 else "") for i in range(n)],
            "reason": "",
            "dup_group": [f"G{i // 3}" for i in range(n)],
            "dup_key": [f"K{i // 3}" for i in range(n)],
            "dup_representative": [f"o{(i // 3) * 3:03d}" for i in range(n)],
            "dup_count": 3,
            "candidate_id": "C01",
            "category": ["SHARE" if i % 4 == 0 else "ABSTRACT" for i in range(n)],
            "needs_review": ["true" if i % 5 == 0 else "false" for i in range(n)],
        }
    )


def test_sync_in_batches_writes_what_one_transaction_wrote(tmp_path, monkeypatch):
    """A 23-row window in batches of 4: the same table as in one batch, in 1 + 6 short transactions
    (+ 1 for the opinions that left), so a reviewer's write waits for one batch, not the window."""
    import pipeline.queue as q

    calls = []
    real = q._write_transaction
    monkeypatch.setattr(q, "_write_transaction", lambda eng: (calls.append(1), real(eng))[1])
    one, many = open_queue(f"sqlite:///{tmp_path}/one.db"), open_queue(f"sqlite:///{tmp_path}/many.db")
    assert sync_window(one, W, _big_batch(), batch_size=10_000) == sync_window(many, W, _big_batch(), batch_size=4) == {"inserted": 23, "updated": 0, "missing_now": 0}
    assert len(calls) == 2 + 1 + 6  # one: window row + 1 batch; many: window row + 6 batches
    drop = lambda t: t.drop(columns=["updated_at"])  # noqa: E731
    pd.testing.assert_frame_equal(drop(window_table(one, W)), drop(window_table(many, W)))
    calls.clear()
    again = _big_batch().iloc[3:]  # o000–o002 left the window
    assert sync_window(many, W, again, batch_size=4) == {"inserted": 0, "updated": 20, "missing_now": 3}
    assert len(calls) == 1 + 5 + 1
    t = window_table(many, W).set_index("opinion_id")
    assert not t.loc[["o000", "o001", "o002"], "present"].any() and t.drop(index=["o000", "o001", "o002"])["present"].all()
    assert t.loc["o003", "row_order"] == 0  # this run's order


def test_a_sync_stopped_by_a_lock_says_how_far_it_got_and_a_rerun_completes_it(tmp_path, monkeypatch):
    import pipeline.queue as q

    url = f"sqlite:///{tmp_path}/q.db"
    eng = open_queue(url)
    real, count = q._write_transaction, []

    def flaky(engine):
        count.append(1)
        if len(count) == 3:  # the window row and the first batch went through
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
        return real(engine)

    monkeypatch.setattr(q, "_write_transaction", flaky)
    with pytest.raises(QueueError, match="途中（4 / 23 件）"):
        sync_window(eng, W, _big_batch(), batch_size=4)
    monkeypatch.setattr(q, "_write_transaction", real)
    assert len(window_table(eng, W)) == 4
    assert sync_window(eng, W, _big_batch(), batch_size=4) == {"inserted": 19, "updated": 4, "missing_now": 0}
    assert len(window_table(eng, W)) == 23


def test_queue_listing_is_filtered_and_paged_in_sql(engine, domain, monkeypatch):
    """numbered_queue with filters and a page equals the filtered whole window table, sliced — and it
    does not read the whole window (window_table is not called)."""
    import pipeline.queue as q
    from pipeline.queue import numbered_queue, queue_count

    sync_window(engine, W, _big_batch())
    decide(engine, domain, W, "o003", "佐藤", Decision(category="SHARE"))  # group K1 (o003–o005) decided
    changed = _big_batch()
    changed.loc[changed["opinion_id"] == "o004", "text"] = "本文を直した。"  # o004's decision goes stale
    sync_window(engine, W, changed)
    whole = window_table(engine, W)
    whole = whole[whole["present"].astype(bool)].sort_values(["row_order", "opinion_id"]).reset_index(drop=True)
    monkeypatch.setattr(q, "window_table", lambda *a, **k: pytest.fail("the listing read the whole window"))
    for status in (None, "pending", "decided", "stale"):
        for everything in (False, True):
            want = whole[(whole["in_queue"] | everything) & ((whole["status"] == status) if status else True)].reset_index(drop=True)
            assert queue_count(engine, W, status, everything) == len(want) > 0
            full = numbered_queue(engine, W, status, everything)
            assert full["row"].tolist() == list(range(1, len(want) + 1))
            assert full["opinion_id"].tolist() == want["opinion_id"].tolist()
            assert full["read_code"].tolist() == want["read_code"].tolist()  # over the group's present members
            assert full["status"].tolist() == want["status"].tolist() and full["final_category"].tolist() == want["final_category"].tolist()
            page = numbered_queue(engine, W, status, everything, offset=2, limit=3)
            pd.testing.assert_frame_equal(page.reset_index(drop=True), full.iloc[2:5].reset_index(drop=True), check_dtype=False)
    assert set(numbered_queue(engine, W, "stale")["opinion_id"]) == {"o004"}
    assert numbered_queue(engine, W, offset=100, limit=10).empty
    with pytest.raises(QueueError, match="status"):
        numbered_queue(engine, W, "done")


LISTING_INDEX = "ix_items_window_present_order"


def test_revision_0004_indexes_the_listing_and_downgrades(db_url):
    """0004 adds items(window, present, row_order), which numbered_queue's WHERE and ORDER BY use; a
    downgrade to 0003 drops it and an upgrade puts it back (SQLite and PostgreSQL)."""
    from alembic import command
    from alembic.config import Config

    def listing_index(eng):
        return {ix["name"]: ix["column_names"] for ix in sa.inspect(eng).get_indexes("items")}.get(LISTING_INDEX)

    eng = open_queue(db_url)
    try:
        assert listing_index(eng) == ["window", "present", "row_order"]
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with eng.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert listing_index(eng) is None
        with eng.connect() as c:
            assert c.execute(sa.text("select version_num from alembic_version")).scalar() == "0003"
    finally:
        eng.dispose()
    eng = open_queue(db_url)  # back to head
    try:
        assert listing_index(eng) == ["window", "present", "row_order"]
        sync_window(eng, W, _big_batch())
        assert list_queue(eng, W)["opinion_id"].tolist() == window_table(eng, W).query("in_queue")["opinion_id"].tolist()
    finally:
        eng.dispose()


def test_a_listing_page_is_read_through_the_index_not_a_sort_of_the_window(tmp_path):
    """SQLite's plan of the very statements numbered_queue and queue_count run: the window's present
    rows are searched through 0004's index, in row order (no sort of the whole window for a page)."""
    from pipeline.queue import numbered_queue, queue_count

    eng = open_queue(f"sqlite:///{tmp_path / 'plan.db'}")
    sync_window(eng, W, _big_batch())
    ran = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "FROM items" in statement and not statement.startswith("EXPLAIN"):
            ran.append((statement, parameters))

    sa.event.listen(eng, "before_cursor_execute", capture)
    page = numbered_queue(eng, W, offset=2, limit=3)
    assert queue_count(eng, W) > len(page) == 3
    sa.event.remove(eng, "before_cursor_execute", capture)
    listing = [(s, p) for s, p in ran if "ORDER BY items.row_order" in s or "count(*)" in s]
    assert len(listing) == 2, [s for s, _ in ran]
    with eng.connect() as c:
        for statement, params in listing:
            plan = " / ".join(r[-1] for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
            assert f"items USING INDEX {LISTING_INDEX} (window=? AND present=?)" in plan, plan
            assert "TEMP B-TREE FOR ORDER BY" not in plan, plan  # at most ties of one row_order are sorted
    eng.dispose()
