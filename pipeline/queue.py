"""Review queue: model outputs per opinion, human decisions, and an audit log, in SQLite or PostgreSQL.

Invariants the WT relies on:
- a batch re-run (``sync_window``) updates model outputs only; it never writes a decision;
- a decision remembers the hash of the text it was made on: when the text changes, the decision is
  *stale* (kept, flagged for a second look), never silently applied to a different text;
- every change to a decision is in ``audit_log`` (who, when, field, old → new);
- a decision records the version it replaced; a reviewer who decides on an outdated view, or over
  another reviewer's decision without saying so, gets ``ConflictError`` and nothing is written.

- a decision is made on what the reviewer read: ``queue list`` shows a 確認コード (``read_code``, a hash of
  the texts of the opinion's current duplicate group); ``decide(..., seen=code)`` stops with
  ``ConflictError`` when the texts or the group changed since (a re-run in between);
- a duplicate group is named by its stable key (``dup_key``, dedupe.group_key), not by its number,
  which is renumbered every run; a group decision reaches the group's *present* members only;
- a window's kind (``candidate-list`` / ``policy-draft``) is stored in ``windows.kind`` and read
  through ``window_info``, never guessed from the window's name.

Status is derived, not stored: ``pending`` (in the queue, no decision), ``decided`` (decision on the
current text), ``stale`` (decision on an older text). The queue holds every opinion the model calls
共有すべきもの or sends to review, plus every opinion someone has decided.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.config import Domain

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
STATUSES = ("pending", "decided", "stale")
STATUS_LABELS = {"pending": "確認待ち", "decided": "確定", "stale": "要再確認"}  # per opinion; export.py adds group states
ADDRESSED = {"yes": "記載あり", "no": "記載なし"}
KINDS = ("candidate-list", "policy-draft")  # DOMAIN.md, window.yaml `kind`
DEFAULT_KIND = "candidate-list"
LEGACY_KINDS = {"policy": "policy-draft", "candidates": "candidate-list"}  # what revision 0001 wrote
# evidence per opinion from the batch (DOMAIN.md "Reference documents"); empty where the batch has none
EVIDENCE_FIELDS = ("resolved_by", "resolved_quote", "addressed_suggestion", "nearest_passage", "nearest_quote", "prediction_set")

# Column types mirror migrations/versions (the schema is created by Alembic, these only map it).
metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)
windows_t = sa.Table(
    "windows",
    metadata,
    sa.Column("window", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(20)),
    sa.Column("created_at", _TS),
    sa.Column("last_run_at", _TS),
    sa.Column("runs", sa.Integer),
    sa.Column("candidates", sa.Text),  # JSON: the window's candidate list (candidates.CandidateList.manifest)
)
_ITEM_TYPES = {"dup_count": sa.Integer, "candidate_confidence": sa.Float, "category_confidence": sa.Float, "needs_review": sa.Boolean, "present": sa.Boolean, "row_order": sa.Integer, "updated_at": _TS}
ITEM_FIELDS = (
    "body", "prefecture", "stated_candidate", "text", "reason", "text_hash", "dup_group", "dup_key", "dup_representative", "dup_count", "dup_bodies",
    "candidate_id", "candidate_name", "candidate_confidence", "category", "category_confidence", "needs_review", "category_reason", "candidate_reason",
    "review_reasons", "prior_window", "prior_opinion_id", "model_version", *EVIDENCE_FIELDS, "present", "row_order", "updated_at",
)  # fmt: skip
# copied from the batch frame as text ("" when the frame has no such column)
_TEXT_FIELDS = (
    "body", "prefecture", "stated_candidate", "text", "reason", "dup_group", "dup_representative", "dup_bodies", "candidate_id", "candidate_name", "category",
    "category_reason", "candidate_reason", "review_reasons", "prior_window", "prior_opinion_id", "model_version", *EVIDENCE_FIELDS,
)  # fmt: skip
items_t = sa.Table(
    "items",
    metadata,
    sa.Column("window", sa.String(100), primary_key=True),
    sa.Column("opinion_id", sa.String(200), primary_key=True),
    *[sa.Column(f, _ITEM_TYPES.get(f, sa.Text)) for f in ITEM_FIELDS],
)
DECISION_FIELDS = ("category", "candidate_id", "addressed", "revision_request", "reviewer", "note", "decided_at", "text_hash", "via_opinion_id", "version")
decisions_t = sa.Table(
    "decisions",
    metadata,
    sa.Column("window", sa.String(100), primary_key=True),
    sa.Column("opinion_id", sa.String(200), primary_key=True),
    *[sa.Column(f, {"decided_at": _TS, "version": sa.Integer}.get(f, sa.Text)) for f in DECISION_FIELDS],
)
audit_t = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *[sa.Column(f, _TS if f == "at" else sa.Text) for f in ("window", "opinion_id", "action", "field", "old", "new", "reviewer", "at")],
)


class QueueError(Exception):
    """A request the queue refuses (unknown window or id, bad code, locked database); nothing was written."""


class ConflictError(QueueError):
    """Someone else changed the decision since the reviewer looked at it."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def jst(ts) -> str:
    """A stored timestamp as Japan time for people (SQLite returns naive UTC values)."""
    if ts is None or (isinstance(ts, float) and ts != ts):
        return ""
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return t.tz_convert("Asia/Tokyo").strftime("%Y-%m-%d %H:%M")


