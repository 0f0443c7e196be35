"""Ingest: read a window's raw files (CSV in UTF-8 / UTF-8 BOM / CP932, or .xlsx) into one table of opinions.

Every data row of every readable file becomes exactly one output row, with its source file, sheet
and row number and an ``ingest_status`` saying what happened to it. Problems are collected as
``Problem`` records (file, row, message in Japanese); a file that cannot be read at all raises
``IngestError`` listing every such file, so no file is ever skipped silently.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.config import Domain, IngestConfig

SUPPORTED = {".csv", ".tsv", ".txt", ".xlsx", ".xlsm"}
FIELDS = ("id", "body", "prefecture", "stated_candidate", "text", "reason")
COLUMNS = (
    "opinion_id",
    "window",
    "source_file",
    "source_sheet",
    "source_row",
    "source_id",
    "body",
    "prefecture",
    "stated_candidate",
    "text",
    "reason",
    "ingest_status",
    "ingest_message",
)
# ingest_status values: ok | empty_text | too_long | id_regenerated (combined with "+", e.g. "too_long+id_regenerated")


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    level: str  # "error" (the file or row could not be used as is) or "warning"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}" + (f" {self.row}行目" if self.row is not None else "")
        return f"[{self.level}] {where}: {self.message}"


class IngestError(Exception):
    """A window could not be read: at least one file is unusable. Carries every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class IngestResult:
    opinions: pd.DataFrame
    problems: tuple[Problem, ...]


# --------------------------------------------------------------------------- decoding and records


def decode_bytes(data: bytes, name: str) -> tuple[str, str]:
    """Decode a CSV's bytes: UTF-16 (BOM), UTF-8 (with or without BOM), then CP932 (Shift_JIS superset)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as e_utf8:
        try:
            return data.decode("cp932"), "cp932"
        except UnicodeDecodeError as e_sjis:
            line = data[: e_utf8.start].count(b"\n") + 1
            raise IngestError(
                [
                    Problem(
                        name,
                        None,
                        "error",
                        f"文字コードを判別できません（UTF-8 として {line} 行目付近・{e_utf8.start} バイト目、"
                        f"Shift_JIS(CP932) として {e_sjis.start} バイト目で読めない文字があります）。"
                        "UTF-8 か Shift_JIS で保存し直してください。",
                    )
                ]
            ) from None


def _sniff_delimiter(text: str, suffix: str) -> str:
    first = text.split("\n", 1)[0]
    if suffix == ".tsv" or ("\t" in first and first.count("\t") >= first.count(",")):
        return "\t"
    return ","


def csv_records(text: str, suffix: str = ".csv") -> list[list[str]]:
    """Parse CSV text into records; a quoted cell may span lines (one record = one spreadsheet row)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(text, suffix))
    return [list(r) for r in reader]


