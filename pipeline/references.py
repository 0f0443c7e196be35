"""References: read the documents a window's opinions respond to and split them into citable passages.

A window's ``RAW_DIR/references/`` holds the documents as the secretariat has them (.md, .txt, .docx,
.pdf with a text layer). Each document becomes a list of ``Passage`` records that keep their heading
path and a stable id ``<file>#<heading path>#<n>``; 解決済 and the WT's ※3 check cite them. A window
without ``references/`` uses the bundled base set (the 基本方針 and the 共通化候補一覧,
``pipeline/resources/base_references/``). ``RAW_DIR/window.yaml`` (or a CLI option) says whether the
window answers a candidate list or policy drafts; the folder name never does.

The core (``blocks_from_text``, ``passages_from_blocks``, ``split_passages``) is pure; the readers and
loaders are the thin edge. Files that cannot be used become Japanese ``problems``, never silent skips.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

KINDS = ("candidate-list", "policy-draft")
KIND_ALIASES = {
    "候補案": "candidate-list",
    "候補一覧": "candidate-list",
    "共通化候補一覧": "candidate-list",
    "方針案": "policy-draft",
    "推進方針案": "policy-draft",
    "共通化推進方針案": "policy-draft",
}
DEFAULT_KIND = "candidate-list"
WINDOW_FILE = "window.yaml"
REFERENCES_DIR = "references"
SUPPORTED_SUFFIXES = (".md", ".txt", ".docx", ".pdf")
BASE_REFERENCES = "resources/base_references"  # inside the ``pipeline`` package (declared as package data)

MAX_PASSAGE_CHARS = 400  # a passage is a quote a reviewer reads in the queue; longer paragraphs split at 「。」
HEADING_MAX_CHARS = 50  # a numbered line longer than this (or ending in 「。」) is an item paragraph, not a heading
TITLE_MAX_CHARS = 80


class WindowMetaError(ValueError):
    """window.yaml or the kind option is unusable; the message (Japanese) names the file and what is allowed."""


class DocumentError(Exception):
    """A reference document could not be read; the message (Japanese) names the file and what to do."""


@dataclass(frozen=True)
class Passage:
    id: str  # f"{file}#{' > '.join(headings)}#{n}"; the same file content gives the same ids
    file: str  # path relative to the references folder, "/"-separated
    headings: tuple[str, ...]  # heading path, outermost first; the document title is the first heading
    n: int  # 1-based index of this passage under that heading path
    text: str  # whitespace-normalised paragraph (original characters, no NFKC)


@dataclass(frozen=True)
class WindowMeta:
    kind: str  # "candidate-list" | "policy-draft"
    title: str
    kind_source: str  # "window.yaml" | "option" | "default"
    candidates: tuple[dict, ...] | None  # window.yaml `candidates:` ({id, name, ministry}) when given


@dataclass(frozen=True)
class ReferenceSet:
    passages: tuple[Passage, ...]
    files: tuple[str, ...]  # documents that gave at least one passage
    source: str  # "window" (RAW_DIR/references) | "bundled" (the base set)
    problems: tuple[str, ...]  # Japanese messages, each naming its file


@dataclass(frozen=True)
class Block:
    """One unit of a document as read: a heading (``rank`` set; lower rank = outer) or a paragraph."""

    text: str
    rank: float | None = None

    @property
    def is_heading(self) -> bool:
        return self.rank is not None


# --------------------------------------------------------------------------- window.yaml and kind


def normalise_kind(value: object, where: str) -> str:
    """Map a kind as written (English code or Japanese alias) to its code; anything else stops with a message."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if text.lower() in KINDS:
        return text.lower()
    if text in KIND_ALIASES:
        return KIND_ALIASES[text]
    raise WindowMetaError(
        f"{where} の kind「{value}」は使えません。"
        "candidate-list（共通化候補一覧への意見照会）か policy-draft（共通化推進方針案への意見照会）を指定してください"
        "（日本語の「候補案」「方針案」も使えます）。"
    )


def _parse_candidates(raw: object, where: str) -> tuple[dict, ...]:
    if not isinstance(raw, list) or not raw:
        raise WindowMetaError(f"{where} の candidates: は候補の一覧（各行に id, name, ministry）で書いてください。")
    out: list[dict] = []
    seen: set[str] = set()
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or not str(item.get("id") or "").strip() or not str(item.get("name") or "").strip():
            raise WindowMetaError(f"{where} の candidates: の {i} 件目に id と name がありません（例: - {{id: C01, name: …, ministry: …}}）。")
        cid = str(item["id"]).strip()
        if cid in seen:
            raise WindowMetaError(f"{where} の candidates: で id「{cid}」が重複しています。")
        seen.add(cid)
        out.append({"id": cid, "name": str(item["name"]).strip(), "ministry": str(item.get("ministry") or "").strip()})
    return tuple(out)


