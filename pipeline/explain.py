"""Explanation: why a decision was made, as structured columns, and its rendering in Japanese.

``structured`` columns (opinions.csv, queue) hold what decided, as codes: the features that pushed the
text model (``category_evidence``: ``text:<n-gram>``, ``reason:<n-gram>``, ``word:<lemma>``,
``cue:<cue name>:+|-``, ``struct:<name>:+|-``), the runner-up, the ids of the nearest labelled
precedents, observation codes, review codes, the passages cited. ``render`` is the one place that turns
them into the sentences a WT member reads — at the edge, so that no notebook ever parses a sentence
back. It quotes the opinion's own words (an n-gram hit widened to the phrase around it), names the rule
of the 判断フローチャート, quotes the passage that settles it and the similar past opinions by their text,
never by an id of our labelled data.
"""

from __future__ import annotations

import functools
import re
import weakref

import numpy as np
import pandas as pd
from scipy.sparse import issparse
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from pipeline.config import Domain
from pipeline.normalize import mask_officer_details, match_text

SEP = "|"
OBSERVATION_LABELS = {"reason_empty": "理由欄は空欄", "reason_restates": "理由欄は意見の繰り返し", "self_reference": "団体自身への言及あり"}
REVIEW_LABELS = {
    "ingest": "取込時の注意（空欄・長すぎる意見など）",
    "ambiguous": "分類が一つに絞れない",
    "no_fit": "どの分類にも確信が持てない",
    "outside_set": "最も確からしい分類が予測集合に入らない",
    "share_possible": "共有すべきものの可能性が残る",
    "resolved_unsupported": "解決済とする根拠の記載が弱い",
    "candidate_low": "対象候補の確信度が低い",
    "candidate_unlisted": "一覧にない制度についての意見かもしれない（どの候補にもよく当てはまらない）",
    "off_domain": "対象候補との関連が薄い",
    "atypical": "似た意見が学習データに少ない（自動判定の前提外）",
    "window_unrelated": "この照会回の意見の大半が対象候補・資料と関連が薄い（別の意見募集の意見かもしれない）",
}
FLOWCHART_RULES = {
    "OUT_OF_SCOPE": "①射程外（共通化の対象外の事項）",
    "RESOLVED": "②解決済（資料に記載済み、または検討の方向性が示されている）",
    "ORG_SPECIFIC": "③団体固有の事情",
    "ABSTRACT": "④抽象的なもの（具体的な要望・課題がない）",
    "UNCLEAR_BASIS": "⑤根拠不明確（理由・事実の裏付けがない）",
    "PRECONDITION": "⑥前提条件を整理すべきもの",
    "SHARE": "⑦共有すべきもの（具体的・根拠あり・未対応）",
}
# the structural cues (features.STRUCT_NAMES, in that order) as codes, and what each direction means
STRUCT_CODES = ("reason_empty", "reason_restates", "text_length", "reason_length")
STRUCT_LABELS = {
    ("reason_empty", "+"): "理由欄が空欄",
    ("reason_empty", "-"): "理由欄に記載がある",
    ("reason_restates", "+"): "理由欄は意見の繰り返し",
    ("reason_restates", "-"): "理由欄に意見とは別の説明がある",
    ("text_length", "+"): "意見の分量が多い（{n}字）",
    ("text_length", "-"): "意見の分量が少ない（{n}字）",
    ("reason_length", "+"): "理由欄の分量が多い（{n}字）",
    ("reason_length", "-"): "理由欄の分量が少ない（{n}字）",
}
MAX_PHRASES = 3  # phrases shown in a reason
MAX_PHRASE_CHARS = 30  # a widened phrase longer than this is cut back to the chunks around the hit
QUOTE_CHARS = 60  # passages and past opinions are quoted this far in a reason (the export has the rest)