def _cell_to_str(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    return str(v)


def xlsx_sheets(path: Path) -> dict[str, list[list[str]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for broken files
        raise IngestError([Problem(path.name, None, "error", f"Excel ファイルとして開けません（{type(e).__name__}: {e}）")]) from None
    try:
        return {ws.title: [[_cell_to_str(v) for v in row] for row in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    finally:
        wb.close()


# --------------------------------------------------------------------------- headers


_BRACKETS = re.compile(r"[（(【\[［<＜].*?[）)】\]］>＞]")


def normalise_header(cell: str) -> str:
    s = unicodedata.normalize("NFKC", cell or "")
    s = _BRACKETS.sub("", s)
    s = re.sub(r"[\s※*＊:：]", "", s)
    return s.lower()


def match_header(row: Sequence[str], aliases: dict[str, tuple[str, ...]]) -> tuple[dict[str, int], list[str]]:
    """Map fields to column indexes for one candidate header row; return notes on ambiguous columns."""
    lookup = {normalise_header(a): f for f, al in aliases.items() for a in al}
    found: dict[str, int] = {}
    notes: list[str] = []
    for i, cell in enumerate(row):
        f = lookup.get(normalise_header(cell))
        if f is None:
            continue
        if f in found:
            notes.append(f"列「{cell}」も {f} と解釈できますが、先の列「{row[found[f]]}」を使います")
            continue
        found[f] = i
    return found, notes


def find_header(records: Sequence[Sequence[str]], aliases: dict[str, tuple[str, ...]], scan_rows: int) -> tuple[int, dict[str, int], list[str]] | None:
    """Find the header row: the first of the top ``scan_rows`` rows that names an opinion column."""
    for i, row in enumerate(records[:scan_rows]):
        found, notes = match_header(row, aliases)
        if "text" in found:
            return i, found, notes
    return None


# --------------------------------------------------------------------------- records -> rows


def _records_to_rows(
    records: Sequence[Sequence[str]],
    name: str,
    sheet: str,
    domain: Domain,
    cfg: IngestConfig,
) -> tuple[list[dict], list[Problem]]:
    label = name if not sheet else f"{name}［{sheet}］"
    problems: list[Problem] = []
    if not any(any(c.strip() for c in r) for r in records):
        return [], [Problem(label, None, "warning", "空のファイル（またはシート）です。意見は 0 件として扱います。")]
    header = find_header(records, domain.header_aliases, cfg.header_scan_rows)
    if header is None:
        seen = [c for c in records[0] if c.strip()][:12] if records else []
        wanted = "、".join(domain.header_aliases["text"])
        raise IngestError(
            [Problem(label, 1, "error", f"意見の列が見つかりません（見出し: {seen}）。意見の列名は {wanted} のいずれかにしてください（configs/headers.yaml で追加できます）。")]
        )
    h, cols, notes = header
    problems += [Problem(label, h + 1, "warning", n) for n in notes]
    rows: list[dict] = []
    blank_rows: list[int] = []
    width = len(records[h])
    for r_idx in range(h + 1, len(records)):
        rec = records[r_idx]
        row_no = r_idx + 1  # 1-based, as a spreadsheet shows it
        if not any(c.strip() for c in rec):
            blank_rows.append(row_no)
            continue
        if len(rec) > width and any(c.strip() for c in rec[width:]):
            problems.append(Problem(label, row_no, "warning", f"見出しより多い {len(rec)} 列があります。見出しのない列は読み飛ばします。"))
        get = {f: (rec[i] if i < len(rec) else "") for f, i in cols.items()}
        text = get.get("text", "")
        status: list[str] = []
        messages: list[str] = []
        if not text.strip():
            status.append("empty_text")
            messages.append("意見が空欄です")
            problems.append(Problem(label, row_no, "warning", "意見が空欄です。行は残し、要確認にします。"))
        too_long = [f for f in ("text", "reason") if len(get.get(f, "")) > cfg.max_chars]
        if too_long:
            status.append("too_long")
            messages.append(f"{cfg.max_chars:,} 文字を超えています")
            problems.append(
                Problem(label, row_no, "warning", f"{'・'.join('意見' if f == 'text' else '理由' for f in too_long)}が {cfg.max_chars:,} 文字を超えています。全文を残して分類し、要確認にします。")
            )
        rows.append(
            {
                "source_file": name,
                "source_sheet": sheet,
                "source_row": row_no,
                "source_id": get.get("id", "").strip(),
                "body": get.get("body", "").strip(),
                "prefecture": get.get("prefecture", "").strip(),
                "stated_candidate": get.get("stated_candidate", "").strip(),
                "text": text,
                "reason": get.get("reason", ""),
                "ingest_status": "+".join(status),
                "ingest_message": "；".join(messages),
            }
        )
    if blank_rows:
        problems.append(Problem(label, blank_rows[0], "warning", f"完全に空白の行 {len(blank_rows)} 行を読み飛ばしました（{_ranges(blank_rows)} 行目）。"))
    if not rows:
        problems.append(Problem(label, None, "warning", "データ行がありません。意見は 0 件として扱います。"))
    return rows, problems


def _ranges(nums: Iterable[int]) -> str:
    out: list[str] = []
    nums = sorted(nums)
    start = prev = nums[0]
    for n in nums[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def read_file(path: Path, domain: Domain, cfg: IngestConfig) -> tuple[list[dict], list[Problem]]:
    """Read one raw file into row dicts. Raises IngestError when the file cannot be used at all."""
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        rows: list[dict] = []
        problems: list[Problem] = []
        sheets = xlsx_sheets(path)
        usable = 0
        for sheet, records in sheets.items():
            try:
                r, p = _records_to_rows(records, path.name, sheet, domain, cfg)
            except IngestError as e:
                if len(sheets) == 1:
                    raise
                problems.append(Problem(e.problems[0].file, None, "warning", "意見の列がないシートのため読み飛ばしました。"))
                continue
            usable += 1
            rows += r
            problems += p
        if usable == 0:
            raise IngestError([Problem(path.name, None, "error", f"どのシート（{list(sheets)}）にも意見の列が見つかりません。")])
        return rows, problems
    data = path.read_bytes()
    if not data.strip():
        return [], [Problem(path.name, None, "warning", "空のファイルです。意見は 0 件として扱います。")]
    text, _ = decode_bytes(data, path.name)
    return _records_to_rows(csv_records(text, suffix), path.name, "", domain, cfg)


def list_raw_files(raw_dir: Path) -> tuple[list[Path], list[Problem]]:
    if not raw_dir.is_dir():
        raise IngestError([Problem(str(raw_dir), None, "error", "フォルダが見つかりません。")])
    files, problems = [], []
    for p in sorted(raw_dir.iterdir()):
        if p.name.startswith((".", "~$")) or p.is_dir():
            continue
        if p.suffix.lower() in SUPPORTED:
            files.append(p)
        else:
            problems.append(Problem(p.name, None, "warning", f"対応していない形式（{p.suffix or '拡張子なし'}）のため読み込みません。CSV か .xlsx にしてください。"))
    if not files:
        raise IngestError(problems + [Problem(str(raw_dir), None, "error", "CSV / .xlsx ファイルがありません。")])
    return files, problems


# --------------------------------------------------------------------------- ids


def assign_ids(frame: pd.DataFrame) -> tuple[pd.Series, list[Problem]]:
    """opinion_id = the id column's value where present and unique in the window, else ``<file stem>#<row>``."""
    counts = frame["source_id"].where(frame["source_id"] != "").value_counts()
    generated = frame["source_file"].map(lambda f: Path(f).stem) + frame["source_sheet"].map(lambda s: f"[{s}]" if s else "") + "#" + frame["source_row"].astype(str)
    usable = (frame["source_id"] != "") & frame["source_id"].map(lambda v: counts.get(v, 0) == 1)
    ids = frame["source_id"].where(usable, generated)
    # a generated id could in theory equal a real id; make every id unique by construction
    clash = ids.duplicated(keep=False)
    ids = ids.where(~clash, generated + "@" + frame.index.astype(str))
    problems = []
    for v, n in counts.items():
        if n > 1:
            rows = frame.loc[frame["source_id"] == v, ["source_file", "source_row"]]
            where = "、".join(f"{f} {r}行目" for f, r in rows.itertuples(index=False))
            problems.append(Problem(rows.iloc[0]["source_file"], int(rows.iloc[0]["source_row"]), "warning", f"番号「{v}」が {n} 行で重複しています（{where}）。これらの行にはファイル名と行番号から ID を振ります。"))
    return ids, problems


# --------------------------------------------------------------------------- window


def ingest_window(raw_dir: Path, window: str, domain: Domain, cfg: IngestConfig) -> IngestResult:
    """Read every file of a window. Raises IngestError (listing all unusable files) if any file is unusable."""
    files, problems = list_raw_files(raw_dir)
    rows: list[dict] = []
    fatal: list[Problem] = []
    for path in files:
        try:
            r, p = read_file(path, domain, cfg)
        except IngestError as e:
            fatal += e.problems
            continue
        rows += r
        problems += p
    if fatal:
        raise IngestError(fatal + [p for p in problems if p.level == "error"])
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("opinion_id", "window")])
    frame = frame.astype({"source_row": "int64"}) if len(frame) else frame
    frame.insert(0, "window", window)
    ids, id_problems = assign_ids(frame) if len(frame) else (pd.Series(dtype=str), [])
    frame.insert(0, "opinion_id", ids)
    regenerated = (frame["source_id"] != "") & (frame["opinion_id"] != frame["source_id"])
    frame.loc[regenerated, "ingest_status"] = frame.loc[regenerated, "ingest_status"].map(lambda s: "+".join([x for x in (s, "id_regenerated") if x]))
    frame.loc[regenerated, "ingest_message"] = frame.loc[regenerated, "ingest_message"].map(lambda s: "；".join([x for x in (s, "番号が重複のため ID を振り直しました") if x]))
    frame["ingest_status"] = frame["ingest_status"].replace("", "ok")
    return IngestResult(opinions=frame[list(COLUMNS)].reset_index(drop=True), problems=tuple(problems + id_problems))
