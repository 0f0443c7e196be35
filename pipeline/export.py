"""WT export: one row per duplicate group, Japanese columns and labels, for people in a meeting.

``wt_export.csv`` (UTF-8 with BOM, so Excel opens it) and ``wt_export.xlsx`` (header frozen, filters,
readable widths; sheet 共有すべきもの and sheet 除外した意見).

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


def member_differences(group: list[dict], rep: dict, domain: Domain) -> str:
    """Per member, what it adds to the representative (opinion and reason), and its prediction when it
    differs from the representative's; one line per member that differs. ``group``: the members' rows."""
    lines = []
    rep_body, rep_text, rep_reason, rep_cat = _s(rep, "body"), _s(rep, "text"), _s(rep, "reason"), _s(rep, "category")
    for m in group:
        if m["opinion_id"] == rep["opinion_id"]:
            continue
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
    if not passage and not quote:
        return ""
    return "\n".join(p for p in (passage, f"「{quote}」" if quote else "") if p)


def grounds(group: list[dict], first: dict) -> str:
    """「根拠となる記載」 of a 解決済 group: the passage id and quote the model cited (blank if none)."""
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
        _write_sheet(wb, wb.create_sheet(title), part, _choice_names(choices) if choices else {})
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


def _write_sheet(wb, ws, part: pd.DataFrame, names: dict[str, str]) -> None:
    """One sheet, streamed: widths, hidden key columns, the frozen header, filters and drop-down lists are
    declared before the rows (a write-only sheet writes them around its rows); every cell wraps, and a
    text a spreadsheet would evaluate is written as text marked quote-prefixed."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    cols = list(part.columns)
    last = max(len(part) + 1, 2)
    for i, c in enumerate(cols, start=1):
        letter = get_column_letter(i)
        ws.column_dimensions[letter].width = WIDTHS.get(c, max(10, min(24, len(c) * 2 + 2)))
        ws.column_dimensions[letter].hidden = c in KEY_COLUMNS
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
    bold = Font(bold=True)
    fills = {True: PatternFill("solid", fgColor=DECISION_FILL), False: PatternFill("solid", fgColor=HEADER_FILL)}
    head = []
    for c in cols:
        cell = WriteOnlyCell(ws, value=c)
        cell.font, cell.fill = bold, fills[c in DECISION_COLUMNS]
        head.append(cell)
    ws.append(head)
    # every cell wraps: the style is looked up once and its index array copied into each cell (assigning
    # the Alignment per cell hashed and compared it every time: half the time of a large sheet)
    proto = WriteOnlyCell(ws)
    proto.alignment = Alignment(wrap_text=True, vertical="top")
    wrapped = proto._style
    for rec in part.itertuples(index=False):
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
        ws.append(row)


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