class _Explainer:
    """Per-model constants: feature names, their codes, embedding mask and each class's coefficients
    relative to the mean of all classes (computed once, not per row)."""

    def __init__(self, model: Pipeline):
        clf: LogisticRegression = model.named_steps["clf"]
        self.names = model.named_steps["features"].get_feature_names_out()
        coef = clf.coef_ if clf.coef_.shape[0] > 1 else np.vstack([-clf.coef_, clf.coef_])
        self.emb_mask = np.array([n.startswith("emb__") for n in self.names])
        self.rel = coef - coef.mean(axis=0)


_EXPLAINERS: "weakref.WeakKeyDictionary[Pipeline, _Explainer]" = weakref.WeakKeyDictionary()


def _explainer(model: Pipeline) -> _Explainer:
    if model not in _EXPLAINERS:
        _EXPLAINERS[model] = _Explainer(model)
    return _EXPLAINERS[model]


def feature_code(name: str, value: float) -> str:
    """One text-model feature (``block__name`` from the ColumnTransformer) as an evidence code;
    ``value`` is the row's (scaled) feature value, whose sign says whether a cue is present/above
    average (+) or absent/below (-). "" for what is not a phrase a reader can check (embeddings)."""
    block, _, feat = name.partition("__")
    sign = "+" if value > 0 else "-"
    if block == "char_text":
        return f"text:{feat}"
    if block == "char_reason":
        return f"reason:{feat}"
    if block == "word":
        return f"word:{feat}"
    if block == "cues":
        from pipeline.features import STRUCT_NAMES

        if feat in STRUCT_NAMES:
            return f"struct:{STRUCT_CODES[STRUCT_NAMES.index(feat)]}:{sign}"
        return f"cue:{feat}:{sign}"
    return ""


def top_cues(model: Pipeline, x_row, class_idx: int, k: int = 6, min_chars: int = 2) -> list[str]:
    """Evidence codes (``feature_code``) of the k features that pushed this row hardest towards
    ``class_idx`` (vs the mean of all classes). Single characters and n-grams inside an already chosen
    one of the same block are skipped (the renderer widens each hit to the phrase around it); the
    embedding block is not a phrase and is not shown."""
    ex = _explainer(model)
    if issparse(x_row):
        row = x_row.tocsr()
        idx_nz, vals = row.indices, row.data
    else:
        dense = np.asarray(x_row).ravel()
        idx_nz = np.flatnonzero(dense)
        vals = dense[idx_nz]
    contrib = vals * ex.rel[class_idx, idx_nz]
    keep = ~ex.emb_mask[idx_nz] & (contrib > 0)
    pos = np.flatnonzero(keep)
    seen: list[str] = []
    for i in pos[np.argsort(-contrib[pos])][: k * 8]:
        code = feature_code(str(ex.names[idx_nz[i]]), float(vals[i]))
        kind, _, value = code.partition(":")
        if not code or code in seen:
            continue
        if kind in ("text", "reason", "word"):
            value = value.strip()
            if len(value) < (min_chars if kind != "word" else 1) or (kind == "word" and len(value) < 2 and not _is_kanji(value)):
                continue
            if any(s.startswith(kind + ":") and value in s.partition(":")[2] for s in seen):
                continue
            code = f"{kind}:{value}"
        seen.append(code)
        if len(seen) == k:
            break
    return seen


def _is_kanji(s: str) -> bool:
    return bool(s) and all("\u4e00" <= c <= "\u9fff" for c in s)


def observation_codes(text: str, reason: str) -> list[str]:
    """Facts a reviewer checks first (not model evidence): is there a reason, does it only restate the
    opinion, does the body speak of itself."""
    from pipeline.features import reason_restates
    from pipeline.normalize import SELF_REFERENCE

    codes = []
    if not reason.strip():
        codes.append("reason_empty")
    elif reason_restates(text, reason):
        codes.append("reason_restates")
    if SELF_REFERENCE.search(text):
        codes.append("self_reference")
    return codes


# --------------------------------------------------------------------------- phrases of the opinion