def load_window_meta(raw_dir: Path, kind_option: str | None = None) -> WindowMeta:
    """Kind, title and candidates of a window: the option wins over window.yaml, both are validated.

    Without either the kind is ``candidate-list`` (``kind_source="default"``); the title defaults to the
    folder name (the kind never does).
    """
    raw_dir = Path(raw_dir)
    path = raw_dir / WINDOW_FILE
    where = f"{raw_dir.name}/{WINDOW_FILE}"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = yaml.safe_load(decode_text(path.read_bytes(), where))
        except DocumentError as e:
            raise WindowMetaError(str(e)) from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f"（{mark.line + 1} 行目付近）" if mark is not None else ""
            raise WindowMetaError(f"{where} の書き方に誤りがあります{line}。kind: と title: を「キー: 値」の形で書いてください。") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise WindowMetaError(f"{where} は「kind: …」「title: …」の形で書いてください。")
        data = loaded

    yaml_kind = normalise_kind(data["kind"], where) if data.get("kind") not in (None, "") else None
    option_kind = normalise_kind(kind_option, "--kind オプション") if kind_option not in (None, "") else None
    if option_kind is not None:
        kind, source = option_kind, "option"
    elif yaml_kind is not None:
        kind, source = yaml_kind, "window.yaml"
    else:
        kind, source = DEFAULT_KIND, "default"

    title = str(data.get("title") or "").strip() or raw_dir.name
    candidates = _parse_candidates(data["candidates"], where) if data.get("candidates") is not None else None
    return WindowMeta(kind=kind, title=title, kind_source=source, candidates=candidates)


# --------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")
# characters beside which whitespace is layout, not content: kana, kanji, full-width forms, CJK punctuation,
# ①-style and Roman numerals. PDF text layers scatter spaces there (justification, 「。 」), Word files do not.
_CJK = re.compile(r"[\u2160-\u217f\u2460-\u24ff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_PAGE_NUMBER = re.compile(
    r"^[-－‐―–—(（〈<]?\s*(?:p\.?|P\.?)?\s*[0-9０-９]{1,4}\s*(?:[/／]\s*[0-9０-９]{1,4})?\s*(?:ページ|頁)?\s*[-－‐―–—)）〉>]?$"
)
# lines a ministry document carries above its title: a date, 資料番号, 別紙, （案） (matched with spaces removed)
_FRONT_MATTER = re.compile(
    r"^(?:(?:令和|平成)[0-9０-９元]+年(?:[0-9０-９]+月(?:[0-9０-９]+日)?)?|[0-9０-９]{4}年[0-9０-９]+月(?:[0-9０-９]+日)?"
    r"|(?:参考)?資料[0-9０-９\-－‐―]*|別紙[0-9０-９]*|別添[0-9０-９]*|参考[0-9０-９]*|[（(]?案[）)]?)$"
)


def normalise_space(text: str) -> str:
    """Whitespace-normalise: drop whitespace next to a Japanese character, collapse the rest to one space.

    Every other character is kept as written (no NFKC), so quotes match the document.
    """
    parts = _WS.split(text.strip())
    out = parts[0]
    for part in parts[1:]:
        if not part:
            continue
        out += part if (_CJK.match(out[-1:] or " ") or _CJK.match(part[0])) else " " + part
    return out


def join_lines(lines: Iterable[str]) -> str:
    """Join the wrapped lines of one paragraph: no space at a Japanese line break or after a line-end hyphen
    between Latin letters (「e-」「Gov」 → 「e-Gov」), one space between Latin words."""
    out = ""
    for line in lines:
        text = normalise_space(line)
        if not text:
            continue
        if not out:
            out = text
            continue
        hyphen = out[-1] == "-" and out[-2:-1].isascii() and out[-2:-1].isalnum() and text[0].isascii()
        if _CJK.match(out[-1]) or _CJK.match(text[0]) or hyphen:
            out += text
        else:
            out += " " + text
    return out


def is_page_number(text: str) -> bool:
    return bool(_PAGE_NUMBER.match(normalise_space(text)))


def is_front_matter(text: str) -> bool:
    return bool(_FRONT_MATTER.match(_WS.sub("", text)))


def display_width(text: str) -> int:
    """Width in half-width cells; ambiguous characters (①, ○, ※) are full-width in Japanese fonts."""
    return sum(2 if unicodedata.east_asian_width(c) in "WFA" else 1 for c in text)


# --------------------------------------------------------------------------- headings by numbering

