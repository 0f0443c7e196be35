"""WT export: one row per duplicate group, Japanese columns and labels, for people in a meeting.

``wt_export.csv`` (UTF-8 with BOM, so Excel opens it) and ``wt_export.xlsx`` (header frozen, filters,
columns as wide as their content, rows as high as their wrapped text, printable as it opens: A3
landscape, one page wide, the header on every page; sheet 共有すべきもの and sheet 除外した意見). Cited
passages read as people name them (``explain.passage_label``), not as stored ids.

The xlsx is also where the WT decides: each sheet has editable columns 「判断：分類」「判断：対象候補」
(「判断：記載の有無」 in a policy-draft window)「判断：修正意見」「判断：メモ」, with drop-down lists of the
window's own choices (a hidden sheet 選択肢), and hidden key columns (the group's stable key, the decision
version and the 確認コード at export) that ``opinions queue import`` (sheet_import.py) checks, so that a
decision made on an outdated text or over a newer decision is refused. No sheet protection: people sort,
filter and add columns; the import finds columns by their header.

What a group row must not hide or leak:
- a duplicate group shows its representative, but every member's added sentences are listed against it
  (「代表意見との差分」), members whose model predictions differ are flagged, and a group is 共有すべきもの
  when any member is;
- officers' names, e-mail addresses and phone numbers are masked (``normalize.mask_officer_details``
  where it exists, plus the contact patterns);
- cells a spreadsheet would run as a formula are neutralised; control characters openpyxl refuses are
  replaced; cells over Excel's 32,767-character limit are cut in the xlsx with a visible note (the CSV
  keeps the full text).
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
from copy import copy
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import normalize
from pipeline.config import Domain
from pipeline.queue import ADDRESSED, jst

GROUP_STATUS_LABELS = {
    "pending": "未判断（モデルの分類）",
    "disagree": "未判断・予測不一致（グループ内でモデルの分類が異なる）",
    "decided": "確定",
    "stale": "要再確認（判断後に本文が変更）",
    "partial": "一部判断済（グループ内に未判断あり）",
    "conflict": "判断不一致（グループ内で分類が異なる）",
}
DIFF_COLUMN = "代表意見との差分"
DISAGREE_COLUMN = "グループ内の予測の不一致"
GROUNDS_COLUMN = "根拠となる記載"
RELATED_COLUMN = "関連する記載"
# what a person fills in (xlsx only); prefilled with the decision where the whole group is decided
DECISION_CATEGORY = "判断：分類"
DECISION_CANDIDATE = "判断：対象候補"
DECISION_ADDRESSED = "判断：記載の有無"
DECISION_REVISION = "判断：修正意見"
DECISION_NOTE = "判断：メモ"
DECISION_COLUMNS = (DECISION_CATEGORY, DECISION_CANDIDATE, DECISION_ADDRESSED, DECISION_REVISION, DECISION_NOTE)
# hidden in the xlsx: what the import checks against the queue (queue.decide's seen / expected_version)
KEY_OPINION = "取込用：意見ID"
KEY_GROUP = "取込用：グループキー"
KEY_VERSION = "取込用：判断の版"
KEY_CODE = "取込用：確認コード"
KEY_COLUMNS = (KEY_OPINION, KEY_GROUP, KEY_VERSION, KEY_CODE)
SHEET_ONLY = (*DECISION_COLUMNS, *KEY_COLUMNS)  # not in the CSV: it cannot be imported
CHOICES_SHEET = "選択肢"
TEXT_COLUMNS = ("団体名（代表）", "同旨団体", "意見", "理由", "メモ", "修正意見", "分類の理由（モデル）", "要確認の理由", DIFF_COLUMN, GROUNDS_COLUMN, RELATED_COLUMN, DECISION_REVISION, DECISION_NOTE)
# ASCII starts Excel/LibreOffice evaluate, and their full-width forms (Japanese Excel converts ＝ typed
# through the IME into a formula)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
POLICY_KINDS = ("policy-draft", "policy")  # "policy": the value stored before windows.kind was introduced
EXCEL_CELL_LIMIT = 32_767
# C0 controls other than tab / LF / CR, and the XML non-characters: openpyxl refuses the former
# (IllegalCharacterError), Excel refuses a file holding the latter
_ILLEGAL = re.compile("[\x00-\x08\x0e-\x1f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?]*")


def is_policy_kind(kind: str | None) -> bool:
    """Policy-draft windows record 記載の有無 and 修正意見 (``windows.kind``)."""
    return (kind or "") in POLICY_KINDS


def clean_text(value: object) -> object:
    """Text a spreadsheet and a browser accept: Word's line break U+000B and form feed become line
    breaks, other C0 controls and stray surrogates are dropped or replaced."""
    if not isinstance(value, str):
        return value
    value = value.replace("\x0b", "\n").replace("\x0c", "\n")
    value = _ILLEGAL.sub("", value)
    return _SURROGATE.sub("\ufffd", value)


def neutralise(value: object) -> object:
    """Prefix text a spreadsheet would evaluate (=, +, -, @, tab, CR/LF at the start) with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def mask_pii(text: str) -> str:
    """Mask officers' names in contact blocks, e-mail addresses, phone numbers and extensions
    (people-facing files only; the data keeps them): one way, ``normalize.mask_officer_details``."""
    if not isinstance(text, str):
        return text
    # phones and e-mails once more after the names: they stay masked whatever the name masking does
    return normalize.mask_contact_items(normalize.mask_officer_details(text))


