"""Decisions made in the spreadsheet back into the queue: ``opinions queue import FILE.xlsx``.

A person fills the editable columns of wt_export.xlsx (export.py: 「判断：分類」「判断：対象候補」
「判断：記載の有無」「判断：修正意見」「判断：メモ」); each filled row is a decision for its whole duplicate
group, with the rules of ``queue.decide``:

- the row's hidden 確認コード (the texts of the group when the file was written) must still be the
  group's: otherwise the text or the group changed since the export and the row is 要再確認 (stale);
- another reviewer's decision on the group is a conflict (競合), and so is a decision that moved since the
  export (the hidden 判断の版, ``expected_version``);
- a value that is not one of the window's choices is an error (エラー) named by its cell address
  (「シート『共有すべきもの』の H12」); a file with any error applies nothing unless ``force``;
- a row left as the export wrote it (the group's current decision) is 変更なし and writes nothing.

Columns are found by their header, never by position: a file sorted, filtered, with columns added or
moved, re-saved by Excel or LibreOffice, reads the same. The core (``read_rows``, ``plan_rows``) is pure
over the workbook and the queue's window table; ``import_sheet`` is the edge that reads and writes.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from pipeline.config import Domain
from pipeline.export import (
    DECISION_ADDRESSED, DECISION_CANDIDATE, DECISION_CATEGORY, DECISION_COLUMNS, DECISION_NOTE, DECISION_REVISION, KEY_CODE, KEY_COLUMNS, KEY_GROUP,
    KEY_OPINION, KEY_VERSION, candidate_entry, sheet_text,
)  # fmt: skip
from pipeline.queue import ConflictError, Decision, addressed_from_input, category_from_input, jst

RESULTS = ("applied", "unchanged", "conflict", "stale", "error")
RESULT_LABELS = {"applied": "適用", "unchanged": "変更なし", "conflict": "競合", "stale": "要再確認", "error": "エラー"}
WINDOW_COLUMN = "照会回"
BODY_COLUMN = "団体名（代表）"  # named in the lines a person reads, instead of the generated opinion id
HEADER_ROWS = 10  # the header is looked for in the first rows (a person may add a title row above it)
_CODE = re.compile(r"[0-9a-f]{8}")


class SheetImportError(Exception):
    """The file cannot be read as an export (not an xlsx, no key columns); nothing was written."""


@dataclass(frozen=True)
class Cell:
    value: object
    address: str  # "H12"
    formula: bool = False


@dataclass(frozen=True)
class SheetRow:
    sheet: str
    row: int
    cells: dict[str, Cell]  # header → cell, for the headers the import reads


@dataclass(frozen=True)
class Outcome:
    """What became of one filled row (or of a sheet that cannot be read: ``row`` is its header row)."""

    sheet: str
    row: int
    result: str  # one of RESULTS
    problems: tuple[tuple[str, str], ...] = ()  # (cell address, Japanese message)
    opinion_id: str = ""  # the representative the decision goes through
    group: str = ""
    decision: Decision | None = None
    seen: str = ""
    version: int = 0
    written: tuple[str, ...] = ()
    body: str = ""  # the representative's body as the row shows it (団体名（代表）)


@dataclass(frozen=True)
class ImportResult:
    outcomes: list[Outcome] = field(default_factory=list)
    dry_run: bool = False
    blocked: bool = False  # an error and no force: nothing was applied

    def counts(self) -> dict[str, int]:
        return {r: sum(o.result == r for o in self.outcomes) for r in RESULTS}

    @property
    def written(self) -> list[str]:
        return [oid for o in self.outcomes for oid in o.written]


# --------------------------------------------------------------------------- reading the workbook


def _text(cell: Cell | None) -> str:
    if cell is None or cell.value is None:
        return ""
    v = cell.value
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # a number a spreadsheet turned an id or a version into
    return str(v).strip()


def _where(sheet: str, address: str) -> str:
    return f"シート『{sheet}』の {address}"


def _header(ws) -> tuple[int, dict[str, list]] | None:
    """(row number, header → cells) of the first of the first rows that holds the group key column.
    Rows are numbered by position: a read-only sheet gives blank cells without an address."""
    for number, row in enumerate(ws.iter_rows(min_row=1, max_row=HEADER_ROWS), start=1):
        names: dict[str, list] = {}
        for c in row:
            if c.value is not None and str(c.value).strip():
                names.setdefault(str(c.value).strip(), []).append(c)
        if KEY_GROUP in names:
            return number, names
    return None


def read_rows(workbook) -> tuple[list[SheetRow], list[Outcome]]:
    """The filled rows (any editable column non-blank) of every sheet with the key columns, and the
    problems of sheets that cannot be read (a key column missing, a column twice)."""
    from openpyxl.utils import get_column_letter

    rows: list[SheetRow] = []
    problems: list[Outcome] = []
    wanted = (*DECISION_COLUMNS, *KEY_COLUMNS, WINDOW_COLUMN, BODY_COLUMN)
    for ws in workbook.worksheets:
        found = _header(ws)
        if found is None:
            continue
        header_row, names = found
        twice = [(h, cs) for h, cs in names.items() if h in wanted and len(cs) > 1]
        missing = [h for h in KEY_COLUMNS if h not in names]
        sheet_problems = [(cs[0].coordinate, f"見出し「{h}」の列が {len(cs)} 列あります（{'、'.join(c.coordinate for c in cs)}）。一つにしてください。") for h, cs in twice]
        sheet_problems += [(f"{header_row} 行目", f"取込用の列「{h}」がありません。`opinions export` が書いた wt_export.xlsx に記入してください（列を消した場合は書き出し直してください）。") for h in missing]
        if sheet_problems:
            problems.append(Outcome(ws.title, header_row, "error", tuple(sheet_problems)))
            continue
        columns = {h: cs[0].column for h, cs in names.items() if h in wanted}
        letters = {h: get_column_letter(col) for h, col in columns.items()}
        # cells by position from column A: a read-only sheet's rows end at their last filled cell and
        # its blank cells have no address, so a missing or blank cell is an empty Cell at its address
        for number, r in enumerate(ws.iter_rows(min_row=header_row + 1, min_col=1), start=header_row + 1):
            cells = {}
            for h, col in columns.items():
                c = r[col - 1] if col <= len(r) else None
                value = None if c is None else c.value
                cells[h] = Cell(value, f"{letters[h]}{number}", value is not None and c.data_type == "f")
            if any(_text(cells.get(h)) for h in DECISION_COLUMNS):
                rows.append(SheetRow(ws.title, number, cells))
    return rows, problems


def load_workbook_file(path: Path):
    """The workbook at ``path`` (formulas as written, not their results), or SheetImportError.

    Opened read-only: the import only reads, and a read-only workbook streams each sheet's XML instead
    of building every cell of a 200,000-row export in memory. The caller closes it (``close()``). Each
    sheet's recorded size is ignored: a file whose <dimension> is smaller than its rows (some writers
    leave a stale one) would otherwise lose its last rows without a word."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if not Path(path).exists():
        raise SheetImportError(f"ファイル {path} がありません。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # extensions Excel and LibreOffice write that openpyxl does not keep
            workbook = load_workbook(path, read_only=True, data_only=False)
        for ws in workbook.worksheets:
            ws.reset_dimensions()
        return workbook
    except (InvalidFileException, BadZipFile, KeyError, ValueError, OSError) as e:
        raise SheetImportError(f"{path} を Excel ファイル（.xlsx）として読めません。`opinions export` が書いた wt_export.xlsx（または Excel・LibreOffice で .xlsx として保存し直したもの）を指定してください。（{e}）") from None


# --------------------------------------------------------------------------- one row → a decision


@dataclass(frozen=True)
class _Parsed:
    opinion_id: str
    group: str
    version: int
    code: str
    decision: Decision
    first: str  # the address of the row's first filled editable cell


def _candidate(text: str, domain: Domain) -> str:
    """A candidate as the drop-down list shows it (「C01 入札参加資格審査システム」), or as people type it."""
    from pipeline.candidates import candidate_from_input, nfkc

    entries = {nfkc(candidate_entry(c.id, domain)): c.id for c in domain.candidates}
    if nfkc(text) in entries:
        return entries[nfkc(text)]
    head = nfkc(text).split(maxsplit=1)[0].upper()
    ids = {nfkc(c.id).upper(): c.id for c in domain.candidates}
    if head in ids:  # the entry's id with its name edited or cut
        return ids[head]
    return candidate_from_input(text, domain)


def parse_row(row: SheetRow, domain: Domain, window: str) -> _Parsed | list[tuple[str, str]]:
    """The decision a filled row asks for, or its problems (address, message)."""
    problems: list[tuple[str, str]] = []
    cells = row.cells

    def addr(h: str) -> str:
        return cells[h].address if h in cells else f"{row.row} 行目"

    for h in (*DECISION_COLUMNS, *KEY_COLUMNS):
        if h in cells and cells[h].formula:
            problems.append((cells[h].address, f"「{h}」が数式になっています。文字で入力してください（先頭が = ＋ － の文字は、前に ' を付けます）。"))
    if problems:
        return problems
    for h in (KEY_OPINION, KEY_GROUP, KEY_CODE, KEY_VERSION):
        if not _text(cells.get(h)):
            problems.append((addr(h), f"取込用の列「{h}」が空です。追加した行や、取込用の列を書き換えた行は取り込めません（書き出し直した wt_export.xlsx に記入してください）。"))
    version = 0
    if _text(cells.get(KEY_VERSION)):
        try:
            version = int(float(_text(cells[KEY_VERSION])))
        except ValueError:
            problems.append((addr(KEY_VERSION), f"取込用の列「{KEY_VERSION}」の値「{_text(cells[KEY_VERSION])}」が数字ではありません（書き換えないでください）。"))
    code = _text(cells.get(KEY_CODE)).lower()
    if code and not _CODE.fullmatch(code):
        problems.append((addr(KEY_CODE), f"取込用の列「{KEY_CODE}」の値「{code}」は確認コード（8 桁）ではありません（書き換えないでください）。"))
    shown = _text(cells.get(WINDOW_COLUMN))
    if shown and shown != window:
        problems.append((addr(WINDOW_COLUMN), f"この行は照会回「{shown}」のものです（取り込み先は「{window}」）。--window を確かめてください。"))

    values: dict[str, object] = {}
    for h, parse in ((DECISION_CATEGORY, lambda t: category_from_input(t, domain)), (DECISION_CANDIDATE, lambda t: _candidate(t, domain)), (DECISION_ADDRESSED, addressed_from_input)):
        t = _text(cells.get(h))
        if not t:
            continue
        try:
            values[h] = parse(t)
        except ValueError as e:
            problems.append((cells[h].address, str(e)))
    if problems:
        return problems
    first = next(cells[h].address for h in DECISION_COLUMNS if _text(cells.get(h)))
    decision = Decision(
        category=values.get(DECISION_CATEGORY),
        candidate_id=values.get(DECISION_CANDIDATE),
        addressed=values.get(DECISION_ADDRESSED),
        revision_request=_text(cells.get(DECISION_REVISION)) or None,
        note=_text(cells.get(DECISION_NOTE)) or None,
    )
    return _Parsed(_text(cells[KEY_OPINION]), _text(cells[KEY_GROUP]), version, code, decision, first)


# --------------------------------------------------------------------------- a decision against the queue


def _value(v) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _untouched_texts(decision: Decision, target: pd.Series) -> Decision:
    """Free texts a person left as the export showed them (masked, cut) keep the stored text: the
    masking must not overwrite an officer's number with its placeholder."""
    keep = {}
    for f, col in (("revision_request", "decision_revision_request"), ("note", "decision_note")):
        v = getattr(decision, f)
        if v is not None and _value(target.get(col)) and v == sheet_text(target.get(col)).strip():
            keep[f] = None
    return replace(decision, **keep)


def _unchanged(decision: Decision, members: pd.DataFrame) -> bool:
    """Every present member decided on its current text with these values already."""
    if not (members["status"] == "decided").all():
        return False
    for f in ("category", "candidate_id", "addressed", "revision_request", "note"):
        v = getattr(decision, f)
        if v is not None and not (members[f"decision_{f}"].map(_value) == v).all():
            return False
    return True


def plan_row(p: _Parsed, row: SheetRow, table: pd.DataFrame, reviewer: str) -> Outcome:
    """What the queue says to one parsed row (nothing is written): applied (to be), unchanged, stale,
    conflict, or an error that needs the queue's state."""
    base = Outcome(row.sheet, row.row, "applied", (), p.opinion_id, p.group, p.decision, p.code, p.version)
    present = table[table["present"].astype(bool)]
    members = present[present["dup_key"] == p.group]
    if members.empty or p.opinion_id not in set(members["opinion_id"]):
        msg = f"この行のグループ（代表意見 {p.opinion_id}）は、書き出しの後にバッチの再実行で構成が変わったか、照会回から外れました。書き出し直して確認してください。"
        return replace(base, result="stale", problems=((p.first, msg),))
    target = members[members["opinion_id"] == p.opinion_id].iloc[0]
    if target["read_code"] != p.code:
        msg = f"書き出しの後に本文または同旨グループの構成が変わりました（確認コード {p.code} → {target['read_code']}）。書き出し直して、今の本文を読んでから判断してください。"
        return replace(base, result="stale", problems=((p.first, msg),))
    decision = _untouched_texts(p.decision, target)
    base = replace(base, decision=decision)
    if decision.category is None and not (members["status"] == "decided").all():
        addr = row.cells[DECISION_CATEGORY].address if DECISION_CATEGORY in row.cells else p.first
        msg = "「判断：分類」が空です。判断の済んでいないグループ（要再確認を含む）は、分類を選んでください（メモ・対象候補だけではモデルの分類を確定することになるため取り込みません）。"
        return replace(base, result="error", problems=((addr, msg),))
    if _unchanged(decision, members):
        return replace(base, result="unchanged")
    others = members[members["decision_reviewer"].notna() & (members["decision_reviewer"].map(_value) != reviewer)]
    if len(others):
        o = others.iloc[0]
        msg = f"意見 {o['opinion_id']} は {o['decision_reviewer']} が判断しています（{jst(o['decision_decided_at'])}）。他の担当者の判断は上書きしません（上書きするときは `opinions queue decide` に --overwrite を付けます）。"
        return replace(base, result="conflict", problems=((p.first, msg),))
    if int(target["decision_version"]) != p.version:
        msg = f"書き出しの後に判断が更新されています（版 {p.version} → {int(target['decision_version'])}、{jst(target['decision_decided_at'])}）。書き出し直して最新の判断を確認してください。"
        return replace(base, result="conflict", problems=((p.first, msg),))
    return base


def plan_rows(rows: Sequence[SheetRow], table: pd.DataFrame, domain: Domain, window: str, reviewer: str) -> list[Outcome]:
    """Every filled row's outcome against the window table (queue.window_table), in file order; a group
    filled in two rows is applied once (an error when the two rows disagree)."""
    outcomes: list[Outcome] = []
    seen_groups: dict[str, tuple[SheetRow, Decision]] = {}
    for row in rows:
        p = parse_row(row, domain, window)
        if isinstance(p, list):
            outcomes.append(Outcome(row.sheet, row.row, "error", tuple(p), _text(row.cells.get(KEY_OPINION))))
            continue
        if p.group in seen_groups:
            other, decision = seen_groups[p.group]
            where = _where(other.sheet, f"{other.row} 行目")
            if decision == p.decision:
                outcomes.append(Outcome(row.sheet, row.row, "unchanged", ((p.first, f"同じグループの行（{where}）と同じ判断です。一度だけ取り込みます。"),), p.opinion_id, p.group))
            else:
                outcomes.append(Outcome(row.sheet, row.row, "error", ((p.first, f"同じグループ（代表意見 {p.opinion_id}）が {where} にもあり、判断が異なります。どちらか一方にしてください。"),), p.opinion_id, p.group))
            continue
        seen_groups[p.group] = (row, p.decision)
        outcomes.append(plan_row(p, row, table, reviewer))
    return [replace(o, body=_text(r.cells.get(BODY_COLUMN))) for o, r in zip(outcomes, rows)]  # one outcome per row


# --------------------------------------------------------------------------- the edge


def apply_outcomes(engine, domain: Domain, window: str, reviewer: str, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Write the rows planned as applied, one ``queue.decide`` each (whole group, the row's 確認コード and
    version); a row that lost a race since the plan becomes a conflict."""
    from pipeline.queue import decide

    done = []
    for o in outcomes:
        if o.result != "applied":
            done.append(o)
            continue
        try:
            written = decide(engine, domain, window, o.opinion_id, reviewer, o.decision, whole_group=True, expected_version=o.version, overwrite=False, seen=o.seen)
            done.append(replace(o, written=tuple(written)))
        except ConflictError as e:
            done.append(replace(o, result="conflict", problems=((o.problems[0][0] if o.problems else "", str(e)),)))
    return done


def import_sheet(engine, base_domain: Domain, window: str, path: Path, reviewer: str, dry_run: bool = False, force: bool = False) -> ImportResult:
    """Apply the decisions of a filled wt_export.xlsx to the queue of ``window``. With any error and
    without ``force`` nothing is written (``blocked``); with ``force`` the rows without error are applied.
    ``dry_run`` writes nothing and says what would happen. Raises SheetImportError (unreadable file) and
    queue.QueueError (unknown window, database)."""
    from pipeline.queue import window_domain, window_table

    if not reviewer or not reviewer.strip():
        raise SheetImportError("判断者（--reviewer）を指定してください。")
    reviewer = reviewer.strip()
    domain = window_domain(engine, window, base_domain)
    table = window_table(engine, window)
    workbook = load_workbook_file(path)
    try:
        if not any(_header(ws) for ws in workbook.worksheets):
            raise SheetImportError(f"{path} には取込用の列（{KEY_GROUP} など）のあるシートがありません。`opinions export` が書いた wt_export.xlsx に記入したファイルを指定してください。")
        rows, problems = read_rows(workbook)
    finally:
        workbook.close()  # a read-only workbook keeps the file open (on Windows, Excel could not save it)
    outcomes = problems + plan_rows(rows, table, domain, window, reviewer)
    blocked = any(o.result == "error" for o in outcomes) and not force
    if dry_run or blocked:
        return ImportResult(outcomes, dry_run=dry_run, blocked=blocked)
    return ImportResult(apply_outcomes(engine, domain, window, reviewer, outcomes), dry_run=False, blocked=False)


def summary(result: ImportResult) -> str:
    """「適用 N・変更なし N・競合 N・要再確認 N・エラー N」."""
    c = result.counts()
    return "・".join(f"{RESULT_LABELS[r]} {c[r]}" for r in RESULTS)


def describe(o: Outcome) -> list[str]:
    """The lines a person reads for one row that was not simply applied."""
    who = f"（{o.body}の意見）" if o.body else (f"（代表意見 {o.opinion_id}）" if o.opinion_id else "")
    return [f"{_where(o.sheet, addr)}{who}：{RESULT_LABELS[o.result]} — {msg}" for addr, msg in o.problems]
