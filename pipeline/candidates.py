"""The window's candidate list (対象候補): from window.yaml, else the window's candidate-list document,
else the bundled 令和6年度 list (configs/candidates.yaml).

The council selects a new group of candidate systems every year, so nothing downstream may assume last
year's fourteen: ``resolve_candidates`` returns a ``CandidateList`` and ``Domain.with_candidates`` gives
the domain every later stage of the window uses. Each candidate keeps its description (the paragraphs
under its heading in the candidate-list document) for the zero-shot mapping (mapping.py).

A list that cannot be read (duplicate ids, a heading without a name) raises ``CandidateListError`` with
a Japanese message naming the file and the line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.config import Candidate, Domain
from pipeline.references import Passage, ReferenceSet, WindowMeta, heading_text

GENERAL_NAME = "全般（共通化の進め方・費用負担・体制など候補を横断する意見）"
GENERAL_ALIASES = ("全般", "全体", "共通", "その他", "総論")
GENERAL_DESCRIPTION = "候補を横断する意見。共通化の進め方、スケジュール、費用負担、推進体制、人材、国と地方の役割分担など、特定の候補に限らない事項。"
SURVEY_MARK = "【調査・検討】"
_CIRCLED = {chr(0x2460 + i): i + 1 for i in range(20)}
# 「① 名称＜所管＞」「K03　名称＜所管＞」「R8-03 名称（所管）」「【調査・検討】名称＜所管＞」
_MARK = re.compile(r"^(?:(?P<circled>[①-⑳])|[（(](?P<paren>\d{1,2})[）)]|(?P<code>[A-Z][A-Z0-9]{0,3}(?:-\d{1,3}|\d{1,3})))(?![A-Za-z0-9])[\s　]*(?P<rest>.*)$")
_MINISTRY_ANGLE = re.compile(r"^(?P<name>.*?)[＜<](?P<ministry>[^＜＞<>]*)[＞>]\s*$")
_MINISTRY_PAREN = re.compile(r"^(?P<name>.*?)[（(](?P<ministry>[^（）()]*(?:省|庁|府|内閣|本部|ほか|委員会)[^（）()]*)[）)]\s*$")
_GENERIC_TAIL = re.compile(r"(?:の(?:利用)?拡大等?|システム等?|プラットフォーム|の状況調査|状況調査|等)$")
_OF = re.compile(r"(?:に基づく|に係る|に関する|における|に対する|が保有する)")
MIN_HEADINGS = 2  # a document is a candidate list when at least this many headings name candidates


class CandidateListError(ValueError):
    """The window's candidate list cannot be used; the message (Japanese) names the file and line."""


@dataclass(frozen=True)
class CandidateList:
    candidates: tuple[Candidate, ...]  # in list order; the cross-cutting (全般) entry last unless the list placed it
    source: str  # "window.yaml" | "references/<file>" | "bundled"
    general_id: str

    def manifest(self) -> dict:
        return {
            "source": self.source,
            "general_id": self.general_id,
            "candidates": [{"id": c.id, "number": c.number, "name": c.name, "ministry": c.ministry, "aliases": list(c.aliases)} for c in self.candidates],
        }


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


# --------------------------------------------------------------------------- names


def derived_aliases(name: str) -> tuple[str, ...]:
    """Short names officials use for a system, derived from its name: 「【調査・検討】」 and （…） dropped,
    the generic tail (システム, の利用拡大, 等) removed, the part after 「に基づく」「に係る」…, and the first
    of 「・」-joined parts. Only names of 3 characters or more."""
    core = re.sub(r"【[^】]*】|[（(][^）)]*[）)]", "", name).strip()
    out: list[str] = []

    def add(s: str) -> None:
        s = s.strip("・ 　")
        if len(s) >= 3 and s != name and s not in out:
            out.append(s)

    for inner in re.findall(r"[（(]([^）)]*)[）)]", name):  # 「（仮ナンバー）」: what officials call it
        if not re.search(r"含む|等$|。", inner):
            add(inner)
    stem = core
    for _ in range(2):
        stem = _GENERIC_TAIL.sub("", stem).strip()
    add(core)
    add(stem)
    parts = _OF.split(stem)
    if len(parts) > 1:
        add(parts[-1])
        add(_GENERIC_TAIL.sub("", parts[-1]))
        add(parts[0])
    for piece in re.split(r"[・、]", parts[-1]):
        add(re.sub(r"(?:の|に関する)?(?:申請|管理|交付|受付)+$", "", piece))
    return tuple(out)


def is_general_name(name: str) -> bool:
    return nfkc(name).startswith("全般")