def _s(row, col: str) -> str:
    """A text field of a queue row (a Series or a record); "" when the column is absent (older queue) or empty."""
    v = row.get(col, "")
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)


def _null(v) -> bool:
    return v is None or v is pd.NaT or (isinstance(v, float) and v != v)


def _distinct(values) -> int:
    """``Series.nunique()`` of a list (missing values not counted)."""
    return len({v for v in values if not _null(v)})


# --------------------------------------------------------------------------- what a member adds


@functools.lru_cache(maxsize=100_000)
def _matched(text: str) -> str:
    """``normalize.match_text``, cached: the sentences of one template recur in every copy of it."""
    return normalize.match_text(text)


@functools.lru_cache(maxsize=100_000)
def _body_key(matched: str, bodies: tuple[str, ...]) -> str:
    key = matched
    for body in bodies:
        key = normalize.key_from_match(key, body)
    return key or normalize.key_from_match(key)


def _key(text: str, bodies: tuple[str, ...]) -> str:
    """Comparison key: matching text (contacts out) without punctuation, body names and 本市/当町 masked."""
    return _body_key(_matched(text), bodies)


def _quick_key(text: str, bodies: tuple[str, ...]) -> str:
    """``_key`` without cutting the contact block (the slow part, character by character): equal quick keys
    mean the texts differ only in punctuation, width and the bodies' names, contact block included."""
    key = normalize.nfkc(text)
    for body in bodies:
        key = normalize.key_from_match(key, body)
    return key or normalize.key_from_match(key)


@functools.lru_cache(maxsize=100_000)
def _sentences(text: str) -> tuple[str, ...]:
    body, _contact = normalize.split_contact(text or "")  # the officer's contact block is not content
    return tuple(_SENTENCE.findall(body))


def added_sentences(representative: str, member: str, bodies: tuple[str, ...] = ()) -> list[str]:
    """Sentences of ``member`` (as written) that the representative's text does not contain.

    Compared on keys with the bodies' own names and self-references masked, so the edits bodies make
    when re-sending a text (「八戸市」→「弘前市」, 本市→当町) are not reported; a sentence counts as added
    when at least 3 characters or 20 % of it, or any digit, is not matched in the representative.
    A member whose whole key is the representative's adds nothing (the common case of a campaign copy,
    decided without comparing sentence by sentence).
    """
    if member == representative or _quick_key(member or "", bodies) == _quick_key(representative or "", bodies):
        return []
    ref = _key(representative or "", bodies)
    if _key(member or "", bodies) == ref:
        return []
    out = []
    for sentence in _sentences(member or ""):
        k = _key(sentence, bodies)
        if not k or k in ref:
            continue
        covered = [False] * len(k)
        for block in difflib.SequenceMatcher(None, ref, k, autojunk=False).get_matching_blocks():
            if block.size >= 4:  # shorter blocks are coincidences (「共通化」 occurs everywhere)
                covered[block.b : block.b + block.size] = [True] * block.size
        missing = [c for c, cov in zip(k, covered) if not cov]
        if len(missing) >= max(3, 0.2 * len(k)) or any(c.isdigit() for c in missing):
            out.append(sentence.strip())
    return out


# members compared with the representative per group: a campaign group of thousands of copies would take
# a minute to compare and more than an Excel cell holds; the rest are counted, each row is in opinions.csv
MAX_COMPARED_MEMBERS = 200