_KANA_SEQ = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン"
_NUM = "0-9０-９"
_KANJI_NUM = "一二三四五六七八九十百〇"
# (pattern at line start, rank): the usual hierarchy of ministry documents, 第1 > Ⅰ > 1． > 1-1 > (1) > ① > ⅰ） > ア > (ア) > (a)
NUMBERING: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(rf"^第[{_NUM}{_KANJI_NUM}]+(?:[章節部編款]|(?=[\s　:：．.、]|$))"), 1.0),
    (re.compile(r"^[ⅠⅡⅢⅣⅤⅥⅦⅧⅨⅩⅪⅫ](?:[．.、]|(?=[\s　]|$))"), 1.5),
    (re.compile(rf"^[{_NUM}]{{1,2}}[．.\-－][{_NUM}]{{1,2}}[．.]?(?=[\s　]|$)"), 2.5),
    # 「1 目的」 with a space counts too, but not 「6 月21日」: PDF text layers put spaces after digits
    (re.compile(rf"^[{_NUM}]{{1,2}}(?:[．.](?![{_NUM}])|(?=[\s　]+(?![{_NUM}年月日時分秒歳人件円%％])))"), 2.0),
    (re.compile(rf"^[（(][{_NUM}]{{1,2}}[）)]"), 3.0),
    (re.compile(r"^[①-⑳㉑-㉟]"), 4.0),
    (re.compile(r"^(?:[ⅰⅱⅲⅳⅴⅵⅶⅷⅸⅹ]|[（(][ⅰⅱⅲⅳⅴⅵⅶⅷⅸⅹ])[）)．.]"), 4.5),
    (re.compile(rf"^[{_KANA_SEQ}](?:[．.、]|(?=[\s　]))"), 5.0),
    (re.compile(rf"^[（(][{_KANA_SEQ}][）)]"), 6.0),
    (re.compile(r"^[（(][a-zａ-ｚ][）)]"), 7.0),
)


def _numbering(line: str) -> tuple[float, re.Match[str]] | None:
    text = line.lstrip(" 　\t")
    for pattern, rank in NUMBERING:
        m = pattern.match(text)
        if m:
            return rank, m
    return None


# bullets that begin an item paragraph (never a heading): 「○」 is how many ministry documents mark paragraphs
_BULLET = re.compile(r"^[-‐・•○◯●■□◆◇※]")


def starts_item(line: str) -> bool:
    """Whether a line begins a numbered or bulleted item, which starts a paragraph of its own."""
    return numbering_rank(line) is not None or bool(_BULLET.match(line.lstrip(" 　\t")))


def numbering_rank(line: str) -> float | None:
    """The rank of the numbering a line starts with (「第1」「1．」「（1）」「①」「ア」 …), or None."""
    found = _numbering(line)
    return found[0] if found else None


def heading_rank(line: str) -> float | None:
    """The rank if a line reads as a numbered heading: numbered, short, and not a sentence (no final 「。」).

    The numbering is read before whitespace normalisation: 「ア　費用負担」 is a heading, 「アクセス」 is not.
    """
    text = normalise_space(line)
    if not text or len(text) > HEADING_MAX_CHARS or text.endswith("。"):
        return None
    return numbering_rank(line)


def heading_text(line: str) -> str:
    """A heading as shown in the path: whitespace-normalised like a paragraph (「ア　費用負担」 → 「ア費用負担」), no 「#」."""
    return normalise_space(line.replace("#", ""))


def _looks_like_title(text: str) -> bool:
    text = normalise_space(text)
    return (
        bool(text)
        and len(text) <= TITLE_MAX_CHARS
        and not text.endswith("。")
        and numbering_rank(text) is None
        and not is_page_number(text)
        and not is_front_matter(text)
    )


# --------------------------------------------------------------------------- text → blocks (markdown and plain text)

_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_LIST = re.compile(r"^\s{0,3}(?:[-*+・]|[0-9]{1,3}[.)])\s+")
_MD_BULLET = re.compile(r"^[-*+]\s+")  # Markdown syntax, not text: dropped (a Word list shows no such character either)
_MD_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_MD_COMMENT = re.compile(r"<!--.*?-->", re.S)
_MD_EMPHASIS = re.compile(r"(\*\*|__)(.+?)\1")


TABLE_CELL_SEPARATOR = "｜"  # a table row becomes one passage, its cells joined by a full-width bar


def _table_row(line: str) -> str:
    cells = [normalise_space(c) for c in line.strip().strip("|").split("|")]
    return TABLE_CELL_SEPARATOR.join(c for c in cells if c)


def _md_inline(text: str) -> str:
    return _MD_EMPHASIS.sub(r"\2", text)