def text_hash(text: str, reason: str) -> str:
    return hashlib.sha256(f"{text}\x1f{reason}".encode("utf-8")).hexdigest()


def canonical_kind(kind: str | None) -> str:
    """A stored or requested window kind as DOMAIN.md spells it (``policy``/``candidates`` from 0001 map)."""
    if kind is None or str(kind).strip() == "":
        return DEFAULT_KIND
    k = LEGACY_KINDS.get(str(kind).strip(), str(kind).strip())
    if k not in KINDS:
        raise QueueError(f"照会回の種類「{kind}」は不正です。使える値: {', '.join(KINDS)}")
    return k


def read_code(members: Sequence[tuple[str, str]]) -> str:
    """The 確認コード of what a reviewer reads for one opinion: 8 hex digits over (opinion id, text hash) of
    every member of its current duplicate group (the opinion alone when it is in none). It changes when a
    text, or the group's membership, changes."""
    joined = "\n".join(sorted(f"{oid}\x1f{h}" for oid, h in members))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:8]


# --------------------------------------------------------------------------- engine and migrations


def open_queue(url: str) -> Engine:
    """Engine for ``url`` with the schema migrated to the newest revision (Alembic)."""
    from alembic import command
    from alembic.config import Config

    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 3}
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, future=True, **kwargs)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.OperationalError as e:
        raise QueueError(f"データベースに接続できません（{_safe_url(url)}）: {e.orig}") from None
    return engine


def _safe_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _locked(e: Exception) -> QueueError:
    return QueueError(f"データベースが使用中（ロック中）のため書き込めませんでした。しばらくして再実行してください。変更は行っていません。（{getattr(e, 'orig', e)}）")