def general_candidate(taken: Sequence[str]) -> Candidate:
    cid = "C00" if "C00" not in taken else "全般"
    return Candidate(id=cid, number=None, name=GENERAL_NAME, aliases=GENERAL_ALIASES, ministry="", description=GENERAL_DESCRIPTION, general=True)


def finish(cands: Sequence[Candidate], source: str) -> CandidateList:
    """Mark or add the cross-cutting entry and derive aliases and numbers where the list gave none."""
    out = []
    for pos, c in enumerate(cands, start=1):
        general = c.general or is_general_name(c.name)
        aliases = c.aliases or (GENERAL_ALIASES if general else derived_aliases(c.name))
        out.append(replace(c, general=general, aliases=aliases, number=c.number if c.number is not None or general else pos,
                           description=c.description or (GENERAL_DESCRIPTION if general else "")))  # fmt: skip
    general = [c for c in out if c.general]
    if not general:
        out.append(general_candidate([c.id for c in out]))
        general = out[-1:]
    return CandidateList(tuple(out), source, general[0].id)


# --------------------------------------------------------------------------- window.yaml


def from_window_yaml(entries: Sequence[dict], where: str) -> CandidateList:
    """``window.yaml`` ``candidates:`` (already checked for ids, names and duplicates by references.py)."""
    cands = []
    for e in entries:
        number = e.get("number")
        cands.append(
            Candidate(
                id=str(e["id"]).strip(), number=int(number) if number not in (None, "") else None, name=str(e["name"]).strip(),
                aliases=tuple(str(a) for a in (e.get("aliases") or ())), ministry=str(e.get("ministry") or "").strip(),
                description=str(e.get("description") or "").strip(),
            )
        )  # fmt: skip
    return finish(cands, where)


# --------------------------------------------------------------------------- the candidate-list document


@dataclass(frozen=True)
class Heading:
    text: str
    line: int | None  # 1-based line in the file (md/txt); None for docx/pdf
    level: int = 0  # markdown: the number of #; otherwise the depth in the heading path
    raw: str = ""  # the heading as written (its spaces kept: 「K01　20業務…」 stays readable), "" when only the normalised text is known


@dataclass(frozen=True)
class ParsedHeading:
    mark: str  # 「①」「K03」 or 【調査・検討】
    id: str
    number: int | None
    name: str
    ministry: str
    heading: Heading


def parse_heading(h: Heading) -> ParsedHeading | None:
    """A candidate heading → its parts; None when the heading does not name a candidate. A numbered
    heading with no name raises (the list would silently lose a candidate)."""
    text = (h.raw or h.text).strip()
    survey = text.startswith(SURVEY_MARK)
    m = _MARK.match(text)
    if not m and not survey:
        return None
    rest = text if survey else m.group("rest")
    mm = _MINISTRY_ANGLE.match(rest) or _MINISTRY_PAREN.match(rest)
    name, ministry = (mm.group("name").strip(), mm.group("ministry").strip()) if mm else (rest.strip(), "")
    if survey and m is None and not mm:
        return None  # a 【調査・検討】 line without ＜所管＞ is a sub-heading, not a candidate
    if not name or name == SURVEY_MARK:
        raise CandidateListError(f"見出し「{text}」に候補の名称がありません。")
    if m is None:
        return ParsedHeading(SURVEY_MARK, "", None, name, ministry, h)
    if m.group("circled") or m.group("paren"):
        n = _CIRCLED[m.group("circled")] if m.group("circled") else int(m.group("paren"))
        return ParsedHeading(m.group("circled") or f"（{n}）", f"C{n:02d}", n, name, ministry, h)
    code = m.group("code")
    num = re.search(r"(\d+)$", code)
    return ParsedHeading(code, code, int(num.group(1)) if num else None, name, ministry, h)


def _file_headings(path: Path | None, file: str, passages: Sequence[Passage]) -> list[Heading]:
    if path is not None and path.suffix.lower() in (".md", ".txt") and path.is_file():
        from pipeline.references import _MD_HEADING, decode_text, heading_rank

        lines = decode_text(path.read_bytes(), file).splitlines()
        out = []
        for i, line in enumerate(lines, start=1):
            md = _MD_HEADING.match(line)
            if md:
                out.append(Heading(heading_text(md.group(2)), i, len(md.group(1)), md.group(2).strip()))
            elif path.suffix.lower() == ".txt" and heading_rank(line) is not None:
                out.append(Heading(heading_text(line), i, int(heading_rank(line) or 0), line.strip()))
        return out
    seen: dict[str, int] = {}
    for p in passages:
        for depth, h in enumerate(p.headings):
            seen.setdefault(h, depth)
    return [Heading(h, None, depth) for h, depth in seen.items()]


