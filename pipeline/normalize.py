"""Normalise: derive matching text from the original (which is kept untouched for display).

- NFKC folds 全角英数 to 半角, 半角カナ to 全角, and ①/⑴ to plain digits;
- the officer's contact details (e-mail, phone, 内線, a trailing 「担当：…」 block) are cut out of the
  matching text and kept in their own column, so that two bodies' copies of one text still match and
  classifiers do not learn from officers' names;
- URLs become a placeholder token;
- whitespace and line breaks collapse; ``dedupe_key`` additionally drops punctuation and masks the
  body's own name and self-references (本市, 当町 …), the edits bodies make when re-sending a text.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

# Officers' contacts, as typed or after NFKC: one pattern set for matching text and for exports.
# (\d in a str pattern matches 全角 digits too; hyphens, parentheses and @ are listed in both widths)
_HYPHEN = "[-‐ー−－―‒–—]"
EMAIL = re.compile(r"[A-Za-z0-9Ａ-Ｚａ-ｚ０-９._%+\-－]+[@＠][A-Za-z0-9Ａ-Ｚａ-ｚ０-９.\-－．]+[.．][A-Za-zＡ-Ｚａ-ｚ]{2,}")
PHONE = re.compile(
    rf"(?<!\d)(?:[(（]?[0０]\d{{1,4}}[)）]?(?:{_HYPHEN}|\s)?\d{{1,4}}(?:{_HYPHEN}|\s|[)）])\d{{3,4}}"  # 03-1234-5678, (03)1234-5678
    rf"|[0０]\d{{1,4}}[(（]\d{{1,4}}[)）]\d{{3,4}}"  # 03(1234)5678
    rf"|[0０]\d{{9,10}}"  # 0312345678
    rf"|[0０]120{_HYPHEN}?\d{{2,3}}{_HYPHEN}?\d{{3,4}})(?!\d)"  # 0120-123456
)
EXTENSION = re.compile(r"内線\s*[:：]?\s*\d{2,6}")
URL = re.compile(r"https?://[^\s）)」』、。]+")
CONTACT_CUE = re.compile(r"担当|問合せ|問い合わせ|問合わせ|連絡先|TEL|Tel|tel|電話|内線|E-?mail|e-?mail|メール|FAX|Fax")
# a trailing contact block: the last line, or a final （…） / 【…】 / 「…」-less tail that carries a cue
TAIL_BLOCK = re.compile(r"(?:\n|^|(?<=[。．.]))\s*[（(【\[［]?[^\n。]{0,20}(?:担当|問合せ|問い合わせ|問合わせ|連絡先)[^\n]*$")
PAREN_TAIL = re.compile(r"[（(【\[［][^（(【\[［]*$")
# 「担当：…」「（担当 …）」「担当者 …」 name an officer; a bare 担当 (「担当課の負担」) does not
OFFICER = re.compile(r"担当(?:者)?\s*[:：]|[（(【\[［]\s*担当|担当者")
SELF_REFERENCE = re.compile(r"(?:本|当|弊|我が)(?:市|町|村|区|県|府|都|道|団体|自治体)")
PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
WS = re.compile(r"\s+")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def split_contact(text: str) -> tuple[str, str]:
    """Split a text into (body, contact): the contact block an officer pasted at the end, if any."""
    s = (text or "").rstrip()
    m = TAIL_BLOCK.search(s)
    if m and (EMAIL.search(m.group()) or PHONE.search(m.group()) or EXTENSION.search(m.group()) or OFFICER.search(m.group())):
        return s[: m.start()].rstrip(), m.group().strip()
    # a final parenthesised block with a phone / e-mail inside: 「…。（情報政策課 佐藤 TEL 012-345-6789）」
    m = PAREN_TAIL.search(s)
    if m and CONTACT_CUE.search(m.group()) and (EMAIL.search(m.group()) or PHONE.search(m.group()) or EXTENSION.search(m.group())):
        return s[: m.start()].rstrip(), m.group().strip()
    return s, ""


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