_SENTENCE_END = re.compile(r"[。！？!?\n]")
_OPEN = frozenset("「『（(［[【〈《“‘")
_BRACKETS = "「」『』（）()［］[]【】〈〉《》“”‘’"
_FUNCTION_POS = frozenset({"助詞", "助動詞", "補助記号", "記号", "空白"})
_STRIP_POS = frozenset({"助詞", "補助記号", "記号", "空白"})
_FORMAL_NOUNS = frozenset({"ため", "為", "こと", "事", "もの", "よう", "ところ", "場合", "上"})  # 残っているため, 判断できないこと
_DECIMAL_MARKS = frozenset(".,．，")
_TOKENIZER = None


@functools.lru_cache(maxsize=8192)
def _tokens(sentence: str) -> tuple:
    """fugashi tokens of ``sentence`` with their character offsets (the tagger loads on first use;
    cached: the members of a duplicate group and the codes of one row hit the same sentences)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from pipeline.tokenize import FugashiTokenizer

        _TOKENIZER = FugashiTokenizer(content_only=False)
    out, cursor = [], 0
    for t in _TOKENIZER.tokens(sentence):
        at = sentence.find(t.surface, cursor)
        at = cursor if at < 0 else at
        out.append((at, at + len(t.surface), t))
        cursor = at + len(t.surface)
    return tuple(out)


def _continues(prev, tok) -> bool:
    """Does ``tok`` belong to the same phrase (文節-like chunk) as ``prev``? Content words start a chunk;
    particles, auxiliaries, suffixes and punctuation attach to it; compound nouns (保守+契約), サ変
    verbs (検討+し, 移行+でき), verbs after the て-form (残っ+て+いる, 示し+て+ほしい) and formal nouns after
    a verb (いる+ため) stay together."""
    if prev is None or tok.surface in _OPEN:
        return False
    if prev.surface in _OPEN or tok.pos in _FUNCTION_POS or tok.pos == "接尾辞" or prev.pos == "接頭辞":
        return True
    if tok.pos == "名詞" and prev.pos in ("名詞", "接尾辞"):
        return True
    if tok.surface[:1].isdigit() and prev.surface in _DECIMAL_MARKS:
        return True  # 約1.4倍, 1,200件: the tagger splits the number at its point or comma
    if tok.pos == "動詞" and tok.lemma in ("為る", "出来る") and prev.pos in ("名詞", "接尾辞"):
        return True
    if tok.surface in _FORMAL_NOUNS and prev.pos in ("動詞", "助動詞", "形容詞"):
        return True
    return tok.pos in ("動詞", "形容詞") and prev.surface in ("て", "で")


def phrase_at(text: str, start: int, end: int) -> str:
    """The whole words around ``text[start:end]`` (an n-gram or pattern hit): the chunks of its sentence
    that the hit touches, without the particles and punctuation after it (「町で」 in 「本町では」 →
    「本町」; 「ので」 stays as the hit is only that). Cut back to the hit's own chunk when longer than
    MAX_PHRASE_CHARS."""
    if not text or start < 0 or end <= start:
        return ""
    s = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start + 1) if m.end() <= start), default=0)
    m = _SENTENCE_END.search(text, max(start, end - 1))
    e = m.start() if m and m.start() >= end - 1 else len(text)
    e = max(e, min(end, len(text)))
    sentence = text[s:e]
    toks = _tokens(sentence)
    if not toks:
        return text[start:end]
    hs, he = start - s, min(end, e) - s
    chunks: list[list] = []
    prev = None
    for item in toks:
        if not _continues(prev, item[2]):
            chunks.append([])
        chunks[-1].append(item)
        prev = item[2]
    touched = [c for c in chunks if c[0][0] < he and c[-1][1] > hs]
    if not touched:
        return text[start:end]
    picked = [t for c in touched for t in c]
    if picked[-1][1] - picked[0][0] > MAX_PHRASE_CHARS:
        picked = next(c for c in touched if c[-1][1] > hs)
        if picked[-1][1] - picked[0][0] > MAX_PHRASE_CHARS:
            return sentence[max(hs - 8, 0) : he + 8].strip()
    content_hit = any(t.pos not in _FUNCTION_POS and a < he and b > hs for a, b, t in picked)
    while len(picked) > 1 and picked[-1][2].pos in _STRIP_POS and (content_hit or picked[-1][0] >= he):
        picked = picked[:-1]
    while len(picked) > 1 and picked[0][2].pos in _STRIP_POS and picked[0][1] <= hs:
        picked = picked[1:]
    return sentence[picked[0][0] : picked[-1][1]].strip().strip(_BRACKETS) or text[start:end]


def _find_word(text: str, lemma: str) -> tuple[int, int] | None:
    """Where a word feature (a lemma) occurs in ``text``: the lemma itself, else a token with that lemma."""
    at = text.find(lemma)
    if at >= 0:
        return at, at + len(lemma)
    cursor = 0
    for sentence in re.split(r"(?<=[。！？!?\n])", text):
        for a, b, t in _tokens(sentence):
            if t.lemma == lemma:
                return cursor + a, cursor + b
        cursor += len(sentence)
    return None


def evidence_phrase(code: str, text: str, reason: str) -> str:
    """One ``category_evidence`` code as an analyst reads it, with the opinion's own words where the code
    points at them; "" when the words are not in this opinion (nothing to quote, nothing shown).
    ``text`` and ``reason`` are the matching texts (normalize.match_text) the model saw."""
    kind, _, rest = code.partition(":")
    if kind in ("text", "reason"):
        src = text if kind == "text" else reason
        at = src.lower().find(rest.lower())  # the n-gram vectoriser lower-cases (SaaS → saas)
        if at < 0:
            return ""
        phrase = phrase_at(src, at, at + len(rest))
        return f"「{phrase}」" if kind == "text" else f"理由欄の「{phrase}」"
    if kind == "word":
        for src, where in ((text, ""), (reason, "理由欄の")):
            hit = _find_word(src, rest)
            if hit:
                return f"{where}「{phrase_at(src, *hit)}」"
        return ""
    if kind == "cue":
        from pipeline.features import CUE_PATTERNS

        name, _, sign = rest.rpartition(":")
        pattern = dict(CUE_PATTERNS).get(name)
        short = name.split("（")[0]
        hit = None
        if pattern:
            for src, where in ((text, ""), (reason, "理由欄の")):
                m = re.search(pattern, src)
                if m:
                    hit = (src, where, m)
                    break
        if sign == "-":
            return f"{name}が少ない" if hit else f"{name}が見られない"
        if hit is None:
            return short
        src, where, m = hit
        return f"{where}「{phrase_at(src, m.start(), m.end())}」（{short}）"
    if kind == "struct":
        name, _, sign = rest.rpartition(":")
        if name == "reason_length" and not reason.strip():
            return STRUCT_LABELS[("reason_empty", "+")]
        label = STRUCT_LABELS.get((name, sign), "")
        return label.format(n=len(reason if name.startswith("reason") else text))
    return ""


def decisive_phrases(codes: list[str], text: str, reason: str, k: int = MAX_PHRASES) -> list[str]:
    """``k`` distinct readable pieces of evidence: the opinion's own words first (phrases widened from
    n-gram hits repeat when two n-grams fall in one word: shown once), then what the text lacks or its
    shape (理由欄が空欄, a cue that is absent), each group in the model's order."""
    out: list[str] = []
    quoted: list[str] = []
    labels = [evidence_phrase(c, text, reason) for c in codes]
    for label in [x for x in labels if "「" in x] + [x for x in labels if "「" not in x]:
        if not label or label in out:
            continue
        m = re.search(r"「(.+?)」", label)
        if m:
            phrase = m.group(1)
            same = [i for i, q in enumerate(quoted) if q and (phrase in q or q in phrase)]
            if same:
                i = same[0]
                if quoted[i] == phrase and "（" in label and "（" not in out[i]:
                    out[i] = label  # the same words, now with what they mean (団体自身への言及)
                continue
        out.append(label)
        quoted.append(m.group(1) if m else "")
        if len(out) == k:
            break
    return out