@contextmanager
def _write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """One all-or-nothing transaction that writes. SQLite takes the write lock at BEGIN (IMMEDIATE), so a
    second writer waits for the first and then reads what it wrote; without it, both would read first and
    decide on what they saw. PostgreSQL locks the rows it reads with SELECT … FOR UPDATE (see ``decide``)."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def _text(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, (list, tuple)):
        return "|".join(map(str, value))
    return str(value)


# --------------------------------------------------------------------------- batch → queue


SYNC_BATCH = 2_000  # rows per write transaction of sync_window: each holds SQLite's lock for a fraction of a second


def _item_row(window: str, order: int, d: dict, ts: dt.datetime) -> dict:
    """The items row of one batch opinion (``d``: a record of the batch frame)."""
    oid = _text(d["opinion_id"])
    rep = _text(d.get("dup_representative"))
    return {
        "window": window,
        "opinion_id": oid,
        **{f: _text(d.get(f)) for f in _TEXT_FIELDS},
        # a frame from before dedupe.group_key: the representative names the group within this run
        "dup_key": _text(d.get("dup_key")) or (f"rep:{rep}" if rep else f"own:{oid}"),
        "text_hash": text_hash(_text(d.get("text")), _text(d.get("reason"))),
        "dup_count": int(d.get("dup_count", 1) or 1),
        "candidate_confidence": float(d.get("candidate_confidence", 0) or 0),
        "category_confidence": float(d.get("category_confidence", 0) or 0),
        "needs_review": str(d.get("needs_review", "")).lower() in ("true", "1"),
        "present": True,
        "row_order": order,
        "updated_at": ts,
    }


def sync_window(
    engine: Engine, window: str, opinions: pd.DataFrame, kind: str | None = None, candidates: dict | None = None, batch_size: int = SYNC_BATCH
) -> dict:
    """Upsert a batch's model outputs for ``window``. Decisions are never touched; opinions missing
    from this run stay in the database with ``present = false``. Returns counts.

    ``kind`` (``candidate-list`` / ``policy-draft``, the window's window.yaml) is stored in
    ``windows.kind``; ``None`` keeps the stored kind (``candidate-list`` for a new window).
    ``candidates`` (``CandidateList.manifest()``): the window's candidate list, which decisions, the
    export and the report use; ``None`` keeps the stored one.

    Written in transactions of ``batch_size`` rows, not one: a window of 200,000 opinions in one
    transaction held SQLite's write lock for its whole length, and a reviewer deciding meanwhile waited
    past the 3 s timeout (「データベースが使用中」). Between two batches a reader sees the window partly
    re-synced: every row is either the previous run's or this run's, never half of each, and
    ``decide`` refuses a decision on a group whose members or texts moved since it was read (確認コード).
    An interrupted sync leaves no decision touched; running it again completes it (each row is an upsert).
    The opinions missing from this run are marked absent last, once every present row is written."""
    kind = canonical_kind(kind) if kind is not None else None
    cands = json.dumps(candidates, ensure_ascii=False) if candidates is not None else None
    ts = now()
    # only the columns the queue stores, converted batch by batch (a whole 200,000-row frame as dicts
    # of every column took half the sync's time and a gigabyte)
    wanted = [c for c in opinions.columns if c in {"opinion_id", "dup_key", "dup_count", "candidate_confidence", "category_confidence", "needs_review", *_TEXT_FIELDS}]
    opinions = opinions[wanted]
    new_ids = [_text(v) for v in opinions["opinion_id"].tolist()]
    try:
        with _write_transaction(engine) as conn:
            if conn.execute(sa.select(windows_t.c.window).where(windows_t.c.window == window)).first():
                values = {"last_run_at": ts, "runs": windows_t.c.runs + 1, **({"kind": kind} if kind else {}), **({"candidates": cands} if cands else {})}
                conn.execute(windows_t.update().where(windows_t.c.window == window).values(**values))
            else:
                conn.execute(windows_t.insert().values(window=window, kind=kind or DEFAULT_KIND, created_at=ts, last_run_at=ts, runs=1, candidates=cands or ""))
        with engine.connect() as conn:
            existing = {r.opinion_id for r in conn.execute(sa.select(items_t.c.opinion_id).where(items_t.c.window == window))}
        stmt = items_t.update().where(items_t.c.window == sa.bindparam("w"), items_t.c.opinion_id == sa.bindparam("oid")).values({f: sa.bindparam(f) for f in ITEM_FIELDS})
        inserted = updated = 0
        for start in range(0, len(opinions), batch_size):
            part = opinions.iloc[start : start + batch_size]
            cols = [part[c].tolist() for c in wanted]  # column by column: iterating arrow-backed strings per cell is slow
            rows = [_item_row(window, start + k, dict(zip(wanted, values)), ts) for k, values in enumerate(zip(*cols))]
            inserts = [r for r in rows if r["opinion_id"] not in existing]
            updates = [{"w": r["window"], "oid": r["opinion_id"], **{f: r[f] for f in ITEM_FIELDS}} for r in rows if r["opinion_id"] in existing]
            with _write_transaction(engine) as conn:
                if inserts:
                    conn.execute(items_t.insert(), inserts)
                if updates:
                    conn.execute(stmt, updates)
            inserted, updated = inserted + len(inserts), updated + len(updates)
            existing.update(r["opinion_id"] for r in inserts)
        missing = sorted(existing - set(new_ids))
        absent = items_t.update().where(items_t.c.window == window, items_t.c.opinion_id == sa.bindparam("oid")).values(present=False)
        for start in range(0, len(missing), batch_size):
            with _write_transaction(engine) as conn:
                conn.execute(absent, [{"oid": oid} for oid in missing[start : start + batch_size]])
    except sa.exc.OperationalError as e:
        if inserted or updated:
            raise QueueError(
                f"データベースが使用中（ロック中）のため、確認キューへの反映が途中（{inserted + updated:,} / {len(opinions):,} 件）で止まりました。"
                f"人の判断は変更していません。しばらくして同じコマンドを再実行すると残りを反映します。（{getattr(e, 'orig', e)}）"
            ) from None
        raise _locked(e) from None
    return {"inserted": inserted, "updated": updated, "missing_now": len(missing)}


# --------------------------------------------------------------------------- reading


def _require_window(conn, window: str) -> None:
    if not conn.execute(sa.select(windows_t.c.window).where(windows_t.c.window == window)).first():
        known = [r.window for r in conn.execute(sa.select(windows_t.c.window))]
        raise QueueError(f"照会回「{window}」はキューにありません（登録済み: {', '.join(known) or 'なし'}）。先に `opinions run` を実行してください。")


def window_info(engine: Engine, window: str) -> dict:
    """What the queue knows of a window: ``kind`` (``candidate-list`` / ``policy-draft``, as stored by the
    batch; 0001's ``policy``/``candidates`` mapped), ``created_at``, ``last_run_at``, ``runs``."""
    with engine.connect() as conn:
        _require_window(conn, window)
        r = conn.execute(sa.select(windows_t).where(windows_t.c.window == window)).mappings().one()
    return {
        "window": window, "kind": canonical_kind(r["kind"]), "created_at": r["created_at"], "last_run_at": r["last_run_at"], "runs": int(r["runs"] or 0),
        "candidates": json.loads(r["candidates"]) if r["candidates"] else None,
    }  # fmt: skip


def window_domain(engine: Engine, window: str, base: Domain) -> Domain:
    """``base`` with the candidate list the batch used for ``window`` (the configured list for a window
    stored before lists came with the window)."""
    from pipeline.candidates import from_manifest

    stored = window_info(engine, window)["candidates"]
    return base.with_candidates(from_manifest(stored).candidates) if stored else base


def _read_codes(frame: pd.DataFrame) -> pd.Series:
    """``read_code`` per row: over the present members of its group; an absent row alone. One pass over
    plain lists (a pandas group-by with one assignment per group took seconds at 100,000 groups)."""
    keys = frame["dup_key"].fillna("").tolist()
    present = frame["present"].astype(bool).tolist()
    pairs = list(zip(frame["opinion_id"].tolist(), frame["text_hash"].tolist()))
    members: dict[str, list[tuple[str, str]]] = {}
    for k, p, pair in zip(keys, present, pairs):
        if p and k:
            members.setdefault(k, []).append(pair)
    codes = {k: read_code(m) for k, m in members.items()}
    return pd.Series([codes[k] if p and k else read_code([pair]) for k, p, pair in zip(keys, present, pairs)], index=frame.index, dtype=object)


_JOIN = items_t.outerjoin(decisions_t, sa.and_(items_t.c.window == decisions_t.c.window, items_t.c.opinion_id == decisions_t.c.opinion_id))
_COLUMNS = [items_t.c[c] for c in ("window", "opinion_id", *ITEM_FIELDS)] + [decisions_t.c[f].label(f"decision_{f}") for f in DECISION_FIELDS]
TABLE_COLUMNS = ["window", "opinion_id", *ITEM_FIELDS, *(f"decision_{f}" for f in DECISION_FIELDS), "status", "in_queue", "final_category", "final_candidate", "read_code"]
CODE_KEYS_CHUNK = 500  # duplicate-group keys per query when a page's 確認コード are computed


def _derived(frame: pd.DataFrame) -> pd.DataFrame:
    """Status (derived, never stored), queue membership and final labels of rows read from the join."""
    has = frame["decision_reviewer"].notna()
    frame["status"] = "pending"
    frame.loc[has & (frame["decision_text_hash"] == frame["text_hash"]), "status"] = "decided"
    frame.loc[has & (frame["decision_text_hash"] != frame["text_hash"]), "status"] = "stale"
    frame["in_queue"] = (frame["category"] == "SHARE") | frame["needs_review"].astype(bool) | has
    frame["final_category"] = frame["decision_category"].where(has, frame["category"])
    frame["final_candidate"] = frame["decision_candidate_id"].where(has, frame["candidate_id"])
    frame["decision_version"] = frame["decision_version"].fillna(0).astype(int)
    return frame


def window_table(engine: Engine, window: str) -> pd.DataFrame:
    """Every opinion of the window with its decision (if any), status and final labels."""
    with engine.connect() as conn:
        _require_window(conn, window)
        frame = pd.DataFrame(conn.execute(sa.select(*_COLUMNS).select_from(_JOIN).where(items_t.c.window == window).order_by(items_t.c.row_order)).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    frame = _derived(frame)
    frame["read_code"] = _read_codes(frame)
    return frame


def _status_sql():
    """``status`` as SQL, the same rule as ``_derived``: no decision → pending; a decision on the current
    text → decided; otherwise (another text, or none recorded) → stale."""
    has = decisions_t.c.reviewer.isnot(None)
    return sa.case((decisions_t.c.reviewer.is_(None), "pending"), (decisions_t.c.text_hash == items_t.c.text_hash, "decided"), else_="stale"), has


def _queue_filter(window: str, status: str | None, everything: bool) -> list:
    """The WHERE of a window's queue listing: present rows; in the queue (共有すべきもの, marked for review
    or decided) unless ``everything``; of ``status`` when given."""
    if status is not None and status not in STATUSES:
        raise QueueError(f"status は {', '.join(STATUSES)} のいずれかです（「{status}」）。")
    status_col, has = _status_sql()
    where = [items_t.c.window == window, items_t.c.present.is_(True)]
    if not everything:
        where.append(sa.or_(items_t.c.category == "SHARE", items_t.c.needs_review.is_(True), has))
    if status:
        where.append(status_col == status)
    return where


def _group_codes(conn, window: str, keys: Sequence[str]) -> dict[str, str]:
    """``read_code`` of each duplicate group named in ``keys``, over its present members: only those
    groups are read (a page of 100 rows of a 200,000-opinion window reads a few hundred rows)."""
    keys = sorted({k for k in keys if k})
    members: dict[str, list[tuple[str, str]]] = {}
    cols = (items_t.c.dup_key, items_t.c.opinion_id, items_t.c.text_hash)
    for start in range(0, len(keys), CODE_KEYS_CHUNK):
        q = sa.select(*cols).where(items_t.c.window == window, items_t.c.present.is_(True), items_t.c.dup_key.in_(keys[start : start + CODE_KEYS_CHUNK]))
        for k, oid, h in conn.execute(q):
            members.setdefault(k, []).append((oid, h))
    return {k: read_code(m) for k, m in members.items()}


def queue_count(engine: Engine, window: str, status: str | None = None, everything: bool = False) -> int:
    """How many opinions ``list_queue`` / ``numbered_queue`` list with these filters (counted in SQL)."""
    where = _queue_filter(window, status, everything)
    with engine.connect() as conn:
        _require_window(conn, window)
        return int(conn.execute(sa.select(sa.func.count()).select_from(_JOIN).where(*where)).scalar_one())


def numbered_queue(engine: Engine, window: str, status: str | None = None, everything: bool = False, offset: int = 0, limit: int | None = None) -> pd.DataFrame:
    """The queue of a window in a fixed order (the batch's row order, then the id) with a row number
    ``row`` (1, 2, …) that people can type instead of an id; rows ``offset + 1`` to ``offset + limit``
    only when ``limit`` is given. Filtered, ordered and paged in SQL, so a page of a 200,000-opinion
    window reads that page (and its groups' members for the 確認コード), not the window. Nothing is
    stored: the same filters give the same listing until a re-run changes the queue, which the 確認コード
    of the row then shows."""
    where = _queue_filter(window, status, everything)
    q = sa.select(*_COLUMNS).select_from(_JOIN).where(*where).order_by(items_t.c.row_order, items_t.c.opinion_id)
    offset = max(int(offset or 0), 0)
    if offset:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(max(int(limit), 0))
    with engine.connect() as conn:
        _require_window(conn, window)
        frame = pd.DataFrame(conn.execute(q).mappings().all())
        if frame.empty:
            frame = pd.DataFrame(columns=TABLE_COLUMNS)
        else:
            frame = _derived(frame)
            codes = _group_codes(conn, window, frame["dup_key"].fillna("").tolist())
            alone = [read_code([(oid, h)]) for oid, h in zip(frame["opinion_id"], frame["text_hash"])]
            frame["read_code"] = [codes.get(k, a) if k else a for k, a in zip(frame["dup_key"].fillna(""), alone)]
    frame.insert(0, "row", range(offset + 1, offset + len(frame) + 1))
    return frame


def list_queue(engine: Engine, window: str, status: str | None = None, everything: bool = False) -> pd.DataFrame:
    """The queue of a window (present opinions that are 共有すべきもの, marked for review, or decided);
    ``everything`` lists every present opinion (to correct a confident exclusion seen in the export).
    In ``numbered_queue``'s order, filtered in SQL."""
    return numbered_queue(engine, window, status, everything).drop(columns="row")


def audit(engine: Engine, window: str, opinion_id: str | None = None) -> pd.DataFrame:
    q = sa.select(audit_t).where(audit_t.c.window == window).order_by(audit_t.c.id)
    if opinion_id:
        q = q.where(audit_t.c.opinion_id == opinion_id)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q).mappings().all())


# --------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Decision:
    category: str | None = None
    candidate_id: str | None = None
    addressed: str | None = None  # "yes" / "no" (記載あり / 記載なし)
    revision_request: str | None = None
    note: str | None = None


def _validate(decision: Decision, domain: Domain, reviewer: str) -> None:
    if not reviewer or not reviewer.strip():
        raise QueueError("判断者（--reviewer）を指定してください。")
    if decision.category is not None and decision.category not in domain.category_codes:
        raise QueueError(f"分類コード「{decision.category}」は不正です。使えるコード: {', '.join(domain.category_codes)}")
    if decision.candidate_id is not None and decision.candidate_id not in domain.candidate_ids:
        raise QueueError(f"対象候補「{decision.candidate_id}」は不正です。使える ID: {', '.join(sorted(domain.candidate_ids))}")
    if decision.addressed is not None and decision.addressed not in ADDRESSED:
        raise QueueError("記載の有無（--addressed）は yes（記載あり）か no（記載なし）です。")


def decide(
    engine: Engine,
    domain: Domain,
    window: str,
    opinion_id: str,
    reviewer: str,
    decision: Decision,
    whole_group: bool = True,
    expected_version: int | None = None,
    overwrite: bool = False,
    seen: str | None = None,
) -> list[str]:
    """Record a decision for an opinion (and by default every present member of its duplicate group).

    Unset fields keep the existing decision's value, or the model's for a first decision.
    ``seen`` is the 確認コード (``read_code``) of the list the reviewer read: if the texts or the group
    changed since (a batch re-run in between), nothing is written. The CLI and the notebook always pass
    it; ``None`` skips that check (scripts that decide without showing a text to anyone).
    ``expected_version`` is the decision version the reviewer saw (0 = none): if it moved, nothing is
    written. Without it, deciding over another reviewer's decision needs ``overwrite=True``.
    Returns the opinion ids written. All or nothing: one transaction; two reviewers deciding the same
    opinions at once are serialised (the second is told, ``ConflictError``).
    """
    _validate(decision, domain, reviewer)
    ts = now()
    try:
        with _write_transaction(engine) as conn:
            _require_window(conn, window)
            target = conn.execute(sa.select(items_t).where(items_t.c.window == window, items_t.c.opinion_id == opinion_id)).mappings().first()
            if target is None:
                raise QueueError(f"照会回「{window}」に意見 ID「{opinion_id}」はありません。")
            # the group is the opinions of the latest run with the same stable key: an opinion that left
            # the window is in no current group and is decided alone
            in_group = bool(target["present"]) and bool(target["dup_key"])
            if in_group:
                where = sa.and_(items_t.c.window == window, items_t.c.dup_key == target["dup_key"], items_t.c.present.is_(True))
            else:
                where = sa.and_(items_t.c.window == window, items_t.c.opinion_id == opinion_id)
            # lock the rows in one fixed order (PostgreSQL; SQLite already holds the write lock)
            group = conn.execute(sa.select(items_t).where(where).order_by(items_t.c.opinion_id).with_for_update()).mappings().all()
            current = next((m for m in group if m["opinion_id"] == opinion_id), None)
            if current is None or current["dup_key"] != target["dup_key"] or bool(current["present"]) != bool(target["present"]):
                raise ConflictError(f"意見「{opinion_id}」の重複グループが判断中にバッチの再実行で変わりました。`opinions queue list` で読み直してから判断してください。変更は行っていません。")
            code = read_code([(m["opinion_id"], m["text_hash"]) for m in group])
            if seen is not None and seen.strip().lower() != code:
                raise ConflictError(
                    f"意見「{opinion_id}」の本文または同旨グループの構成が、一覧を表示した後に変わりました（確認コード {seen.strip()} → {code}）。"
                    "`opinions queue list` で読み直し、今の本文を確認してから判断してください。変更は行っていません。"
                )
            members = sorted(group, key=lambda m: m["row_order"]) if whole_group else [current]
            written = []
            for item in members:
                old = conn.execute(sa.select(decisions_t).where(decisions_t.c.window == window, decisions_t.c.opinion_id == item["opinion_id"])).mappings().first()
                version = old["version"] if old else 0
                if item["opinion_id"] == opinion_id and expected_version is not None and expected_version != version:
                    who = f"{old['reviewer']}（{jst(old['decided_at'])}）" if old else "誰か"
                    raise ConflictError(f"意見「{opinion_id}」の判断は、表示後に {who} によって更新されています（版 {expected_version} → {version}）。最新の状態を読み直してから判断してください。変更は行っていません。")
                is_target = item["opinion_id"] == opinion_id
                if old and old["reviewer"] != reviewer and not overwrite and (expected_version is None or not is_target):
                    raise ConflictError(f"意見「{item['opinion_id']}」は既に {old['reviewer']} が判断しています（{jst(old['decided_at'])}）。上書きする場合は --overwrite を付けてください。変更は行っていません。")
                new = {
                    "category": decision.category or (old["category"] if old else item["category"]),
                    "candidate_id": decision.candidate_id or (old["candidate_id"] if old else item["candidate_id"]),
                    "addressed": decision.addressed if decision.addressed is not None else (old["addressed"] if old else None),
                    "revision_request": decision.revision_request if decision.revision_request is not None else (old["revision_request"] if old else None),
                    "note": decision.note if decision.note is not None else (old["note"] if old else None),
                    "reviewer": reviewer,
                    "decided_at": ts,
                    "text_hash": item["text_hash"],
                    "via_opinion_id": opinion_id,
                    "version": version + 1,
                }
                if old:
                    res = conn.execute(decisions_t.update().where(decisions_t.c.window == window, decisions_t.c.opinion_id == item["opinion_id"], decisions_t.c.version == version).values(**new))
                    if res.rowcount != 1:
                        raise ConflictError(f"意見「{item['opinion_id']}」の判断が同時に更新されました。読み直してから判断してください。変更は行っていません。")
                else:
                    try:
                        with conn.begin_nested():
                            conn.execute(decisions_t.insert().values(window=window, opinion_id=item["opinion_id"], **new))
                    except sa.exc.IntegrityError:
                        raise ConflictError(f"意見「{item['opinion_id']}」は同時に他の担当者が判断しました。読み直してから判断してください。変更は行っていません。") from None
                changes = [(f, (old[f] if old else None), new[f]) for f in ("category", "candidate_id", "addressed", "revision_request", "note", "text_hash")]
                if not old:
                    changes.insert(0, ("model_category", None, item["category"]))
                entries = [
                    {"window": window, "opinion_id": item["opinion_id"], "action": "update" if old else "create", "field": f, "old": None if o is None else str(o), "new": None if n is None else str(n), "reviewer": reviewer, "at": ts}
                    for f, o, n in changes
                    if str(o) != str(n)
                ]
                if old and old["reviewer"] != reviewer:
                    entries.append({"window": window, "opinion_id": item["opinion_id"], "action": "update", "field": "reviewer", "old": old["reviewer"], "new": reviewer, "reviewer": reviewer, "at": ts})
                if entries:
                    conn.execute(audit_t.insert(), entries)
                written.append(item["opinion_id"])
            return written
    except sa.exc.OperationalError as e:
        raise _locked(e) from None


# --------------------------------------------------------------------------- closing the loop


def decided_labels(engine: Engine, windows: Sequence[str] | None = None) -> pd.DataFrame:
    """The human decision per opinion of ``windows`` (all windows when None): window, opinion_id,
    category, candidate_id, reviewer, decided_at. Only decisions on the opinion's current text (status
    ``decided``); a stale decision was made on an older text and is left out. For the prior-window link
    of a later window's batch (batch.load_prior_windows), which prefers these to the model's old labels."""
    cols = ["window", "opinion_id", "category", "candidate_id", "reviewer", "decided_at"]
    j = decisions_t.join(items_t, sa.and_(items_t.c.window == decisions_t.c.window, items_t.c.opinion_id == decisions_t.c.opinion_id))
    q = sa.select(*(decisions_t.c[c] for c in cols)).select_from(j).where(decisions_t.c.text_hash == items_t.c.text_hash)
    if windows is not None:
        if not windows:
            return pd.DataFrame(columns=cols)
        q = q.where(decisions_t.c.window.in_(list(windows)))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q.order_by(decisions_t.c.window, decisions_t.c.opinion_id)).mappings().all(), columns=cols)