def _where(file: str, h: Heading) -> str:
    return f"{file} の {h.line} 行目" if h.line else f"{file} の見出し「{h.text}」"


def _family(p: ParsedHeading) -> str:
    return "circled" if p.mark in _CIRCLED else "paren" if p.mark.startswith("（") else "survey" if p.mark == SURVEY_MARK else "code"


def _list_level(parsed: Sequence[ParsedHeading]) -> list[ParsedHeading]:
    """The candidate headings of a document: those of one heading level and one numbering style (①, （1）
    or codes such as K03) with the most candidates naming a ministry — sub-headings 「①電子申請・届出」
    under a candidate, or 「（1）基本的な考え方」 in another part, are not candidates — plus the 【調査・検討】
    items of that level; [] when no group has MIN_HEADINGS numbered headings naming a ministry."""
    groups: dict[tuple[int, str], list[ParsedHeading]] = {}
    for p in parsed:
        if _family(p) != "survey":
            groups.setdefault((p.heading.level, _family(p)), []).append(p)
    scored = [(sum(1 for p in ps if p.ministry), len(ps), key) for key, ps in groups.items()]
    best = max(scored, default=(0, 0, (0, "")))
    if best[0] < MIN_HEADINGS:
        return []
    level, _ = best[2]
    chosen = {id(p) for p in groups[best[2]]}
    return [p for p in parsed if id(p) in chosen or (_family(p) == "survey" and p.heading.level == level)]


def parse_document(file: str, headings: Sequence[Heading], passages: Sequence[Passage]) -> list[Candidate]:
    """The candidates of one document: one per candidate heading, described by the passages under it."""
    parsed: list[ParsedHeading] = []
    for h in headings:
        try:
            p = parse_heading(h)
        except CandidateListError as e:
            raise CandidateListError(f"{_where(file, h)}: {e}") from None
        if p is not None:
            parsed.append(p)
    parsed = _list_level(parsed)
    if not parsed:
        return []
    circled = any(p.mark in _CIRCLED or p.mark.startswith("（") for p in parsed)
    top = max((p.number or 0 for p in parsed), default=0)
    seen: dict[str, ParsedHeading] = {}
    cands = []
    for p in parsed:
        if p.mark == SURVEY_MARK:  # an un-numbered 【調査・検討】 item follows the numbered ones (C13 after ⑫)
            if not circled:
                raise CandidateListError(f"{_where(file, p.heading)}: 見出し「{p.heading.text}」に候補の ID がありません（例: K09　{p.name}）。")
            top += 1
            p = replace(p, id=f"C{top:02d}", number=top)
        if p.id in seen:
            raise CandidateListError(f"{_where(file, p.heading)}: 候補の ID「{p.id}」が重複しています（{_where(file, seen[p.id].heading)} と同じ）。")
        seen[p.id] = p
        desc = " ".join(x.text for x in passages if p.heading.text in x.headings)
        cands.append(Candidate(id=p.id, number=p.number, name=p.name, aliases=(), ministry=p.ministry, description=desc))
    return cands


def from_references(refs: ReferenceSet, folder: Path | None) -> CandidateList | None:
    """The candidate list found in the window's documents: the file with the most candidate headings
    (a file with 候補一覧 in its name first); None when no document lists candidates."""
    by_file: dict[str, list[Passage]] = {}
    for p in refs.passages:
        by_file.setdefault(p.file, []).append(p)
    found: list[tuple[int, int, str, list[Candidate]]] = []
    for file, ps in by_file.items():
        cands = parse_document(file, _file_headings(folder / file if folder else None, file, ps), ps)
        if cands:
            found.append((int("候補一覧" in file or "候補" in file), len(cands), file, cands))
    if not found:
        return None
    _, _, file, cands = max(found, key=lambda t: (t[0], t[1]))
    return finish(cands, f"references/{file}")


def from_manifest(data: dict) -> CandidateList:
    """A list as ``CandidateList.manifest`` wrote it (run_manifest.json, the queue, harvested files)."""
    general = data.get("general_id", "")
    cands = tuple(
        Candidate(id=c["id"], number=c.get("number"), name=c["name"], aliases=tuple(c.get("aliases") or ()), ministry=c.get("ministry") or "", general=c["id"] == general)
        for c in data["candidates"]
    )
    return CandidateList(cands, data.get("source", ""), general)


# --------------------------------------------------------------------------- resolution