def markdown_blocks(text: str) -> list[Block]:
    """Markdown: ``#`` headings (rank = number of ``#``), blank-line paragraphs, one paragraph per list item / table row."""
    text = _MD_COMMENT.sub("", text)
    lines = text.splitlines()
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Block(_md_inline(join_lines(para))))
            para.clear()

    in_fence = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            para.append(line)
            continue
        m = _MD_HEADING.match(line)
        if m:
            flush()
            blocks.append(Block(heading_text(_md_inline(m.group(2))), float(len(m.group(1)))))
            continue
        if not stripped:
            flush()
            continue
        if stripped.startswith("|"):
            flush()
            if _MD_TABLE_SEP.match(stripped):
                continue
            if i + 1 < len(lines) and _MD_TABLE_SEP.match(lines[i + 1].strip()):
                continue  # the header row of a table: column names, not content
            row = _table_row(stripped)
            if row:
                blocks.append(Block(_md_inline(row)))
            continue
        if is_page_number(stripped):
            flush()
            continue
        if stripped.startswith(">"):
            stripped = stripped.lstrip("> ")
        if _MD_LIST.match(stripped) or starts_item(stripped):
            flush()  # a list item or a numbered item starts its own paragraph
            stripped = _MD_BULLET.sub("", stripped)
        para.append(stripped)
    flush()
    return blocks


def line_groups(lines: Iterable[str]) -> list[list[str]]:
    """Plain lines → groups separated by blank lines; pure page-number lines are dropped."""
    groups: list[list[str]] = [[]]
    for line in lines:
        if not line.strip():
            if groups[-1]:
                groups.append([])
        elif not is_page_number(line):
            groups[-1].append(line)
    return [g for g in groups if g]


def plain_blocks(
    groups: Sequence[Sequence[str]], *, group_ranks: Sequence[float | None] | None = None, indent_starts_paragraph: bool = False
) -> list[Block]:
    """Groups of plain lines (blank-line separated in a .txt; geometric paragraphs of a PDF) → blocks.

    ``group_ranks`` marks groups already known to be headings (a PDF's larger font). Otherwise a line
    that reads as a numbered heading (``heading_rank``) is a heading, unless it runs to the full line
    width and the next line continues it (a wrapped item); a numbered item (「①…。」) starts a paragraph;
    the other lines of a group are joined, except that with ``indent_starts_paragraph`` (a .txt) a line
    indented with 「　」 after a sentence end starts a new paragraph, the Japanese convention. Date / 資料番号
    lines above the title are dropped. Without a marked first group, the title is the first line when it
    stands alone or clearly shorter than the next.
    """
    ranks = list(group_ranks) if group_ranks is not None else [None] * len(groups)
    items = [(list(g), r) for g, r in zip(groups, ranks) if any(line.strip() for line in g)]
    while items and all(is_front_matter(line) for line in items[0][0]):
        items.pop(0)
    while items and len(items[0][0]) > 1 and is_front_matter(items[0][0][0]):
        items[0][0].pop(0)
    offset = 10.0 if any(r is not None for _, r in items) else 0.0  # numbered lines sit below font-size headings

    blocks: list[Block] = []
    if items and items[0][1] is None:
        first = items[0][0]
        if _looks_like_title(first[0]) and (
            len(first) == 1 or heading_rank(first[1]) is not None or display_width(first[0].strip()) < 0.6 * display_width(first[1].strip())
        ):
            blocks.append(Block(heading_text(first[0]), 0.0))
            first.pop(0)
            if not first:
                items.pop(0)

    widths = sorted(display_width(normalise_space(line)) for g, _ in items for line in g)
    wrap = widths[int(0.9 * (len(widths) - 1))] if widths else 0  # the width of a full (wrapped) line

    for group, group_rank in items:
        if group_rank is not None:
            blocks.append(Block(join_lines(group), group_rank))
            continue
        para: list[str] = []
        for k, line in enumerate(group):
            wrapped = k + 1 < len(group) and not starts_item(group[k + 1]) and display_width(normalise_space(line)) >= 0.8 * wrap
            rank = heading_rank(line)
            if rank is not None and not wrapped:
                if para:
                    blocks.append(Block(join_lines(para)))
                    para = []
                blocks.append(Block(heading_text(line), rank + offset))
                continue
            ends_sentence = bool(para) and normalise_space(para[-1])[-1:] in "。」）)：:"
            if para and starts_item(line) and (ends_sentence or display_width(normalise_space(para[-1])) < 0.8 * wrap):
                blocks.append(Block(join_lines(para)))  # a numbered item starts a paragraph, unless the line before wraps into it
                para = []
            elif para and indent_starts_paragraph and ends_sentence and line[:1] in "　 \t":
                blocks.append(Block(join_lines(para)))
                para = []
            para.append(line)
        if para:
            blocks.append(Block(join_lines(para)))
    return blocks


def blocks_from_text(text: str, file: str) -> list[Block]:
    """A document's decoded text → blocks, by its file type (.md: Markdown; anything else: plain text)."""
    if Path(file).suffix.lower() in (".md", ".markdown"):
        return markdown_blocks(text)
    return plain_blocks(line_groups(text.splitlines()), indent_starts_paragraph=True)


# --------------------------------------------------------------------------- blocks → passages