# --------------------------------------------------------------------------- rendering (the edge)


def _split(v) -> list[str]:
    return [x for x in str(v or "").split(SEP) if x]


def _str(row: pd.Series, col: str) -> str:
    v = row.get(col, "")
    return "" if v is None or (isinstance(v, float) and v != v) else str(v)


def _short(text: str, n: int = QUOTE_CHARS) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= n else text[:n].rstrip() + "…"


def passage_label(passage_id: str) -> str:
    """A cited passage (``<file>#<heading path>#<n>``) as people name it: 「見出し」（ファイル、n 段落目）."""
    file, _, rest = passage_id.partition("#")
    headings, _, n = rest.rpartition("#")
    if not headings and not n.isdigit():
        headings, n = rest, ""
    where = "、".join(p for p in (file, f"{n} 段落目" if n.isdigit() else "") if p)
    return f"「{headings}」（{where}）" if headings else f"（{where}）"


def _cited(passage: str, quote: str) -> str:
    return f"{passage_label(passage)}{'「' + _short(quote) + '」' if quote else ''}"


def flowchart_sentence(category: str) -> str:
    """Which question of the 判断フローチャート decided, and that the earlier ones did not."""
    rules = list(FLOWCHART_RULES)
    if category not in FLOWCHART_RULES:
        return ""
    k = rules.index(category)
    marks = [FLOWCHART_RULES[c][0] for c in rules]
    if category == "SHARE":
        return f"判断フローチャートの{marks[0]}〜{marks[k - 1]}のいずれにも当たらないため {FLOWCHART_RULES[category]}。"
    if k == 0:
        return f"判断フローチャートの最初の問い {FLOWCHART_RULES[category]} に当たると判断。"
    before = marks[0] if k == 1 else (f"{marks[0]}・{marks[1]}" if k == 2 else f"{marks[0]}〜{marks[k - 1]}")
    return f"判断フローチャートの{before}には当たらず、{FLOWCHART_RULES[category]} に当たると判断。"