def strip_contacts(text: str) -> str:
    """A text without the officer's contact block, and with any other e-mail address, phone number,
    extension or officer's name masked: what may be kept in training data (harvested rows)."""
    from pipeline.normalize import mask_officer_details, split_contact

    body, _contact = split_contact(text or "")
    return mask_officer_details(body)


def harvest(engine: Engine, window: str, statuses: Sequence[str] = ("decided",)) -> pd.DataFrame:
    """Decided opinions of a window as labelled rows (data/labeled format) for the next training run.
    Stale decisions are left out: their text changed after the decision. Officers' contact blocks are
    cut from text and reason (the labelled corpus keeps no contacts)."""
    frame = window_table(engine, window)
    if frame.empty:
        return frame
    d = frame[frame["status"].isin(statuses) & frame["present"].astype(bool)]
    # groups by their stable key; a group whose members were decided differently (--only-this) is not a
    # duplicate group of one label
    mixed = d.groupby("dup_key")[["decision_category", "decision_candidate_id"]].transform("nunique").max(axis=1) > 1
    single = d.groupby("dup_key")["opinion_id"].transform("size") < 2
    return pd.DataFrame(
        {
            "opinion_id": window + ":" + d["opinion_id"].astype(str),
            "window": window,
            "body": d["body"],
            "prefecture": d["prefecture"],
            "stated_candidate": d["stated_candidate"],
            "text": d["text"].map(strip_contacts),
            "reason": d["reason"].map(strip_contacts),
            "candidate_id": d["decision_candidate_id"],
            "category": d["decision_category"],
            "dup_group": (window + ":" + d["dup_key"]).where(~mixed & ~single, ""),
            "note": "reviewed by " + d["decision_reviewer"].astype(str),
            "writer": "review:" + window,
            "split": "train",
        }
    ).reset_index(drop=True)