def member_differences(group: list[dict], rep: dict, domain: Domain, limit: int = MAX_COMPARED_MEMBERS) -> str:
    """Per member, what it adds to the representative (opinion and reason), and its prediction when it
    differs from the representative's; one line per member that differs, for the first ``limit`` members
    (the rest counted in a last line). ``group``: the members' rows."""
    lines = []
    rep_body, rep_text, rep_reason, rep_cat = _s(rep, "body"), _s(rep, "text"), _s(rep, "reason"), _s(rep, "category")
    others = [m for m in group if m["opinion_id"] != rep["opinion_id"]]
    for m in others[:limit]:
        bodies = tuple(b for b in (rep_body, _s(m, "body")) if b)
        text_add = added_sentences(rep_text, _s(m, "text"), bodies)
        reason_add = added_sentences(rep_reason, _s(m, "reason"), bodies)
        parts = []
        if text_add:
            parts.append("意見に追加：" + "".join(f"「{s}」" for s in text_add))
        if reason_add:
            parts.append("理由に追加：" + "".join(f"「{s}」" for s in reason_add))
        if _s(m, "category") != rep_cat:
            parts.append(f"モデルの分類：{domain.category_label(_s(m, 'category'))}")
        if parts:
            lines.append(f"【{_s(m, 'body') or '団体名なし'}（{m['opinion_id']}）】" + " ".join(parts))
    if len(others) > limit:
        lines.append(f"（ほか {len(others) - limit:,} 件は比べていません。各意見は opinions.csv にあります）")
    return "\n".join(lines)


def _by_value(group: list[dict], col: str) -> dict:
    """The members' opinion ids per value of ``col``, values in order of first appearance."""
    out: dict = {}
    for m in group:
        out.setdefault(m[col], []).append(m["opinion_id"])
    return out


def prediction_disagreement(group: list[dict], domain: Domain) -> str:
    """「共有すべきもの 1 件（2）、団体固有の事情 1 件（1）」 when the members' model categories differ, and
    「対象候補：C03 1 件（1）、C04 1 件（2）」 when their candidates do; "" when the members agree."""
    lines = []
    cats, cands = _by_value(group, "category"), _by_value(group, "candidate_id")
    if len(cats) > 1:
        lines.append("、".join(f"{domain.category_label(cat)} {len(ids)} 件（{'、'.join(map(str, ids))}）" for cat, ids in cats.items()))
    if len(cands) > 1:
        lines.append("対象候補：" + "、".join(f"{cand} {len(ids)} 件（{'、'.join(map(str, ids))}）" for cand, ids in cands.items()))
    return "\n".join(lines)


# --------------------------------------------------------------------------- evidence from the references


def _quoted(passage: str, quote: str) -> str:
    """A cited passage as people name it (``explain.passage_label``: 「見出し」（ファイル、n 段落目）, not the
    stored id ``file#heading#n``) and, on the next line, its quote in full."""
    from pipeline.explain import passage_label  # the one rendering of a passage (explain loads sklearn: lazily)

    if not passage and not quote:
        return ""
    return "\n".join(p for p in (passage_label(passage) if passage else "", f"「{quote}」" if quote else "") if p)


def grounds(group: list[dict], first: dict) -> str:
    """「根拠となる記載」 of a 解決済 group: the passage the model cited and its quote (blank if none)."""
    for m in [first, *group]:
        if _s(m, "resolved_by"):
            return _quoted(_s(m, "resolved_by"), _s(m, "resolved_quote"))
    return ""


def related(group: list[dict], first: dict) -> str:
    """「関連する記載」 of a 共有すべきもの group in a policy-draft window: the nearest passage, its quote
    and the model's 記載の有無 suggestion (the WT's own judgement stays in 「記載の有無」)."""
    for m in [first, *group]:
        passage, suggestion = _s(m, "nearest_passage"), _s(m, "addressed_suggestion")
        if passage or suggestion:
            text = _quoted(passage, _s(m, "nearest_quote"))
            if suggestion:
                text += ("\n" if text else "") + f"（モデルの判定：{ADDRESSED.get(suggestion, suggestion)}）"
            return text
    return ""


# --------------------------------------------------------------------------- the decision columns


def decision_columns(kind: str | None) -> tuple[str, ...]:
    """The editable columns of a window's sheets (「判断：記載の有無」 only in a policy-draft window)."""
    return tuple(c for c in DECISION_COLUMNS if c != DECISION_ADDRESSED or is_policy_kind(kind))


