"""Ingest: read a window's raw files (CSV in UTF-8 / UTF-8 BOM / CP932 / UTF-16, .xlsx, .xls, .ods)
into one table of opinions.

Every data row of every readable file becomes exactly one output row, with its source file, sheet
and row number and an ``ingest_status`` saying what happened to it. Problems are collected as
``Problem`` records (file, row, message in Japanese); a file that cannot be read at all raises
``IngestError`` listing every such file, so no file is ever skipped silently. Opinion files in
sub-folders are read too (``source_file`` is the path inside the window folder); ``references/``
(the window's documents) and ``window.yaml`` (its metadata) belong to other modules.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from pipeline.config import Domain, IngestConfig

OPENPYXL = {".xlsx", ".xlsm"}
CALAMINE = {".xls", ".xlsb", ".ods"}  # python-calamine: old Excel, binary Excel, LibreOffice/OpenDocument
SUPPORTED = {".csv", ".tsv", ".txt"} | OPENPYXL | CALAMINE
NOT_OPINIONS = {"references"}  # sub-folders other modules read (references.py: the window's documents)
METADATA = {"window.yaml", "window.yml"}  # a window's metadata file (kind, title, candidates)
# sheets that hold instructions or examples, never opinions: reported as skipped, not read
NON_DATA_SHEET = re.compile(r"記入例|記載例|入力例|回答例|作成例|見本|サンプル|説明|注意|留意|表紙|目次|凡例|使い方|記入方法|記入要領|作成要領|はじめに|選択肢|プルダウン|マスタ|(?i:sample|example|master)")
_NUL_MARK = "\uffff"  # a noncharacter stands in for NUL while the csv module parses
FIELDS = ("id", "body", "prefecture", "stated_candidate", "text", "reason")
FIELD_LABELS = {"id": "番号", "body": "団体名", "prefecture": "都道府県", "stated_candidate": "対象", "text": "意見", "reason": "理由"}
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
        return f"［{'エラー' if self.level == 'error' else '警告'}］ {where}: {self.message}"


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
    # UTF-16 saved without its BOM: the high byte of every ASCII character (tab, comma, newline) is NUL,
    # always on the same side; a stray NUL in a UTF-8 file gives no newline when read as UTF-16
    odd, even = data[1::2].count(0), data[0::2].count(0)
    if max(odd, even) >= 2 and min(odd, even) <= max(odd, even) // 10:
        order = "utf-16-le" if odd > even else "utf-16-be"
        try:
            text = data.decode(order)
            if "\n" in text and "\x00" not in text:
                return text, order
        except UnicodeDecodeError:
            pass
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


def csv_records(text: str, suffix: str = ".csv", name: str = "") -> list[list[str]]:
    """Parse CSV text into records; a quoted cell may span lines (one record = one spreadsheet row).
    A cell over the csv module's limit, or a quote left open to the end of the file (which would
    swallow every following row into one cell), raises IngestError naming the file and row."""
    delimiter = _sniff_delimiter(text, suffix)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[list[str]] = []
    try:
        for r in reader:
            records.append(list(r))
    except csv.Error as e:
        row = len(records) + 1
        if "field larger than field limit" in str(e):
            message = (
                f"1つのセルが {csv.field_size_limit():,} 文字（読み込める上限）を超えています。"
                "引用符（\"）の閉じ忘れで後ろの行がこのセルに入っていないか確認し、直して保存し直してください。"
            )
        else:
            message = f"CSV として読めない箇所があります（{e}）。Excel で開いて CSV（UTF-8）で保存し直してください。"
        raise IngestError([Problem(name, row, "error", message)]) from None
    # lenient parsing accepts a quote that never closes: check with a strict pass
    strict = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    while True:
        try:
            next(strict)
        except StopIteration:
            break
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                raise IngestError(
                    [Problem(name, len(records), "error", "この行で始まる引用符（\"）が閉じられていないため、ファイルの終わりまでが 1 つのセルに入ってしまいます（後ろの行が失われます）。引用符を閉じて保存し直してください。")]
                ) from None
    return records


def _cell_to_str(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return str(v)


LOCKED = "ファイルを開けません（読み取りを拒否されました）。Excel などで開いている場合は閉じてから、読み取り権限があることを確かめて再実行してください。"


def read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes, or IngestError with a Japanese message (locked by Excel, no permission, I/O error)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except PermissionError:
        raise IngestError([Problem(name, None, "error", LOCKED)]) from None
    except OSError as e:
        raise IngestError([Problem(name, None, "error", f"ファイルを読めません（{e.strerror or type(e).__name__}）。")]) from None


def xlsx_sheets(path: Path, name: str | None = None) -> dict[str, list[list[str]]]:
    from openpyxl import load_workbook

    name = name or path.name
    data = read_bytes(path, name)
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for broken files
        hint = "パスワード付きか、拡張子と中身の形式が違う可能性があります。" if data[:4] == b"\xd0\xcf\x11\xe0" else ""
        raise IngestError([Problem(name, None, "error", f"Excel ファイルとして開けません（{type(e).__name__}: {e}）。{hint}")]) from None
    try:
        sheets = {}
        for ws in wb.worksheets:
            ws.reset_dimensions()  # read-only mode trusts the stored <dimension>, which some producers write wrong
            sheets[ws.title] = [[_cell_to_str(v) for v in row] for row in ws.iter_rows(values_only=True)]
        return sheets
    finally:
        wb.close()


def calamine_sheets(path: Path, name: str | None = None) -> dict[str, list[list[str]]]:
    """.xls / .xlsb / .ods through python-calamine, keeping leading empty rows so row numbers match the sheet."""
    from python_calamine import CalamineWorkbook, PasswordError

    name = name or path.name
    data = read_bytes(path, name)
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
        return {sheet: [[_cell_to_str(v) for v in row] for row in wb.get_sheet_by_name(sheet).to_python(skip_empty_area=False)] for sheet in wb.sheet_names}
    except PasswordError:
        raise IngestError([Problem(name, None, "error", "パスワードが設定されているため開けません。パスワードを外して保存し直してください。")]) from None
    except Exception as e:  # calamine raises its own types (CalamineError, XmlError, ZipError …) for broken files
        raise IngestError([Problem(name, None, "error", f"{path.suffix} ファイルとして開けません（{type(e).__name__}: {e}）。Excel で開けるか確かめ、.xlsx で保存し直してください。")]) from None


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
            notes.append(f"列「{cell}」も{FIELD_LABELS[f]}の列と解釈できますが、先の列「{row[found[f]]}」を使います。")
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


def _sheet_rows(sheets: dict[str, list[list[str]]], name: str, domain: Domain, cfg: IngestConfig) -> tuple[list[dict], list[Problem]]:
    """Every sheet of a workbook: data sheets are read (an unknown header stops the file, naming the
    sheet); empty sheets and instruction/example sheets (記入例, 説明 …) are reported as skipped."""
    rows: list[dict] = []
    problems: list[Problem] = []
    fatal: list[Problem] = []
    read = 0
    for sheet, records in sheets.items():
        label = f"{name}［{sheet}］"
        filled = sum(1 for r in records if any(c.strip() for c in r))
        if filled == 0:
            problems.append(Problem(label, None, "warning", "空のシートです。読み飛ばしました。"))
            continue
        if NON_DATA_SHEET.search(sheet):
            header = find_header(records, domain.header_aliases, cfg.header_scan_rows)
            below = sum(1 for r in records[header[0] + 1 :] if any(c.strip() for c in r)) if header else 0
            held = f"見出しの下に {below} 行" if header else f"空白でない行 {filled} 行"
            problems.append(Problem(label, None, "warning", f"記入例・説明のシートと判断し、読み込みませんでした（{held}）。意見を書いたシートならシート名を変えてください。"))
            continue
        try:
            r, p = _records_to_rows(records, name, sheet, domain, cfg)
        except IngestError as e:
            fatal += [
                Problem(x.file, x.row, x.level, x.message + ("" if len(sheets) == 1 else "意見のシートでなければ、シート名を「説明」などにするか削除してください。"))
                for x in e.problems
            ]
            continue
        read += 1
        rows += r
        problems += p
    if fatal:
        raise IngestError(fatal)
    if read == 0 and any(any(c.strip() for r in recs for c in r) for recs in sheets.values()):
        raise IngestError([Problem(name, None, "error", f"意見を書いたシートがありません（シート: {'、'.join(sheets)}。記入例・説明のシートは読みません）。")])
    return rows, problems


def read_file(path: Path, domain: Domain, cfg: IngestConfig, name: str | None = None) -> tuple[list[dict], list[Problem]]:
    """Read one raw file into row dicts. Raises IngestError when the file cannot be used at all.
    ``name``: how the file is called in outputs and messages (its path inside the window folder)."""
    name = name or path.name
    suffix = path.suffix.lower()
    if suffix in OPENPYXL:
        try:
            sheets = xlsx_sheets(path, name)
        except IngestError:
            # an old .xls (or an .ods) renamed to .xlsx: read it for what it is, and say so
            try:
                sheets = calamine_sheets(path, name)
            except IngestError:
                pass
            else:
                rows, problems = _sheet_rows(sheets, name, domain, cfg)
                note = Problem(name, None, "warning", f"拡張子は {path.suffix} ですが、中身は別の形式（古い .xls など）でした。中身の形式で読み込みました。")
                return rows, [note] + problems
            raise
        return _sheet_rows(sheets, name, domain, cfg)
    if suffix in CALAMINE:
        return _sheet_rows(calamine_sheets(path, name), name, domain, cfg)
    data = read_bytes(path, name)
    if not data.strip():
        return [], [Problem(name, None, "warning", "空のファイルです。意見は 0 件として扱います。")]
    text, _ = decode_bytes(data, name)
    problems: list[Problem] = []
    has_nul = "\x00" in text
    records = csv_records(text.replace("\x00", _NUL_MARK) if has_nul else text, suffix, name)
    if has_nul:
        nul_rows = [i + 1 for i, r in enumerate(records) if any(_NUL_MARK in c for c in r)]
        records = [[c.replace(_NUL_MARK, "") for c in r] for r in records]
        problems.append(Problem(name, nul_rows[0] if nul_rows else None, "warning", f"NUL 文字（\\0）が含まれていたため取り除きました（{_ranges(nul_rows) if nul_rows else '?'} 行目）。ファイルが壊れていないか確かめてください。"))
    rows, p = _records_to_rows(records, name, "", domain, cfg)
    return rows, problems + p


def _lock_owner(lock: Path) -> str:
    """The workbook an Excel/Word lock file (~$…) belongs to: ~$ replaces the name's first characters."""
    rest = lock.name[2:]
    siblings = [p.name for p in lock.parent.iterdir() if p != lock and p.name.endswith(rest)]
    return min(siblings, key=len) if siblings else rest