def _texts(row: pd.Series) -> tuple[str, str]:
    text = _str(row, "match_text") or match_text(_str(row, "text"))
    reason = _str(row, "match_reason") or match_text(_str(row, "reason"))
    return text, reason


def render_category_reason(row: pd.Series, domain: Domain, precedents: pd.DataFrame | dict | None = None) -> str:
    """The category's reason as an analyst writes it: the category and the flowchart question that
    decided, the passage that settles it (解決済) or the one a 修正意見 would amend, the opinion's own
    words that decided, the runner-up, what to check, and similar past opinions by their text."""
    cat = row["category"]
    parts = [f"{domain.category_label(cat)}（確信度 {float(row['category_confidence']):.2f}）。", flowchart_sentence(cat)]
    if cat == "RESOLVED":
        if _str(row, "resolved_by"):
            parts.append(f"解決済とする根拠の記載: {_cited(_str(row, 'resolved_by'), _str(row, 'resolved_quote'))}。")
        else:
            parts.append("解決済とする根拠の記載は特定できていません。")
    addressed = _str(row, "addressed_suggestion")
    if addressed and _str(row, "nearest_passage"):
        lead = "方針案に対応する記載がある見込み" if addressed == "記載あり" else "方針案に対応する記載はない見込み（最も近い記載"
        tail = "" if addressed == "記載あり" else "）"
        parts.append(f"{lead}: {_cited(_str(row, 'nearest_passage'), _str(row, 'nearest_quote'))}{tail}。")
    ev = decisive_phrases(_split(row.get("category_evidence")), *_texts(row))
    if ev:
        parts.append("決め手となった記述: " + "、".join(ev) + "。")
    if _str(row, "runner_up"):
        parts.append(f"次に近い分類: {domain.category_label(row['runner_up'])}（{float(row.get('runner_up_confidence') or 0):.2f}）。")
    pset = _split(row.get("prediction_set"))
    if len(pset) > 1:
        parts.append("候補となる分類: " + "・".join(domain.category_label(c) for c in pset) + "。")
    obs = [OBSERVATION_LABELS[c] for c in _split(row.get("observations")) if c in OBSERVATION_LABELS]
    if obs:
        parts.append("確認事項: " + "、".join(obs) + "。")
    near = similar_opinions(_split(row.get("precedent_ids")), precedents, domain)
    if near:
        parts.append("似た過去の意見: " + "、".join(near) + "。")
    return "".join(p for p in parts if p)