def split_long(text: str, limit: int = MAX_PASSAGE_CHARS) -> list[str]:
    """Split a paragraph longer than ``limit`` at sentence ends (「。」, with a closing bracket after it) into chunks ≤ limit."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for s in re.findall(r"[^。]*。[」』）)]*|[^。]+$", text):
        s = s.strip()
        while len(s) > limit:  # one sentence longer than the limit: cut after the last 「、」 in reach, else hard
            cut = s.rfind("、", limit // 2, limit)
            cut = cut + 1 if cut > 0 else limit
            pieces.append(s[:cut])
            s = s[cut:].strip()
        if s:
            pieces.append(s)
    chunks: list[str] = []
    for piece in pieces:
        joined = normalise_space(chunks[-1] + " " + piece) if chunks else ""
        if chunks and len(joined) <= limit:
            chunks[-1] = joined
        else:
            chunks.append(piece)
    return chunks


def passages_from_blocks(blocks: Sequence[Block], file: str) -> list[Passage]:
    """Give every paragraph its heading path and a stable id; split long ones, drop empty ones and page numbers.

    The document title is the first heading: the first block when it is a heading that no later heading
    outranks, otherwise the file name without its extension. A repeated heading path keeps counting, so
    ids stay unique.
    """
    blocks = [b for b in blocks if normalise_space(b.text)]
    if blocks and blocks[0].is_heading and all(b.rank > blocks[0].rank for b in blocks[1:] if b.is_heading):
        title, blocks = heading_text(blocks[0].text), blocks[1:]
    else:
        title = Path(file).stem
    stack: list[tuple[float, str]] = [(float("-inf"), title)]

    counts: dict[tuple[str, ...], int] = {}
    passages: list[Passage] = []
    for block in blocks:
        if block.is_heading:
            while len(stack) > 1 and stack[-1][0] >= block.rank:
                stack.pop()
            stack.append((block.rank, heading_text(block.text)))
            continue
        text = normalise_space(block.text)
        if is_page_number(text):
            continue
        path = tuple(h for _, h in stack)
        for chunk in split_long(text):
            n = counts.get(path, 0) + 1
            counts[path] = n
            passages.append(Passage(id=f"{file}#{' > '.join(path)}#{n}", file=file, headings=path, n=n, text=chunk))
    return passages


def split_passages(text: str, file: str) -> list[Passage]:
    """Markdown or plain text of one document → its passages (``file`` names it in the ids and decides the syntax)."""
    return passages_from_blocks(blocks_from_text(text, file), file)


# --------------------------------------------------------------------------- readers (thin IO)


def decode_text(data: bytes, file: str) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, then CP932 (Shift_JIS)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        raise DocumentError(f"{file}: 文字コードを判別できません。UTF-8 か Shift_JIS で保存し直してください。") from None


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCX_HEADING = re.compile(r"^(?:heading|見出し)\s*([1-9])$", re.I)
_DOCX_TITLE = re.compile(r"^(?:title|表題|タイトル)$", re.I)


def _docx_style_rank(paragraph: Any) -> float | None:
    """Title → 0, 「見出し n」/Heading n → n, or an outline level set on the paragraph itself → level + 1."""
    try:
        name = (paragraph.style.name or "").strip() if paragraph.style is not None else ""
    except (KeyError, ValueError):  # a style id the styles part does not define
        name = ""
    if _DOCX_TITLE.match(name):
        return 0.0
    m = _DOCX_HEADING.match(name)
    if m:
        return float(m.group(1))
    ppr = paragraph._p.pPr
    lvl = ppr.find(f"{_W}outlineLvl") if ppr is not None else None
    val = lvl.get(f"{_W}val") if lvl is not None else None
    if val is not None and val.isdigit() and int(val) < 9:
        return float(int(val) + 1)
    return None


_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_DOCX_SKIP = {f"{_W}del", f"{_W}moveFrom", f"{_W}pPr", f"{_W}rPr", f"{_W}instrText", f"{_W}delText", _MC_FALLBACK}


def _docx_text(element: Any, boxes: list[Any]) -> str:
    """The visible text of a paragraph: runs, hyperlinks, fields, content controls and tracked insertions
    (python-docx's ``Paragraph.text`` reads direct runs only); tracked deletions are left out. Text boxes
    anchored in the paragraph are collected into ``boxes`` to become paragraphs of their own."""
    out: list[str] = []

    def walk(node: Any) -> None:
        for child in node:
            tag = child.tag
            if not isinstance(tag, str) or tag in _DOCX_SKIP:
                continue
            if tag == f"{_W}t":
                out.append(child.text or "")
            elif tag == f"{_W}tab":
                out.append(" ")
            elif tag in (f"{_W}br", f"{_W}cr"):
                out.append("\n")
            elif tag == f"{_W}txbxContent":
                boxes.extend(child.iter(f"{_W}p"))
            else:
                walk(child)

    walk(element)
    return "".join(out)


def _docx_body_items(body: Any, parent: Any) -> list[tuple[str, float | None]]:
    """(text, style rank) for every paragraph and table row of the body, content controls (w:sdt) opened."""
    from docx.text.paragraph import Paragraph

    items: list[tuple[str, float | None]] = []
    for child in body:
        tag = child.tag
        if tag == f"{_W}p":
            boxes: list[Any] = []
            text = _docx_text(child, boxes)
            if text.strip():
                items.append((text, _docx_style_rank(Paragraph(child, parent))))
            for box_p in boxes:
                box_text = _docx_text(box_p, [])
                if box_text.strip():
                    items.append((box_text, None))
        elif tag == f"{_W}tbl":
            rows = child.findall(f"{_W}tr")
            for r, row in enumerate(rows):
                if r == 0 and len(rows) > 1:
                    continue  # the header row of a table: column names, not content
                cells = []
                for cell in row.findall(f"{_W}tc"):  # a vertically merged cell repeats as an empty w:tc
                    t = join_lines(_docx_text(cp, []) for cp in cell.iter(f"{_W}p"))
                    if t:
                        cells.append(t)
                if cells:
                    items.append((TABLE_CELL_SEPARATOR.join(cells), None))
        elif tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                items.extend(_docx_body_items(content, parent))
    return items


def docx_blocks(path: Path) -> list[Block]:
    """A .docx: one block per paragraph (heading styles 「見出し n」/Heading n, else numbering) and per table row."""
    import docx  # python-docx

    try:
        document = docx.Document(str(path))
    except Exception as e:  # python-docx raises several types for a damaged or non-docx file
        raise DocumentError(
            f"{path.name}: Word 文書（.docx）として読めません（{type(e).__name__}）。Word で開いて .docx で保存し直してください。"
        ) from None
    items = _docx_body_items(document.element.body, document._body)

    while items and items[0][1] is None and is_front_matter(items[0][0]):
        items.pop(0)
    styled = any(rank is not None and rank >= 1 for _, rank in items)
    offset = 10.0 if styled else 0.0  # numbered plain paragraphs sit below every styled heading level
    blocks: list[Block] = []
    for i, (text, rank) in enumerate(items):
        if rank is None and i == 0 and _looks_like_title(text) and not any(r == 0.0 for _, r in items):
            rank = 0.0  # an unstyled first line that reads as a title
        elif rank is None and (r := heading_rank(text)) is not None:
            rank = r + offset
        if rank is not None:
            blocks.append(Block(heading_text(text), rank))
        else:
            blocks.append(Block(join_lines(text.splitlines())))
    return blocks


@dataclass
class _PdfLine:
    text: str
    x0: float
    x1: float
    y: float
    size: float
    page: int


def _pdf_page_lines(page: Any, page_no: int) -> list[_PdfLine]:
    """The lines of one page in content-stream order, each with its left/right edge, baseline and font size."""
    lines: list[_PdfLine] = []

    def visit(text: str, cm: Sequence[float], tm: Sequence[float], font_dict: Any, font_size: float) -> None:
        if not text:
            return
        scale = abs(tm[0] * tm[3] - tm[1] * tm[2]) ** 0.5 * abs(cm[0] * cm[3] - cm[1] * cm[2]) ** 0.5
        size = float(font_size) * (scale or 1.0)
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        for k, part in enumerate(text.split("\n")):  # pypdf sends its own line breaks as "\n" runs at (0, 0)
            if not part.strip():
                if part and lines:
                    lines[-1].text += " "  # keep a space run: it may separate two Latin words
                continue
            line_y = y - k * size  # a "\n" inside one run: the rest is on the next line
            width = display_width(part) * size / 2
            last = lines[-1] if lines else None
            if last is not None and k == 0 and abs(last.y - line_y) <= max(2.0, 0.4 * size):
                last.text += part
                last.x0, last.x1 = min(last.x0, x), max(last.x1, x + width)
                last.size = max(last.size, size)
            else:
                lines.append(_PdfLine(part, x, x + width, line_y, size, page_no))

    page.extract_text(visitor_text=visit)
    return [ln for ln in lines if ln.text.strip()]


def _drop_running_lines(lines: list[_PdfLine], pages: int) -> list[_PdfLine]:
    """Drop page numbers and running headers/footers (the same text at the top or bottom of most pages)."""
    lines = [ln for ln in lines if not is_page_number(ln.text)]
    if pages < 3:
        return lines
    by_page: dict[int, list[_PdfLine]] = {}
    for ln in lines:
        by_page.setdefault(ln.page, []).append(ln)
    counts: dict[str, int] = {}
    for page_lines in by_page.values():
        for text in {normalise_space(ln.text) for ln in page_lines[:2] + page_lines[-2:]}:
            counts[text] = counts.get(text, 0) + 1
    running = {t for t, c in counts.items() if c >= max(3, pages // 2 + 1)}
    return [ln for ln in lines if normalise_space(ln.text) not in running]


def _median(values: Sequence[float]) -> float:
    vals = sorted(values)
    return vals[len(vals) // 2] if vals else 0.0


def pdf_line_groups(lines: Sequence[_PdfLine]) -> tuple[list[tuple[list[str], float]], float]:
    """Group a PDF's lines into paragraphs by geometry: (lines, largest font size) per group, and the body font size.

    A PDF has no paragraph marks: a paragraph ends where the next line is further down than the line
    pitch, starts indented after a sentence end, changes font size, or where a line ending a sentence
    stops well short of the right margin; a numbered line starts one, and ends one when it stops short
    (a heading). Page breaks alone do not end a paragraph.
    """
    if not lines:
        return [], 0.0
    sizes: dict[float, int] = {}
    for ln in lines:
        sizes[round(ln.size, 1)] = sizes.get(round(ln.size, 1), 0) + len(ln.text)
    body = max(sizes, key=lambda k: sizes[k])
    body_lines = [ln for ln in lines if abs(ln.size - body) < 0.5]
    left = _median([ln.x0 for ln in body_lines])
    right = sorted(ln.x1 for ln in body_lines)[int(0.9 * (len(body_lines) - 1))]
    pitches = [a.y - b.y for a, b in zip(body_lines, body_lines[1:]) if a.page == b.page and 0 < a.y - b.y < 3 * body]
    pitch_ratio = (_median(pitches) / body) if pitches else 1.5

    groups: list[tuple[list[str], float]] = []
    prev: _PdfLine | None = None
    for ln in lines:
        new = prev is None
        if prev is not None:
            size = max(ln.size, prev.size)
            ends_sentence = normalise_space(prev.text)[-1:] in "。」）)：:"
            if abs(ln.size - prev.size) > 0.5:
                new = True
            elif ln.page == prev.page and (prev.y - ln.y > 1.4 * pitch_ratio * size or ln.y > prev.y + 0.5 * size):
                new = True  # a vertical gap, or a jump back up (a new column or text box)
            elif ends_sentence and (ln.x0 > left + 0.5 * ln.size or prev.x1 < right - 1.5 * prev.size):
                new = True
            elif starts_item(ln.text) and (ends_sentence or prev.x1 < right - 4 * prev.size):
                new = True  # a numbered item, unless the line before wraps into it (「（⑤～」 / 「⑩）」)
            elif numbering_rank(prev.text) is not None and abs(prev.size - body) < 0.5 and prev.x1 < right - 1.5 * prev.size:
                new = True  # a numbered line that stops short: a heading
        if new:
            groups.append(([], 0.0))
        groups[-1][0].append(ln.text)
        groups[-1] = (groups[-1][0], max(groups[-1][1], ln.size))
        prev = ln
    return groups, body


def pdf_heading_ranks(groups: Sequence[tuple[Sequence[str], float]], body: float) -> list[float | None]:
    """Headings by font size: a short group (≤ 6 lines, ≤ 150 characters, no final 「。」) set larger than the body text.

    Larger is outer: the distinct heading sizes, largest first, give ranks 1, 2, 3 …
    """
    def is_heading(lines: Sequence[str], size: float) -> bool:
        text = join_lines(lines)  # a title set large wraps over several lines
        return size > body * 1.1 and len(lines) <= 6 and len(text) <= 3 * HEADING_MAX_CHARS and not text.endswith("。")

    sizes = sorted({round(size * 2) / 2 for lines, size in groups if is_heading(lines, size)}, reverse=True)
    return [float(sizes.index(round(size * 2) / 2) + 1) if is_heading(lines, size) else None for lines, size in groups]


def pdf_blocks(path: Path) -> tuple[list[Block], list[int]]:
    """A PDF's text layer → blocks, and the pages that had no text. Wrapped lines are joined, across pages too."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
                _ = len(reader.pages)
            except Exception:
                raise DocumentError(f"{path.name}: パスワード付きの PDF のため読めません。パスワードを外した PDF を置いてください。") from None
        page_lines = [_pdf_page_lines(page, i + 1) for i, page in enumerate(reader.pages)]
    except DocumentError:
        raise
    except Exception as e:  # pypdf raises many types for a damaged file
        raise DocumentError(f"{path.name}: PDF として読めません（{type(e).__name__}）。ファイルが壊れていないか確かめてください。") from None
    empty = [i + 1 for i, lines in enumerate(page_lines) if not lines]
    lines = _drop_running_lines([ln for page in page_lines for ln in page], len(page_lines))
    groups, body = pdf_line_groups(lines)
    return plain_blocks([g for g, _ in groups], group_ranks=pdf_heading_ranks(groups, body)), empty


def _scanned_message(file: str) -> str:
    return f"{file}: この PDF にはテキストがありません（スキャン画像の PDF の可能性）。テキスト付きの PDF か .docx を置いてください。"


def read_document(path: Path) -> list[Block]:
    """One reference document (.md .txt .docx .pdf) → its blocks (headings with rank, paragraphs).

    Raises ``DocumentError`` (Japanese, naming the file) for an unsupported type, an undecodable text,
    a damaged file, or a PDF without a text layer.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.name.startswith("~$") or suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(_unsupported_message(path.name))
    if suffix in (".md", ".txt"):
        return blocks_from_text(decode_text(path.read_bytes(), path.name), path.name)
    if suffix == ".docx":
        return docx_blocks(path)
    blocks, _ = pdf_blocks(path)
    if not blocks:
        raise DocumentError(_scanned_message(path.name))
    return blocks


def _unsupported_message(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if Path(name).name.startswith("~$"):
        return f"{name}: Word などが開いている間に作る一時ファイルのため使いませんでした。"
    hint = {
        ".doc": "古い Word 形式（.doc）は読めません。Word で .docx として保存し直してください。",
        ".rtf": "RTF は読めません。Word で .docx として保存し直してください。",
        ".odt": ".odt は読めません。.docx として保存し直してください。",
        ".pptx": "PowerPoint は読めません。PDF として保存してください。",
        ".xlsx": "Excel は参考文書として読めません。PDF として保存するか、内容を .docx に写してください。",
    }.get(suffix, ".md .txt .docx .pdf のいずれかで置いてください。")
    return f"{name}: 参考文書として読めない形式です（{suffix or '拡張子なし'}）。{hint}"


def _read_passages(path: Path, rel: str) -> tuple[list[Passage], list[str]]:
    """One document → (passages, problems); a problem names the file by its path relative to references/."""
    problems: list[str] = []
    try:
        if path.suffix.lower() == ".pdf":
            blocks, empty = pdf_blocks(path)
            if not blocks:
                return [], [_scanned_message(rel)]
            if empty:
                problems.append(f"{rel}: {_page_list(empty)}ページにはテキストがありません（スキャン画像の可能性）。そのページの内容は照合に使われません。")
        else:
            blocks = read_document(path)
    except DocumentError as e:
        return [], [str(e).replace(path.name, rel, 1)]
    passages = passages_from_blocks(blocks, rel)
    if not passages:
        problems.append(f"{rel}: 本文が見つかりません（見出しだけか空の文書です）。")
    return passages, problems


def _page_list(pages: Sequence[int]) -> str:
    shown = "・".join(str(p) for p in pages[:10])
    return shown + (f" ほか {len(pages) - 10} " if len(pages) > 10 else " ")


def load_references(raw_dir: Path) -> ReferenceSet:
    """The window's reference passages: ``RAW_DIR/references/`` when it exists, else the bundled base set.

    An existing but empty folder is not replaced by the base set: it comes back as source "window" with
    no passages and a problem, so the caller can stop or warn.
    """
    raw_dir = Path(raw_dir)
    folder = raw_dir / REFERENCES_DIR
    if not folder.is_dir():
        return load_bundled_references()
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        return ReferenceSet(
            passages=(),
            files=(),
            source="window",
            problems=(
                f"{raw_dir.name}/{REFERENCES_DIR}: 参考文書がありません。意見照会の対象文書（.md .txt .docx .pdf）を置くか、"
                "フォルダごと削除して同梱の基本方針・共通化候補一覧を使ってください。",
            ),
        )
    return _load_files([(p, p.relative_to(folder).as_posix()) for p in files], source="window")


def _load_files(files: Sequence[tuple[Path, str]], source: str) -> ReferenceSet:
    passages: list[Passage] = []
    used: list[str] = []
    problems: list[str] = []
    for path, rel in files:
        if path.name.startswith("~$") or path.suffix.lower() not in SUPPORTED_SUFFIXES:
            problems.append(_unsupported_message(rel))
            continue
        got, probs = _read_passages(path, rel)
        passages.extend(got)
        problems.extend(probs)
        if got:
            used.append(rel)
    return ReferenceSet(passages=tuple(passages), files=tuple(used), source=source, problems=tuple(problems))


def bundled_references_dir() -> Path:
    """The base set shipped inside the package (package data: found from an editable install and from a wheel)."""
    return Path(str(resources.files("pipeline").joinpath(BASE_REFERENCES)))


def load_bundled_references() -> ReferenceSet:
    """The bundled base set: the 基本方針 and the 共通化候補一覧 (R6), for windows without references/."""
    folder = bundled_references_dir()
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES) if folder.is_dir() else []
    if not files:
        return ReferenceSet(
            passages=(), files=(), source="bundled",
            problems=("同梱の参考文書（基本方針・共通化候補一覧）が見つかりません。インストールをやり直してください。",),
        )
    return _load_files([(p, p.name) for p in files], source="bundled")