# --------------------------------------------------------------------------- what people type and read


STATUS_INPUTS = {**{s: s for s in STATUSES}, **{label: s for s, label in STATUS_LABELS.items()}}
ADDRESSED_INPUTS = {**{k: k for k in ADDRESSED}, **{label: k for k, label in ADDRESSED.items()}, "あり": "yes", "なし": "no"}


def category_from_input(value: str, domain: Domain) -> str:
    """The category code a person means: the Japanese label (「共有すべきもの」) or the code (SHARE).
    Raises ValueError (Japanese) naming the choices."""
    v = str(value).strip()
    by_label = {c.label: c.code for c in domain.categories}
    codes = {c.code.upper(): c.code for c in domain.categories}
    if v in by_label:
        return by_label[v]
    if v.upper() in codes:
        return codes[v.upper()]
    raise ValueError(f"分類「{value}」は不正です。使えるもの: {'、'.join(c.label for c in domain.categories)}")


def addressed_from_input(value: str) -> str:
    """``yes`` / ``no`` from 「記載あり」「記載なし」 (or あり／なし, yes／no)."""
    v = str(value).strip()
    if v in ADDRESSED_INPUTS or v.lower() in ADDRESSED_INPUTS:
        return ADDRESSED_INPUTS.get(v) or ADDRESSED_INPUTS[v.lower()]
    raise ValueError(f"記載の有無「{value}」は不正です。使えるもの: {'、'.join(ADDRESSED.values())}")


def status_from_input(value: str) -> str:
    """A queue status from its Japanese label (確認待ち／確定／要再確認) or its code (pending…)."""
    v = str(value).strip()
    if v in STATUS_INPUTS or v.lower() in STATUS_INPUTS:
        return STATUS_INPUTS.get(v) or STATUS_INPUTS[v.lower()]
    raise ValueError(f"状態（--status）「{value}」は不正です。使えるもの: {'、'.join(STATUS_LABELS.values())}")