def list_raw_files(raw_dir: Path) -> tuple[list[Path], list[Problem]]:
    """Every opinion file of a window, sub-folders included (not ``references/``, not ``window.yaml``)."""
    if not raw_dir.is_dir():
        raise IngestError([Problem(str(raw_dir), None, "error", "フォルダが見つかりません。")])
    files, problems = [], []
    seen: set[Path] = set()

    def walk(folder: Path) -> None:
        if folder.resolve() in seen:  # a symbolic link back into the window
            return
        seen.add(folder.resolve())
        try:
            entries = sorted(folder.iterdir())
        except OSError as e:
            problems.append(Problem(_relative(folder, raw_dir), None, "error", f"フォルダを開けません（{e.strerror or type(e).__name__}）。"))
            return
        for p in entries:
            rel = _relative(p, raw_dir)
            if p.name.startswith("."):
                continue
            if p.is_dir():
                if not (folder == raw_dir and p.name in NOT_OPINIONS):
                    walk(p)
                continue
            if folder == raw_dir and p.name in METADATA:
                continue
            if p.name.startswith("~$"):
                owner = _lock_owner(p)
                problems.append(
                    Problem(rel, None, "warning", f"Excel が「{owner}」を開いている間に作るロックファイルのため読み込みません。「{owner}」を Excel で開いたままなら、保存して閉じてから再実行してください（保存していない変更は読み込まれません）。")
                )
            elif p.suffix.lower() in SUPPORTED:
                files.append(p)
            else:
                problems.append(Problem(rel, None, "warning", f"対応していない形式（{p.suffix or '拡張子なし'}）のため読み込みません。CSV か Excel（.xlsx / .xls）、.ods にしてください。"))

    walk(raw_dir)
    fatal = [p for p in problems if p.level == "error"]
    if fatal:
        raise IngestError(fatal)
    if not files:
        raise IngestError(problems + [Problem(str(raw_dir), None, "error", "CSV / Excel（.xlsx / .xls）/ .ods ファイルがありません。")])
    return files, problems


def _relative(path: Path, root: Path) -> str:
    return PurePosixPath(path.relative_to(root)).as_posix()


# --------------------------------------------------------------------------- ids


def assign_ids(frame: pd.DataFrame) -> tuple[pd.Series, list[Problem]]:
    """opinion_id = the id column's value where present and unique in the window, else ``<file stem>#<row>``."""
    counts = frame["source_id"].where(frame["source_id"] != "").value_counts()
    generated = frame["source_file"].map(lambda f: str(PurePosixPath(f).with_suffix(""))) + frame["source_sheet"].map(lambda s: f"[{s}]" if s else "") + "#" + frame["source_row"].astype(str)
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
            r, p = read_file(path, domain, cfg, name=_relative(path, raw_dir))
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
