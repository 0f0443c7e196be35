"""Review queue on SQLite and, where a server is available, PostgreSQL (OPINIONS_TEST_PG_URL)."""

import sqlite3

import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.queue import ConflictError, Decision, QueueError, audit, decide, harvest, list_queue, open_queue, sync_window, window_table

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
    assert rows["dup_group"].tolist()[:2] == [f"{W}:G1"] * 2


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
        assert c.execute(sa.text("select version_num from alembic_version")).scalar() == "0001"


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
