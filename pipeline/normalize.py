"""Normalise: derive matching text from the original (which is kept untouched for display).

- NFKC folds 全角英数 to 半角, 半角カナ to 全角, and ①/⑴ to plain digits;
- the officer's contact block (a trailing run of phones, e-mails, 内線, 担当：/問合せ先 labels, section
  names and a few short names) is cut out of the matching text and kept in its own column, so that two
  bodies' copies of one text still match and classifiers do not learn from officers' names. A sentence
  that merely mentions 担当者 or 問い合わせ is part of the opinion and is never cut;
- ``mask_officer_details`` masks names in contact blocks, e-mails, phones and extensions for every
  people-facing file. Names come from the block's structure (課/係/室 … then a short name), not from
  GiNZA's NER: on the 144 contact blocks of data/labeled, ja_ginza's Person entities matched 42 of the
  53 names exactly, missed 11 and gave 15 wrong spans (市町, 課, e-mail parts), in 12 s; the rule finds
  all 53 with none wrong, in milliseconds;
- URLs become a placeholder token;
- whitespace and line breaks collapse; ``dedupe_key`` additionally drops punctuation and masks the
  body's own name and self-references (本市, 当町 …), the edits bodies make when re-sending a text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import pandas as pd

# Officers' contacts, as typed or after NFKC: one pattern set for matching text and for exports.
# (\d in a str pattern matches 全角 digits too; hyphens, dots, parentheses, + and @ are listed in both widths)
_HYPHEN = "[-‐ー−－―‒–—]"
_SEP = r"(?:[-‐ー−－―‒–—.．]|\s)"
EMAIL = re.compile(r"[A-Za-z0-9Ａ-Ｚａ-ｚ０-９._%+\-－]+[@＠][A-Za-z0-9Ａ-Ｚａ-ｚ０-９.\-－．]+[.．][A-Za-zＡ-Ｚａ-ｚ]{2,}")
PHONE = re.compile(
    rf"(?<![\d.．])(?:[+＋]\s?81{_SEP}?(?:[(（][0０][)）])?\d{{1,4}}{_SEP}?\d{{1,4}}{_SEP}?\d{{3,4}}"  # +81-98-866-2200
    rf"|(?:[(（][0０]\d{{1,4}}[)）]|[0０]\d{{1,4}})(?:{_SEP})?\d{{1,4}}(?:{_SEP}|[)）])\d{{3,4}}"  # 03-1234-5678, (03)1234-5678, 098.866.2200
    rf"|[0０]\d{{1,4}}[(（]\d{{1,4}}[)）]\d{{3,4}}"  # 03(1234)5678
    rf"|[0０]\d{{9,10}}"  # 0312345678
    rf"|[0０]120{_HYPHEN}?\d{{2,3}}{_HYPHEN}?\d{{3,4}})(?!\d|{_HYPHEN}[\dxX])"  # 0120-123456
)
EXTENSION = re.compile(rf"内線\s*[:：]?\s*\d{{2,6}}(?:{_HYPHEN}\d{{1,6}})?")
URL = re.compile(r"https?://[^\s）)」』、。]+")
SELF_REFERENCE = re.compile(r"(?:本|当|弊|我が)(?:市|町|村|区|県|府|都|道|団体|自治体)")
PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
WS = re.compile(r"\s+")

# ---- what a contact block is made of (matched on NFKC-folded text) ---------------------------------
# An officer's block is a run of items (phone, e-mail, 内線), labels (担当:, 問合せ先, TEL …), sections
# (…課, …係, …室, …担当, 〇〇市) and at most a few short names. A sentence of the opinion always holds
# words that are none of these, so it is never taken for a contact however often it says 担当.
# Corpus rows mask digits (0229-33-2xxx, 内線241x): those count as items too, for detection only.
# Our own placeholders (NFKC-folded: ［電話省略］ → [電話省略]) count as what they replaced, so that
# masking an already masked text finds the same blocks and changes nothing (「TEL ［電話省略］」 must not
# become 「TEL ［［氏名省略］］」): a phone/e-mail/内線 placeholder is an item, a name placeholder a name that
# is never masked again.
_MASKED_ITEM = r"\[(?:電話|メール)省略\]|内線\s*\[省略\]"
_MASKED_NAME = re.compile(r"\[氏名省略\]")
_ITEM = re.compile(
    rf"{_MASKED_ITEM}|"
    r"(?<!\d)[(]?0\d{1,4}[-)]\d{1,4}-[\dxX]{0,3}[xX]+|内線\s*\d*[xX]+|〒\s*\d{3}-?\d{4}|"
    rf"{EMAIL.pattern}|{EXTENSION.pattern}|{PHONE.pattern}"
)
_TOKEN = re.compile(r"[^\s()（）【】\[\]<>＜＞〈〉「」『』/／:：,，、;；]+")
_LABEL = re.compile(
    r"(?i:tel|fax|e-?mail|mail|phone)\.?"
    r"|担当者?|(?:お|ご)?問い?合わ?せ(?:先|窓口)?|連絡先|照会先|回答者|作成者|記入者|電話(?:番号)?|ファクス|メール(?:アドレス)?"
    r"|内線|外線|直通|代表|携帯|宛て?|まで|以上"
)
_TITLE = re.compile(r".*(?:課長|係長|室長|部長|局長|所長|班長|次長|参事|補佐|主査|主任|主事|主幹|技師|専門員|リーダー|任用職員|書記)")
# sections: a strong suffix (…課, …係 …) or, from three characters, a place or a weak suffix (阿部, 中村 are names)
_ORG_STRONG = re.compile(r".+(?:課|係|室|班|担当|事務局|センター|委員会|グループ|チーム|事務所|支所|出張所|選管)内?|(?i:.*dx.*(?:課|室|係))")
_ORG_WEAK = re.compile(r".{2,}(?:部|局|所|庁|館|院|会|組合|連合|[都道府県市区町村])|.市")  # 堺市, 津市
_NAME = re.compile(r"[\u4e00-\u9fff々〆ヶヵノ]{1,6}|[\u4e00-\u9fff々ヶ]{1,3}[\u3041-\u3096\u30a1-\u30fa]{1,4}")
_ORG_THEN_NAME = re.compile(rf"(.+(?:課|係|室|班|担当|事務局|センター))({_NAME.pattern})")
_OPEN, _CLOSE = "(（【[［<＜〈「", ")）】]］>＞〉」"
_CUE_AT = re.compile(r"[(（【\[［<＜]?\s*(?:担当|問い?合わ?せ|連絡先|照会先|TEL|Tel|tel|電話)")
_TRAILER = re.compile(r"\n\s*(?:以上|以\s*上)\s*[。.]?\s*$")
_MAX_BLOCK = 200


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def _fold(text: str) -> tuple[str, Sequence[int]]:
    """NFKC character by character, with the original index of every folded character
    (so a block found on folded text can be cut or masked in the text as typed)."""
    if unicodedata.is_normalized("NFKC", text):  # matching text is NFKC already: nothing to map
        return text, range(len(text))
    out: list[str] = []
    index: list[int] = []
    for i, c in enumerate(text):
        n = unicodedata.normalize("NFKC", c) if ord(c) > 127 else c
        out.append(n)
        index.extend([i] * len(n))
    return "".join(out), index


def _classify_tokens(seg: str) -> list[tuple[str, int, int]] | None:
    """(kind, start, end) of every token of a would-be contact block, kinds item/label/org/title/name
    (masked: a name placeholder); None when a token is none of them (the segment is prose)."""
    blanked = list(seg)
    kinds: list[tuple[str, int, int]] = []
    for m in _MASKED_NAME.finditer(seg):
        kinds.append(("masked", m.start(), m.end()))
        blanked[m.start() : m.end()] = " " * (m.end() - m.start())
    for m in _ITEM.finditer("".join(blanked)):
        kinds.append(("item", m.start(), m.end()))
        blanked[m.start() : m.end()] = " " * (m.end() - m.start())
    for m in _TOKEN.finditer("".join(blanked)):
        tok, a, b = m.group().rstrip(".。"), m.start(), m.start() + len(m.group().rstrip(".。"))
        if not tok:
            continue
        if _LABEL.fullmatch(tok):
            kinds.append(("label", a, b))
        elif _TITLE.fullmatch(tok):
            kinds.append(("title", a, b))
        elif _ORG_STRONG.fullmatch(tok) or _ORG_WEAK.fullmatch(tok):
            kinds.append(("org", a, b))
        elif _NAME.fullmatch(tok):
            kinds.append(("name", a, b))
        elif (m2 := _ORG_THEN_NAME.fullmatch(tok)) and not _LABEL.fullmatch(m2.group(2)) and not _TITLE.fullmatch(m2.group(2)):
            kinds.append(("org", a, a + len(m2.group(1))))
            kinds.append(("name", a + len(m2.group(1)), b))
        elif tok.startswith(("担当", "TEL", "Tel", "tel", "電話")) and _NAME.fullmatch(tok.lstrip("担当者TELtel電話")):
            rest = len(tok) - len(tok.lstrip("担当者TELtel電話"))  # 「担当村上」: a label glued to a name
            kinds.append(("label", a, a + rest))
            kinds.append(("name", a + rest, b))
        else:
            return None
    return sorted(kinds, key=lambda k: k[1])


def _is_contact(seg: str, standalone: bool) -> list[tuple[str, int, int]] | None:
    """The tokens of ``seg`` if it is an officer's contact block, else None. ``standalone``: the segment
    is a line of its own or a whole bracketed group (then a section name alone is a contact)."""
    if not seg.strip() or len(seg) > _MAX_BLOCK or "。" in seg.rstrip().rstrip("。)）】]>"):
        return None
    kinds = _classify_tokens(seg)
    if not kinds:
        return None
    counts = {k: sum(1 for x in kinds if x[0] == k) for k in ("item", "label", "org", "name")}
    counts["name"] += sum(1 for x in kinds if x[0] == "masked")
    if counts["name"] > 3 or counts["name"] > counts["org"] + counts["label"] + counts["item"]:
        return None
    strong_org = any(k == "org" and _ORG_STRONG.fullmatch(seg[a:b]) for k, a, b in kinds)
    has_label = any(k == "label" and seg[a:b] not in ("まで", "以上", "代表") for k, a, b in kinds)
    if counts["item"] or (has_label and (counts["org"] or counts["name"])) or (standalone and strong_org):
        return kinds
    return None


def _block_start(s: str, lo: int = 0) -> int | None:
    """Start of the trailing contact block of folded text ``s`` (None if it has none). The block may span
    several lines (担当 / TEL / メール), stand in brackets after the last sentence, or follow 。 on the
    same line; it never starts at ``lo`` (a text that is all contact keeps its text)."""
    end = len(s.rstrip())
    trailer = _TRAILER.search(s[:end])
    if trailer:
        end = trailer.start()
    t = s[:end]
    if not t.strip():
        return None
    # most texts end in a sentence: skip them quickly (no item, label or bracket near the end, and a
    # last line that is a sentence)
    tail, last_line = t[-_MAX_BLOCK:], t.rsplit("\n", 1)[-1]
    if not (t[-1] in _CLOSE or _ITEM.search(tail) or _CUE_AT.search(tail) or ("。" not in last_line and len(last_line) <= 60)):
        return None
    candidates: set[int] = set()
    for i, c in enumerate(t):
        if c == "\n" or c in "。．":
            candidates.add(i + 1)
    for m in _CUE_AT.finditer(t):
        candidates.add(m.start())
    # the group of brackets that closes at the very end: 「…していただきたい（担当：… TEL …）」
    if t[-1] in _CLOSE:
        depth = 0
        for i in range(len(t) - 1, -1, -1):
            if t[i] in _CLOSE:
                depth += 1
            elif t[i] in _OPEN:
                depth -= 1
                if depth == 0:
                    candidates.add(i)
                    break
    for p in sorted(c for c in candidates if lo < c < len(t) and len(t) - c <= _MAX_BLOCK):
        seg = t[p:]
        if not t[lo:p].strip():
            continue
        head = seg.lstrip()
        standalone = t[:p].rstrip(" \t").endswith("\n") or p == 0 or (head[:1] in _OPEN and _brackets_whole(head))
        if _is_contact(seg, standalone):
            return p + (len(seg) - len(head))
    return None


def _brackets_whole(seg: str) -> bool:
    depth = 0
    for i, c in enumerate(seg):
        depth += c in _OPEN
        depth -= c in _CLOSE
        if depth == 0:
            return i == len(seg) - 1
    return False


def _contact_spans(folded: str) -> list[tuple[int, int]]:
    """Spans (folded coordinates) of contact blocks: the trailing one, and any line that is one by itself."""
    if _is_contact(folded, standalone=True):  # the whole text is a contact block (a 連絡先 column)
        return [(0, len(folded))]
    spans: list[tuple[int, int]] = []
    start = _block_start(folded)
    if start is not None:
        spans.append((start, len(folded)))
    pos = 0
    for line in folded.split("\n"):
        a, b = pos, pos + len(line)
        pos = b + 1
        if (start is None or b <= start) and _is_contact(line, standalone=True) and _LABEL.search(line):
            spans.append((a, b))
    return spans


def split_contact(text: str) -> tuple[str, str]:
    """Split a text into (body, contact): the contact block an officer pasted at the end, if any.
    Only a block made of contact details is cut; every sentence of the opinion stays in the body."""
    s = (text or "").rstrip()
    folded, index = _fold(s)
    p = _block_start(folded)
    if p is None:
        return s, ""
    raw = index[p]
    return s[:raw].rstrip(), s[raw:].strip()


NAME_MASK = "［氏名省略］"


def mask_officer_details(text: str) -> str:
    """Mask officers' e-mail addresses, phone numbers and extensions anywhere in ``text``, and the names
    in its contact blocks (「担当：情報政策課 佐藤花子」→「担当：情報政策課 ［氏名省略］」). For every
    people-facing file; the data itself keeps the original.

    Idempotent: masking a masked text changes nothing (the export masks text the queue has masked
    already). Placeholders are never taken for names, and masking repeats until nothing changes: a
    masked name is shorter or longer than the name and counts once for 「佐藤 花子」, so a block may be
    delimited differently on the next pass (「山田」 on the line above 「担当：… ［氏名省略］」). Each pass
    that changes the text replaces a name by a placeholder, so this ends after a few passes."""
    if not isinstance(text, str) or not text:
        return text
    for _ in range(8):
        masked = _mask_once(text)
        if masked == text:
            break
        text = masked
    return text


def _mask_once(text: str) -> str:
    folded, index = _fold(text)
    names: list[tuple[int, int]] = []
    for a, b in _contact_spans(folded):
        for kind, x, y in _is_contact(folded[a:b], standalone=True) or []:
            if kind != "name":
                continue
            x, y = index[a + x], index[a + y - 1] + 1
            if names and not text[names[-1][1] : x].strip():  # 「佐藤 花子」: one name
                names[-1] = (names[-1][0], y)
            else:
                names.append((x, y))
    for x, y in reversed(names):
        text = text[:x] + NAME_MASK + text[y:]
    return mask_contact_items(text)


def mask_contact_items(text: str) -> str:
    """The e-mail / phone / 内線 part of ``mask_officer_details`` (idempotent: masks never match again)."""
    if not isinstance(text, str):
        return text
    text = EMAIL.sub("［メール省略］", text)
    text = EXTENSION.sub("内線［省略］", text)
    return PHONE.sub("［電話省略］", text)


def mask_contacts(text: str) -> str:
    """Remove remaining e-mail addresses, phone numbers and extensions; URLs become ``URL``."""
    text = EMAIL.sub(" ", text)
    text = URL.sub(" URL ", text)
    text = EXTENSION.sub(" ", text)
    return PHONE.sub(" ", text)


def _match(text: str) -> tuple[str, str]:
    """(matching text, contact block) in one pass."""
    body, contact = split_contact(nfkc(text))
    return WS.sub(" ", mask_contacts(body)).strip(), contact


def match_text(text: str) -> str:
    """The text classifiers and embedders see: NFKC, contacts out, whitespace collapsed."""
    return _match(text)[0]


def body_names(body: str) -> list[str]:
    """The names a body may use for itself: 「青森県八戸市」 → 青森県八戸市, 八戸市, 青森県."""
    body = nfkc(body).strip()
    if not body:
        return []
    names = {body}
    m = re.match(r"^(.+?[都道府県])(.+[市区町村])$", body)
    if m:
        names.update({m.group(1), m.group(2)})
    return sorted(names, key=len, reverse=True)


def key_from_match(matched: str, body: str = "") -> str:
    for name in body_names(body):
        matched = matched.replace(name, "〇")
    return PUNCT.sub("", SELF_REFERENCE.sub("〇", matched))


def dedupe_key(text: str, body: str = "") -> str:
    """Matching text without punctuation/whitespace, with the body's own name and self-references masked."""
    return key_from_match(match_text(text), body)


def normalise(opinions: pd.DataFrame) -> pd.DataFrame:
    """Add ``match_text``, ``match_reason``, ``contact`` and ``dedupe_key`` columns; rows unchanged in number."""
    out = opinions.copy()
    matched = [_match(t) for t in out["text"].fillna("")]
    out["contact"] = [c for _, c in matched]
    out["match_text"] = [m for m, _ in matched]
    out["match_reason"] = out["reason"].fillna("").map(match_text)
    out["dedupe_key"] = [key_from_match(m, b) for (m, _), b in zip(matched, out["body"].fillna(""))]
    return out