def with_known(cl: CandidateList, bundled: Sequence[Candidate]) -> CandidateList:
    """Aliases of the bundled list for candidates of a document list that are the same system (same id
    and one name contains the other), so 「入札」「預貯金」 keep working in 令和6年度 windows."""
    known = {c.id: c for c in bundled}
    out = []
    for c in cl.candidates:
        k = known.get(c.id)
        if k is not None and not c.general and (nfkc(k.name) in nfkc(c.name) or nfkc(c.name) in nfkc(k.name)):
            c = replace(c, aliases=tuple(dict.fromkeys((*k.aliases, *c.aliases))), ministry=c.ministry or k.ministry)
        out.append(c)
    return replace(cl, candidates=tuple(out))


def bundled_list(domain: Domain, refs: ReferenceSet | None = None) -> CandidateList:
    """The 令和6年度 list of configs/candidates.yaml, described by the bundled 共通化候補一覧."""
    from pipeline.references import load_bundled_references

    refs = refs or load_bundled_references()
    doc = from_references(refs, None)
    desc = {c.number: c.description for c in doc.candidates} if doc else {}
    cands = [replace(c, description=c.description or desc.get(c.number, "") if c.number is not None else c.description) for c in domain.candidates]
    return finish(cands, "bundled")


def resolve_candidates(meta: WindowMeta, refs: ReferenceSet, domain: Domain, folder: Path | None = None) -> CandidateList:
    """window.yaml ``candidates:``, else the candidate-list document in references/, else the bundled list.
    ``folder``: where the reference files are (for line numbers in messages)."""
    doc = None
    if refs.source == "window" and refs.passages:
        doc = from_references(refs, folder)
    if meta.candidates:
        return described(from_window_yaml(meta.candidates, "window.yaml"), doc)
    if doc is not None:
        return with_known(doc, domain.candidates)
    return bundled_list(domain)


def described(cl: CandidateList, doc: CandidateList | None) -> CandidateList:
    """Descriptions for a window.yaml list from the window's candidate-list document (same id, else same name)."""
    if doc is None:
        return cl
    by_id = {c.id: c.description for c in doc.candidates if not c.general}
    by_name = {nfkc(c.name): c.description for c in doc.candidates if not c.general}
    out = [c if c.description and c.description != GENERAL_DESCRIPTION or c.general else replace(c, description=by_id.get(c.id) or by_name.get(nfkc(c.name), "")) for c in cl.candidates]
    return replace(cl, candidates=tuple(out))


# --------------------------------------------------------------------------- what people type


def candidate_from_input(value: str, domain: Domain) -> str:
    """The candidate id a person means: the id (「C01」「k03」), the number as the list shows it (「①」「1」
    「（1）」), the name or a short name (「入札参加資格審査」「営業許可」). Raises ValueError (Japanese)
    naming the choices when nothing or several candidates match."""
    v = nfkc(value).strip()
    if not v:
        raise ValueError("対象候補が空です。")
    by_id = {nfkc(c.id).upper(): c.id for c in domain.candidates}
    if v.upper() in by_id:
        return by_id[v.upper()]
    labelled = re.fullmatch(r"(\S+?)(?:\s+|[:：]\s*|(?=[（(]))[（(]?(.+?)[)）]?", v)  # 「C01 名称」「R10-01（名称）」 as lists show them
    if labelled and labelled.group(1).upper() in by_id:
        cid = by_id[labelled.group(1).upper()]
        name = nfkc(next(c.name for c in domain.candidates if c.id == cid))
        rest = labelled.group(2).strip()
        if rest in name or name in rest:
            return cid
        raise ValueError(f"対象候補「{value}」の ID {cid} と名称が合いません（{cid} は「{name}」）。ID だけで指定してください。")
    m = re.fullmatch(r"[（(]?\s*(\d{1,2})\s*[)）]?|([①-⑳])", value.strip())
    if m:
        n = int(m.group(1)) if m.group(1) else _CIRCLED[m.group(2)]
        hits = [c.id for c in domain.candidates if c.number == n and not c.general]
        if len(hits) == 1:
            return hits[0]
    exact = [c.id for c in domain.candidates if v == nfkc(c.name) or v in (nfkc(a) for a in c.aliases)]
    if len(exact) == 1:
        return exact[0]
    part = [c.id for c in domain.candidates if len(v) >= 2 and v in nfkc(c.name)]
    if len(part) == 1:
        return part[0]
    choices = "、".join(f"{c.id}（{c.name[:20]}）" for c in domain.candidates)
    if len(part) > 1:
        raise ValueError(f"対象候補「{value}」に当てはまる候補が複数あります: {'、'.join(part)}。ID で指定してください。")
    raise ValueError(f"対象候補「{value}」はこの照会回の候補一覧にありません。使えるもの: {choices}")