def candidate_entry(cid: str, domain: Domain) -> str:
    """「C01 入札参加資格審査システム」: a candidate as the drop-down list shows it (the id alone when the
    window's list does not hold it)."""
    return f"{cid} {domain.candidate_name(cid)}" if cid in domain.candidate_ids else (cid or "")


def decision_choices(domain: Domain, kind: str | None) -> dict[str, list[str]]:
    """The drop-down lists of the editable columns: the 7 category labels in flowchart order, the
    window's candidates, and 記載あり／記載なし in a policy-draft window."""
    choices = {DECISION_CATEGORY: [c.label for c in domain.categories], DECISION_CANDIDATE: [candidate_entry(c.id, domain) for c in domain.candidates]}
    if is_policy_kind(kind):
        choices[DECISION_ADDRESSED] = list(ADDRESSED.values())
    return choices


def sheet_text(value: object) -> str:
    """A decision's free text as the xlsx shows it (cleaned, masked, cut to a cell): what the import
    compares a cell with to tell an untouched cell from an edited one."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(fit_cell(mask_pii(clean_text(str(value)))))


def prefilled_decision(decided: list[dict], status: str, domain: Domain, policy: bool) -> dict[str, str]:
    """The editable columns of a group row: the group's decision where every present member carries it
    on its current text (status ``decided``); blank otherwise (pending, partly decided, conflicting or
    stale: a person decides again, nothing is confirmed by leaving a cell as it was)."""
    row = {c: "" for c in DECISION_COLUMNS if c != DECISION_ADDRESSED or policy}
    if status != "decided" or not decided:
        return row
    d = decided[0]
    row[DECISION_CATEGORY] = domain.category_label(d["decision_category"]) if d["decision_category"] else ""
    row[DECISION_CANDIDATE] = candidate_entry(d["decision_candidate_id"] or "", domain)
    if policy:
        row[DECISION_ADDRESSED] = ADDRESSED.get(d["decision_addressed"] or "", "")
    row[DECISION_REVISION] = d["decision_revision_request"] or ""
    row[DECISION_NOTE] = d["decision_note"] or ""
    return row


def _version(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# --------------------------------------------------------------------------- group rows


def _status(g: list[dict], decided: list[dict]) -> str:
    statuses = {m["status"] for m in g}
    if "stale" in statuses:
        return "stale"
    if _distinct(m["decision_category"] for m in decided) > 1 or _distinct(m["decision_candidate_id"] for m in decided) > 1:
        return "conflict"
    if statuses == {"decided"}:
        return "decided"
    if "decided" in statuses:
        return "partial"
    return "disagree" if _distinct(m["category"] for m in g) > 1 or _distinct(m["candidate_id"] for m in g) > 1 else "pending"


def _groups(present: pd.DataFrame) -> list[list[dict]]:
    """The present rows as records, by duplicate group in order of each group's first row: the queue's
    stable key where every row has one (decisions follow it), the run's group number otherwise. Plain
    records, not a pandas group-by: a group's lookups cost microseconds, not the milliseconds of a frame
    (hours, not minutes, at 100,000 groups)."""
    key = "dup_key" if "dup_key" in present.columns and (present["dup_key"].fillna("") != "").all() else "dup_group"
    out: dict = {}
    for rec in present.to_dict("records"):
        out.setdefault(rec[key], []).append(rec)
    return list(out.values())


def group_row(g: list[dict], domain: Domain, policy: bool) -> dict:
    """The export row of one duplicate group (its present members' queue rows, in row order).

    A group is 共有すべきもの when any present member is (its decision, or the model's category where it
    has none); the row then cites that member's model reason and candidate."""
    rep_id = g[0]["dup_representative"]
    rep = next((m for m in g if m["opinion_id"] == rep_id), g[0])
    decided = [m for m in g if m["status"] != "pending"]
    has_decision = bool(decided)
    final = [m["decision_category"] if m["status"] != "pending" else m["category"] for m in g]
    share = [m for m, f in zip(g, final) if f == "SHARE"]
    category = "SHARE" if share else (decided[0]["decision_category"] if has_decision else rep["category"])
    # the member that makes the group's category: the representative when it agrees
    rep_final = rep["decision_category"] if rep["status"] != "pending" else rep["category"]
    basis = share[0] if share and rep_final != "SHARE" else rep
    # the decision shown: one that gave the group's category, else any (a conflict is flagged)
    agreeing = [m for m in decided if m["decision_category"] == category]
    src = agreeing[0] if agreeing else (decided[0] if has_decision else basis)
    if basis["status"] != "pending":
        candidate = basis["decision_candidate_id"]
    elif agreeing:
        candidate = src["decision_candidate_id"]
    else:
        candidate = basis["candidate_id"]
    bodies = list(dict.fromkeys(m["body"] for m in g if m["body"]))
    unnamed = sum(1 for m in g if isinstance(m["body"], str) and m["body"] == "")
    status = _status(g, decided)
    row = {
        "照会回": rep["window"],
        "グループID": rep["dup_group"],
        "代表意見ID": rep["opinion_id"],
        "団体名（代表）": rep["body"],
        "同旨団体数": len(bodies) + unnamed,
        "同旨団体": "、".join(bodies),
        "対象候補ID": candidate,
        "対象候補": domain.candidate_name(candidate),
        "分類": domain.category_label(category),
        "区分": "共有" if category == "SHARE" else "除外",
        "判断状況": GROUP_STATUS_LABELS[status],
        "判断者": src["decision_reviewer"] if has_decision else "",
        "判断日時": jst(src["decision_decided_at"]) if has_decision else "",
        "意見": rep["text"],
        "理由": rep["reason"],
        DIFF_COLUMN: member_differences(g, rep, domain) if len(g) > 1 else "",
        DISAGREE_COLUMN: prediction_disagreement(g, domain) if len(g) > 1 else "",
        "分類の理由（モデル）": basis["category_reason"],
        "モデルの分類": domain.category_label(basis["category"]),
        "分類の確信度": round(float(basis["category_confidence"]), 2),
        "要確認の理由": basis["review_reasons"],
        GROUNDS_COLUMN: grounds(g, basis) if category == "RESOLVED" else "",
        "メモ": (src["decision_note"] or "") if has_decision else "",
        "過去の照会回": f"{rep['prior_window']} {rep['prior_opinion_id']}".strip(),
    }
    if policy:
        addressed = src["decision_addressed"] if has_decision else None
        row["記載の有無"] = ADDRESSED.get(addressed or "", "")
        row["修正意見"] = (src["decision_revision_request"] or "") if has_decision else ""
        row[RELATED_COLUMN] = related(g, basis) if category == "SHARE" else ""
    row.update(prefilled_decision(agreeing if agreeing else decided, status, domain, policy))
    # the import decides through the representative, on what this row showed (queue.decide's checks)
    row.update({KEY_OPINION: rep["opinion_id"], KEY_GROUP: _s(rep, "dup_key") or _s(rep, "dup_group"), KEY_VERSION: _version(rep.get("decision_version", 0)), KEY_CODE: _s(rep, "read_code")})
    return row


def group_rows(table: pd.DataFrame, domain: Domain, kind: str) -> pd.DataFrame:
    """One row per duplicate group of a window table (queue.window_table), Japanese columns (``group_row``)."""
    policy = is_policy_kind(kind)
    present = table[table["present"].astype(bool)]
    rows = [group_row(g, domain, policy) for g in _groups(present)]
    base = ["照会回", "グループID", "代表意見ID", "団体名（代表）", "同旨団体数", "同旨団体", "対象候補ID", "対象候補", "分類", "区分", "判断状況", "判断者", "判断日時", "意見", "理由"]
    rest = [DIFF_COLUMN, DISAGREE_COLUMN, "分類の理由（モデル）", "モデルの分類", "分類の確信度", "要確認の理由", GROUNDS_COLUMN, "メモ", "過去の照会回"]
    # the editable columns right after the opinion they decide, the keys last (hidden in the xlsx)
    frame = pd.DataFrame(rows, columns=base + list(decision_columns(kind)) + rest + (["記載の有無", "修正意見", RELATED_COLUMN] if policy else []) + list(KEY_COLUMNS))
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(clean_text)
    masked: dict = {}  # the model's reasons and review reasons repeat over thousands of rows: mask each once

    def mask(text):
        if not isinstance(text, str):
            return text
        if text not in masked:
            masked[text] = mask_pii(text)
        return masked[text]

    for col in TEXT_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(mask)
    return frame


def read_window_kind(engine, window: str) -> str:
    """The window kind stored in the queue (``windows.kind``), never guessed from the window's name."""
    import sqlalchemy as sa

    from pipeline.queue import windows_t

    with engine.connect() as conn:
        kind = conn.execute(sa.select(windows_t.c.kind).where(windows_t.c.window == window)).scalar()
    return kind or ""


# --------------------------------------------------------------------------- files


WIDTHS = {
    "意見": 60, "理由": 40, "分類の理由（モデル）": 50, "同旨団体": 30, "修正意見": 40, "メモ": 30, "要確認の理由": 30, "対象候補": 30, DIFF_COLUMN: 50, DISAGREE_COLUMN: 30,
    GROUNDS_COLUMN: 50, RELATED_COLUMN: 50, DECISION_CATEGORY: 22, DECISION_CANDIDATE: 34, DECISION_ADDRESSED: 14, DECISION_REVISION: 40, DECISION_NOTE: 30,
}  # fmt: skip
HEADER_FILL, DECISION_FILL = "DDEBF7", "FFF2CC"  # blue: read; yellow: what a person fills in
# columns without a fixed width are sized by their content (header and the first rows): within these bounds
SIZED_MIN, SIZED_MAX, LIST_MAX, WIDTH_SAMPLE = 8, 30, 40, 1_000
# row heights (points) from the wrapped text: what Excel's "AutoFit row height" does by hand, which neither
# Excel nor LibreOffice does for a file they open. Sized for Excel (the file's font is Calibri 11: a line
# of Japanese text about 15 pt, a full-width character about 2.1 widths of "0"); LibreOffice with other
# fonts (DejaVu Sans / IPAexGothic here) draws narrower and lower, so rows there keep a little room.
# A row is cut at MAX_LINES lines (the cell holds the rest; Excel's row limit is 409 pt).
LINE_PT, ROW_PAD_PT, MAX_LINES = 15.0, 4.0, 20
# the model's long explanations count at most this many lines: a row is as high as the opinion and its
# reason need, not as the model's reason (often 400 characters) would (the cell holds the rest)
SECONDARY_LINES = 8
SECONDARY = ("分類の理由（モデル）", "要確認の理由", DIFF_COLUMN, DISAGREE_COLUMN, GROUNDS_COLUMN, RELATED_COLUMN)
UNIT = 1.05  # column-width units per display unit (a half-width character); a cell loses one unit to its margins


def display_width(line: str) -> int:
    """Width of one line of text in half-width characters: 2 for a full-width (Japanese) character, 1 for
    ASCII. From the UTF-8 length (C speed, no loop over characters): Japanese characters take 3 bytes,
    ASCII 1 (Latin accents count 1.5, half-width katakana 2: a little too wide, never too narrow)."""
    return len(line) + (len(line.encode("utf-8", "surrogatepass")) - len(line)) // 2


def text_lines(value: object, width: float) -> int:
    """Lines a value takes when wrapped in a column ``width`` wide (column-width units), each paragraph
    wrapped on its own."""
    if value is None or value == "":
        return 1
    per_line = max(1.0, (width - 1) / UNIT)
    return sum(max(1, -(-display_width(part) // per_line)) for part in str(value).split("\n"))


def row_height(values, widths: list[float | None], caps: list[int] | None = None) -> float:
    """A row's height in points: its tallest wrapped cell, each cell counted up to its cap (``caps``, else
    ``MAX_LINES``), at most ``MAX_LINES`` lines; a width None is a hidden column, not counted."""
    caps = caps or [MAX_LINES] * len(widths)
    lines = max((min(text_lines(v, w), cap) for v, w, cap in zip(values, widths, caps) if w is not None and v is not None and v != ""), default=1)
    return min(int(lines), MAX_LINES) * LINE_PT + ROW_PAD_PT


def column_width(header: str, values, choices: list[str] | None = None) -> float:
    """Width of a column: fixed for the long texts (``WIDTHS``); else from the widest line of the header,
    its values (a sample) and its drop-down choices, within bounds — 「未判断（モデルの分類）」 and
    「2026-11-22 10:00」 on one line, a long status wrapped at ``SIZED_MAX``."""
    if header in WIDTHS:
        fixed = WIDTHS[header]
        if choices:  # a drop-down column: wide enough for its longest choice
            fixed = max(fixed, min(LIST_MAX, round(max(display_width(c) for c in choices) * UNIT + 2)))
        return fixed
    widest = max((display_width(line) for v in (header, *values) if not _null(v) and v != "" for line in str(v).split("\n")), default=0)
    return float(min(SIZED_MAX, max(SIZED_MIN, round(widest * UNIT + 2))))


def fit_cell(value: object) -> object:
    """A value Excel accepts in one cell: at most 32,767 characters, the cut said in the cell."""
    if not isinstance(value, str) or len(value) <= EXCEL_CELL_LIMIT:
        return value
    note = "…［Excel のセルの上限を超えるため以下 {n:,} 文字を省略。全文は wt_export.csv にあります］"
    keep = EXCEL_CELL_LIMIT - len(note.format(n=len(value)))
    return value[:keep] + note.format(n=len(value) - keep)


def write_export(groups: pd.DataFrame, out_dir: Path, choices: dict[str, list[str]] | None = None) -> dict[str, Path]:
    """Write wt_export.csv (BOM) and wt_export.xlsx (sheets 共有すべきもの / 除外した意見).

    ``choices`` (``decision_choices``): the drop-down lists of the editable columns, kept on a hidden
    sheet 選択肢 and named (選択肢_分類 …) so Excel and LibreOffice both accept them whatever their
    length (an inline list stops at 255 characters). The CSV leaves out the editable and key columns.

    The xlsx is streamed (openpyxl's write-only workbook: each row goes to the file as it is written), so
    its memory does not grow with the window: the in-memory workbook kept every cell as an object, about
    1 KB each, 3 million cells for 100,000 groups."""
    from openpyxl import Workbook

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "wt_export.csv", "xlsx": out_dir / "wt_export.xlsx"}
    groups = groups.map(clean_text) if len(groups) else groups
    csv_part = groups[[c for c in groups.columns if c not in SHEET_ONLY]]
    # every text field quoted: the csv module quotes only fields holding "\n", so a bare CR (a cell
    # starting with one is neutralised, not removed) would otherwise split the row in Excel
    (csv_part.map(neutralise) if len(csv_part) else csv_part).to_csv(paths["csv"], index=False, encoding="utf-8-sig", quoting=csv.QUOTE_NONNUMERIC)
    wb = Workbook(write_only=True)
    # sheets in file order: the two the WT reads first (the first one active), the hidden lists last
    for title, part in (("共有すべきもの", groups[groups["区分"] == "共有"] if len(groups) else groups), ("除外した意見", groups[groups["区分"] == "除外"] if len(groups) else groups)):
        _write_sheet(wb, wb.create_sheet(title), part, _choice_names(choices) if choices else {}, choices)
    if choices:
        _choices_sheet(wb, choices)
    wb.save(paths["xlsx"])
    return paths


def _choice_names(choices: dict[str, list[str]]) -> dict[str, str]:
    """The workbook name of each drop-down list (header → 選択肢_分類 …)."""
    return {header: "選択肢_" + header.split("：", 1)[-1] for header in choices}


def _choices_sheet(wb, choices: dict[str, list[str]]) -> None:
    """The hidden sheet 選択肢 (one column per list) and a workbook name per list (``_choice_names``)."""
    from openpyxl.utils import get_column_letter, quote_sheetname
    from openpyxl.workbook.defined_name import DefinedName

    ws = wb.create_sheet(CHOICES_SHEET)
    ws.sheet_state = "hidden"
    lists = list(choices.values())
    ws.append(list(choices))
    for r in range(max((len(o) for o in lists), default=0)):
        ws.append([o[r] if r < len(o) else None for o in lists])
    for i, (header, name) in enumerate(_choice_names(choices).items(), start=1):
        col = get_column_letter(i)
        wb.defined_names[name] = DefinedName(name, attr_text=f"{quote_sheetname(CHOICES_SHEET)}!${col}$2:${col}${max(2, len(choices[header]) + 1)}")


def _write_sheet(wb, ws, part: pd.DataFrame, names: dict[str, str], choices: dict[str, list[str]] | None = None) -> None:
    """One sheet, streamed: widths, hidden key columns, the frozen header, filters and drop-down lists are
    declared before the rows (a write-only sheet writes them around its rows); every cell wraps, and a
    text a spreadsheet would evaluate is written as text marked quote-prefixed."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    cols = list(part.columns)
    last = max(len(part) + 1, 2)
    sample = part.head(WIDTH_SAMPLE)
    widths = [column_width(c, sample[c].tolist(), (choices or {}).get(c)) for c in cols]
    for i, (c, width) in enumerate(zip(cols, widths), start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = width
        ws.column_dimensions[letter].hidden = c in KEY_COLUMNS
    shown = [None if c in KEY_COLUMNS else w for c, w in zip(cols, widths)]
    caps = [SECONDARY_LINES if c in SECONDARY else MAX_LINES for c in cols]
    _print_setup(ws)
    for header, name in names.items():
        if header in cols:
            letter = get_column_letter(cols.index(header) + 1)
            label = header.split("：", 1)[-1]
            dv = DataValidation(
                type="list", formula1=name, allow_blank=True, showErrorMessage=True, showInputMessage=True, errorStyle="stop",
                errorTitle=f"{label}の値", error=f"{label}は一覧から選んでください（空欄のままでも構いません）。", promptTitle=label, prompt="一覧から選びます。空欄の行は取り込みません。",
            )  # fmt: skip
            dv.add(f"{letter}2:{letter}{last}")
            ws.data_validations.append(dv)
    ws.freeze_panes = "A2"
    if cols:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{len(part) + 1}"
    bold, header_align = Font(bold=True), Alignment(wrap_text=True, vertical="center")
    fills = {True: PatternFill("solid", fgColor=DECISION_FILL), False: PatternFill("solid", fgColor=HEADER_FILL)}
    head = []
    for c in cols:
        cell = WriteOnlyCell(ws, value=c)
        cell.font, cell.fill, cell.alignment = bold, fills[c in DECISION_COLUMNS], header_align
        head.append(cell)
    _append(ws, 1, head, row_height(cols, shown))
    # every cell wraps: the style is looked up once and its index array copied into each cell (assigning
    # the Alignment per cell hashed and compared it every time: half the time of a large sheet)
    proto = WriteOnlyCell(ws)
    proto.alignment = Alignment(wrap_text=True, vertical="top")
    wrapped = proto._style
    for index, rec in enumerate(part.itertuples(index=False), start=2):
        row = []
        for v in rec:
            v = v.item() if hasattr(v, "item") else v
            # blank, not an empty text: Excel's filter 「(空白セル)」
            cell = WriteOnlyCell(ws, value=None if isinstance(v, str) and v == "" else fit_cell(v))
            cell._style = copy(wrapped)
            if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                # openpyxl stores a string starting with "=" as a formula: keep it text, as typed, and
                # mark it quote-prefixed so Excel keeps it text when someone edits the cell
                cell.data_type = "s"
                cell.quotePrefix = True
            row.append(cell)
        _append(ws, index, row, row_height([c.value for c in row], shown, caps))


def _append(ws, index: int, row: list, height: float) -> None:
    """Stream row ``index`` (1 = the header) with its height: a write-only sheet writes a row's
    ``row_dimensions`` as the row is appended, so the height is set just before and dropped just after
    (memory stays constant)."""
    ws.row_dimensions[index].height = height
    ws.append(row)
    del ws.row_dimensions[index]


def _print_setup(ws) -> None:
    """Printable as it is: A3 landscape, all columns on one page wide (as many pages down as needed), the
    header row on every page, grid lines. Columns a person hides are left out of the print, and the page
    scales up to fill the width again."""
    from openpyxl.worksheet.properties import PageSetupProperties
    from openpyxl.worksheet.worksheet import Worksheet

    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A3
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.print_title_rows = "1:1"
    ws.print_options.gridLines = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6


# --------------------------------------------------------------------------- one call for the meeting materials


@dataclass(frozen=True)
class MeetingMaterials:
    csv: Path
    xlsx: Path
    report: Path
    groups: int
    shared: int


def export_window(engine, window: str, out_dir: Path, base_domain: Domain, generated_at: str | None = None) -> MeetingMaterials:
    """wt_export.csv / wt_export.xlsx and report.html of a window from the queue: what `opinions export`
    and the end of `opinions run` write. The window's own candidate list and kind, as the batch stored
    them. Raises queue.QueueError for an unknown window."""
    import time

    from pipeline.queue import window_domain, window_info, window_table
    from pipeline.report import build_report

    domain = window_domain(engine, window, base_domain)
    table = window_table(engine, window)
    kind = read_window_kind(engine, window)  # as stored by the batch, never guessed from the name
    groups = group_rows(table, domain, kind)
    files = write_export(groups, out_dir, decision_choices(domain, kind))
    report = out_dir / "report.html"
    stored = window_info(engine, window)["candidates"] or {}
    report.write_text(build_report(window, table, groups, domain, generated_at or time.strftime("%Y-%m-%d %H:%M"), stored.get("source", "bundled")), encoding="utf-8")
    shared = int((groups["区分"] == "共有").sum()) if len(groups) else 0
    return MeetingMaterials(files["csv"], files["xlsx"], report, len(groups), shared)