def similar_opinions(ids: list[str], precedents, domain: Domain, k: int = 2) -> list[str]:
    """Past opinions by a short quote of their text and their category — never by the id of a labelled
    row (an id that is not among ``precedents`` is left out, not shown). ``precedents``: the model's
    precedent frame (opinion_id, text, category) or ``precedent_quotes`` of it."""
    if precedents is None or not len(precedents) or not ids:
        return []
    quotes = precedents if isinstance(precedents, dict) else precedent_quotes(precedents)
    out = []
    for pid in ids[:k]:
        if pid in quotes and quotes[pid][0]:
            text, cat = quotes[pid]
            out.append(f"「{text}」（{domain.category_label(cat)}）")
    return out


def precedent_quotes(precedents: pd.DataFrame | None) -> dict[str, tuple[str, str]]:
    """opinion_id → (short quote of the text with officers' details masked, category), built once per render."""
    if precedents is None or not len(precedents):
        return {}
    p = precedents.drop_duplicates("opinion_id")
    return {
        str(i): (_short(mask_officer_details(match_text(str(t or ""))), 40), str(c))
        for i, t, c in zip(p["opinion_id"], p["text"] if "text" in p.columns else [""] * len(p), p["category"] if "category" in p.columns else [""] * len(p))
    }


def render_candidate_reason(row: pd.Series, domain: Domain) -> str:
    cand = row["candidate_id"]
    stated = row.get("stated_id", "")
    if not stated or stated == "NONE":
        st = "対象欄は記載なし"
    elif stated == cand:
        st = "対象欄の記載と一致"
    else:
        st = f"対象欄の記載（{stated} {domain.candidate_name(stated)}）とは異なる：本文から判断"
    text = f"{cand} {domain.candidate_name(cand)}（確信度 {float(row['candidate_confidence']):.2f}、{st}）。"
    ev = [candidate_evidence_label(e) for e in _split(row.get("candidate_evidence"))]
    if ev:
        text += "手がかり: " + "、".join(ev) + "。"
    return text


def candidate_evidence_label(code: str) -> str:
    """One mapping.evidence_codes code in Japanese."""
    kind, _, value = code.partition(":")
    return {
        "name": f"本文に名称（の一部）「{value}」",
        "number": f"候補の番号・ID（{value}）への言及",
        "ministry": f"所管（{value}）への言及",
        "description": "候補一覧の説明と内容が近い",
        "draft": "この候補の方針案の記載と内容が近い",
        "precedent": "この候補についての過去の意見と内容が近い",
        "general": f"候補を横断する話題（{value}）",
    }.get(kind, code)


def render_review_reasons(row: pd.Series) -> str:
    return "；".join(REVIEW_LABELS.get(c, c) for c in _split(row.get("review_codes")))


def render(frame: pd.DataFrame, domain: Domain, precedents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add the Japanese sentences (category_reason, candidate_reason, review_reasons) from the
    structured columns: the one place that writes them. ``precedents`` (opinion_id, text, category) lets
    similar past opinions be quoted by their text."""
    out = frame.copy()
    if len(out) == 0:
        for c in ("category_reason", "candidate_reason", "review_reasons"):
            out[c] = ""
        return out
    quotes = precedent_quotes(precedents)
    rendered = [(render_category_reason(r, domain, quotes), render_candidate_reason(r, domain), render_review_reasons(r)) for _, r in out.iterrows()]
    out["category_reason"], out["candidate_reason"], out["review_reasons"] = (list(c) for c in zip(*rendered))
    return out
