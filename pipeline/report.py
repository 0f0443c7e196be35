"""Figures and reports for people: Japanese labels rendered with the IPAex font bundled by matplotlib-fontja."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from pipeline.config import Domain


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib_fontja  # noqa: F401  (registers and selects the bundled Japanese font)

    return plt


def confusion_figure(cm: pd.DataFrame, domain: Domain, path: Path) -> Path:
    """Confusion matrix (rows: gold, columns: predicted) with the Japanese category labels."""
    plt = _plt()
    labels = [domain.category_label(c) for c in cm.index]
    fig, ax = plt.subplots(figsize=(8.5, 7))
    ax.imshow(cm.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("予測")
    ax.set_ylabel("正解")
    vmax = cm.to_numpy().max() or 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            v = int(cm.iat[i, j])
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > vmax / 2 else "black")
    ax.set_title("分類の混同行列（dev 分割）")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _png_base64(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def candidate_category_counts(table: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    """Opinions per candidate × final category (rows: candidates in list order, columns: Japanese labels)."""
    t = table[table["present"].astype(bool)]
    if t.empty:
        return pd.DataFrame()
    counts = pd.crosstab(t["final_candidate"], t["final_category"])
    counts = counts.reindex(index=[c for c in domain.candidate_ids if c in counts.index], columns=[c for c in domain.category_codes if c in counts.columns], fill_value=0)
    counts.columns = [domain.category_label(c) for c in counts.columns]
    return counts


def counts_figure(counts: pd.DataFrame) -> str:
    """Stacked bars of opinions per candidate by category, as base64 PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    bottom = None
    colors = ["#9e9e9e", "#b0bec5", "#ffcc80", "#ce93d8", "#ef9a9a", "#80cbc4", "#1e88e5"]
    for i, col in enumerate(counts.columns):
        ax.bar(counts.index, counts[col], bottom=bottom, label=col, color=colors[i % len(colors)])
        bottom = counts[col] if bottom is None else bottom + counts[col]
    ax.set_ylabel("意見数")
    ax.set_title("対象候補別・分類別の意見数")
    ax.legend(fontsize=8, ncol=2, loc="upper right")
    fig.tight_layout()
    data = _png_base64(fig)
    plt.close(fig)
    return data


def candidate_source_label(source: str) -> str:
    """Where the window's candidate list came from, for people."""
    if source == "window.yaml":
        return "照会回の window.yaml（candidates）"
    if source.startswith("references/"):
        return f"参考文書「{source.removeprefix('references/')}」の候補の見出し"
    return "同梱の共通化候補一覧（令和6年度選定分）"


def build_report(window: str, table: pd.DataFrame, groups: pd.DataFrame, domain: Domain, generated_at: str, candidate_source: str = "") -> str:
    """A self-contained HTML page (inline CSS, image and fonts, no external resource) for the WT meeting.

    Besides the counts, each group shows what its members add to the representative, whether the
    members' predictions disagree, and the reference passages behind 解決済 (根拠となる記載) and near a
    共有すべきもの of a policy draft (関連する記載). ``groups`` is export.group_rows' output (masked)."""
    from html import escape

    from pipeline.export import DIFF_COLUMN, DISAGREE_COLUMN, GROUNDS_COLUMN, RELATED_COLUMN
    from pipeline.queue import STATUS_LABELS

    present = table[table["present"].astype(bool)]
    counts = candidate_category_counts(table, domain)
    queue = present[present["in_queue"].astype(bool)]
    progress = queue["status"].value_counts()
    multi = groups[groups["同旨団体数"] > 1].sort_values("同旨団体数", ascending=False)
    shared = groups[groups["区分"] == "共有"]
    resolved = groups[groups["分類"] == domain.category_label("RESOLVED")]
    split = groups[groups[DISAGREE_COLUMN].fillna("") != ""] if DISAGREE_COLUMN in groups.columns else groups.iloc[:0]

    def tbl(frame: pd.DataFrame, index: bool = False) -> str:
        return html_table(frame.reset_index() if index else frame)

    def cols(frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
        """The wanted columns the groups have (already masked by export.group_rows: masking twice
        would mask the placeholders themselves)."""
        return frame[[c for c in wanted if c in frame.columns]].copy()

    parts = [
        "<!DOCTYPE html><html lang='ja'><head><meta charset='utf-8'>",
        f"<title>{escape(window)} 意見照会 集計レポート</title>",
        "<style>body{font-family:'ReportJP','ReportSym','IPAexGothic','Noto Sans CJK JP','Hiragino Sans','Yu Gothic',sans-serif;margin:24px;color:#222}"
        "h1{font-size:22px}h2{font-size:18px;border-bottom:2px solid #1e88e5;padding-bottom:4px;margin-top:28px}"
        ".t{border-collapse:collapse;font-size:13px}.t th,.t td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
        ".t th{background:#ddebf7;min-width:3.5em}.kpi{display:inline-block;margin:0 18px 8px 0;padding:8px 14px;background:#f3f6fa;border-radius:6px}"
        ".kpi b{font-size:20px;display:block}.kpi.g{background:#fff4e5}.unit{font-weight:bold;margin:10px 0 4px}"
        ".cand{margin-top:14px;font-weight:bold}.note{color:#8a4b00}"
        "details{margin:4px 0}summary{cursor:pointer;color:#1e5aa8;padding:2px 0}</style></head><body>",
        f"<h1>{escape(window)} 意見照会 集計レポート</h1><p>作成: {escape(generated_at)}</p>",
        "<!--missing-glyphs-->",
        "<div class='unit'>意見の数（団体が出した意見 1 件を 1 と数える）</div><div>",
        kpi("意見数（全体）", f"{len(present):,} 件"),
        kpi("確認の対象の意見数", f"{len(queue):,} 件"),
        *(kpi(f"{label}の意見数", f"{int(progress.get(key, 0)):,} 件") for key, label in STATUS_LABELS.items()),
        "</div><div class='unit'>グループの数（同旨の意見をまとめて 1 と数える）</div><div>",
        kpi("グループ数（全体）", f"{len(groups):,} グループ", group=True),
        kpi("同旨グループ数（2団体以上）", f"{len(multi):,} グループ", group=True),
        kpi("共有すべきもののグループ数", f"{len(shared):,} グループ", group=True),
        kpi("予測が分かれたグループ数", f"{len(split):,} グループ", group=True),
        "</div>",
        "<h2>対象候補 × 分類（意見数）</h2>",
        f"<img alt='対象候補別・分類別の意見数' src='data:image/png;base64,{counts_figure(counts)}' style='max-width:100%'>" if len(counts) else "<p>意見がありません。</p>",
        tbl(counts.rename(index=lambda c: f"{c} {domain.candidate_name(c)[:18]}").rename_axis("対象候補"), index=True) if len(counts) else "",
        "<h2>この照会回の対象候補</h2>",
        f"<p>候補一覧の出典: {escape(candidate_source_label(candidate_source))}</p>",
        tbl(pd.DataFrame({"ID": [c.id for c in domain.candidates], "名称": [c.name for c in domain.candidates], "所管": [c.ministry for c in domain.candidates]})),
        "<h2>確認の進み具合（意見数）</h2>",
        tbl(pd.DataFrame({"状況": list(STATUS_LABELS.values()), "意見数": [int(progress.get(k, 0)) for k in STATUS_LABELS]})),
        f"<h2>同旨の意見（2団体以上、{len(multi):,} グループ）</h2>",
        "<p>意見は代表意見です。各団体が代表意見に加えた文は「代表意見との差分」にあります。同旨団体数の多い順です。</p>" if len(multi) else "",
        paged_table(cols(multi, ["グループID", "同旨団体数", "同旨団体", "対象候補ID", "分類", "意見", DIFF_COLUMN, DISAGREE_COLUMN])) if len(multi) else "<p>ありません。</p>",
        f"<h2>グループ内で予測が分かれた意見（{len(split):,} グループ）</h2>",
        "<p>同旨グループの中でモデルの分類が異なります。いずれかの団体の意見が共有すべきものと予測された場合、グループは共有すべきものとしています。</p>" if len(split) else "",
        paged_table(cols(split, ["グループID", "代表意見ID", "分類", DISAGREE_COLUMN, DIFF_COLUMN, "判断状況"])) if len(split) else "<p>ありません。</p>",
        f"<h2>共有すべきもの（対象候補別、{len(shared):,} グループ）</h2>",
    ]
    # the section shares one budget of MAX_ROWS rows among the candidates (at least one block each)
    per_candidate = max(PAGE_ROWS, MAX_ROWS // max(1, shared["対象候補ID"].nunique()))
    for cand, g in shared.groupby("対象候補ID", sort=True):
        parts.append(f"<div class='cand'>{escape(cand)} {escape(domain.candidate_name(cand))}（{len(g):,} グループ、意見 {int(g['同旨団体数'].sum()):,} 件）</div>")
        parts.append(paged_table(cols(g, ["代表意見ID", "団体名（代表）", "同旨団体数", "意見", "理由", DIFF_COLUMN, RELATED_COLUMN, "記載の有無", "判断状況"]), limit=per_candidate))
    parts.append(f"<h2>解決済とした意見と根拠となる記載（{len(resolved):,} グループ）</h2>")
    if len(resolved):
        r = cols(resolved, ["グループID", "代表意見ID", "団体名（代表）", "意見", GROUNDS_COLUMN, "判断状況"])
        if GROUNDS_COLUMN in r.columns:
            r[GROUNDS_COLUMN] = r[GROUNDS_COLUMN].fillna("").replace("", "（記載の引用なし）")
        parts.append(paged_table(r))
    else:
        parts.append("<p>ありません。</p>")
    parts.append("</body></html>")
    page = "\n".join(parts)
    missing = missing_glyphs(page)
    note = ""
    if missing:
        listed = "、".join(f"{c}（U+{ord(c):04X}）" for c in missing[:MAX_MISSING_LISTED])
        if len(missing) > MAX_MISSING_LISTED:
            listed += f" ほか {len(missing) - MAX_MISSING_LISTED} 文字"
        note = f"<p class='note'>次の文字は埋め込みフォントにないため、表示する PC のフォントによっては □ で表示されます: {escape(listed)}</p>"
    page = page.replace("<!--missing-glyphs-->", note, 1)
    return page.replace("<style>", "<style>" + font_face_css(page), 1)


# Long lists in the page: blocks of PAGE_ROWS rows, each a <details> element (no script; the first one
# open), and at most MAX_ROWS rows per list (the 共有すべきもの section shares that budget among its
# candidates), so that a window of 200,000 opinions still gives a page a browser opens: about 4.4 MB
# (benchmarked with 92,712 groups); the export holds every row and the page says how many it leaves
# there. A cell is cut at CELL_CHARS characters for the same reason.
PAGE_ROWS = 100
MAX_ROWS = 1_000
CELL_CHARS = 400
EXPORT_FILES = "wt_export.xlsx（wt_export.csv）"
MAX_MISSING_LISTED = 50  # characters without an embedded glyph named at the top of the page


def kpi(label: str, value: str, group: bool = False) -> str:
    from html import escape

    return f"<span class='kpi{' g' if group else ''}'>{escape(label)}<b>{escape(value)}</b></span>"


def paged_table(frame: pd.DataFrame, page: int = PAGE_ROWS, limit: int = MAX_ROWS, noun: str = "グループ") -> str:
    """``frame`` as tables of ``page`` rows in collapsible blocks (「1〜100 件目」, the first open), the
    first ``limit`` rows only, with a note naming how many rows are left out and where they are."""
    n = len(frame)
    if n <= page:
        return html_table(frame)
    shown = frame.iloc[:limit]
    blocks = []
    for start in range(0, len(shown), page):
        chunk = shown.iloc[start : start + page]
        label = f"{start + 1:,}〜{start + len(chunk):,} 件目（全 {n:,} {noun}）"
        blocks.append(f"<details{' open' if start == 0 else ''}><summary>{label}</summary>{html_table(chunk)}</details>")
    if n > limit:
        blocks.append(f"<p class='note'>このページには先頭の {limit:,} {noun}を載せています。残りの {n - limit:,} {noun}は {EXPORT_FILES} にあります。</p>")
    return "".join(blocks)


def _cut(text: str, limit: int = CELL_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"…（全 {len(text)} 字は {EXPORT_FILES}）"


def html_table(frame: pd.DataFrame) -> str:
    """A plain HTML table; cell text escaped and cut at CELL_CHARS, line breaks kept as <br>, control
    characters dropped."""
    from html import escape

    from pipeline.export import clean_text

    def cell(v: object) -> str:
        return escape("" if v is None else _cut(str(clean_text(v) if isinstance(v, str) else v))).replace("\r\n", "\n").replace("\n", "<br>")

    wide = {"代表意見との差分", "根拠となる記載", "関連する記載", "グループ内の予測の不一致"}  # passages and diffs need room
    head = "".join(f"<th style='min-width:16em'>{cell(c)}</th>" if c in wide else f"<th>{cell(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table class='t'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _font_paths() -> dict[str, Path]:
    """Embedded fonts, in fallback order: IPAex Gothic (Japanese; matplotlib-fontja, IPA Font License),
    then DejaVu Sans (symbols and Latin letters IPAex lacks; bundled with matplotlib, free licence)."""
    import matplotlib
    import matplotlib_fontja

    return {
        "ReportJP": Path(matplotlib_fontja.__file__).parent / "fonts" / "ipaexg.ttf",
        "ReportSym": Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf",
    }


@functools.lru_cache(maxsize=None)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(path, lazy=True).getBestCmap())


def missing_glyphs(page: str) -> list[str]:
    """Visible characters of the page that no embedded font has (they would render as boxes, 豆腐,
    on a PC without a font that has them): e.g. 𠮷 (U+20BB7) or emoji."""
    import unicodedata

    covered = [_cmap(str(p)) for p in _font_paths().values() if p.exists()]
    return sorted(c for c in set(page) if unicodedata.category(c)[0] not in "CZ" and not any(ord(c) in cm for cm in covered))


def font_face_css(page: str) -> str:
    """@font-face rules with the bundled fonts reduced to the characters of this page, so the report
    renders Japanese on a PC without Japanese fonts and still opens offline."""
    import base64
    import io

    from fontTools import subset

    rules = []
    needed = set(page)
    for family, font in _font_paths().items():
        if not font.exists():
            continue
        chars = needed & {chr(c) for c in _cmap(str(font))}
        if not chars:
            continue
        opts = subset.Options()
        opts.name_IDs = ["*"]
        opts.notdef_outline = True
        sub = subset.Subsetter(opts)
        f = subset.load_font(str(font), opts)
        sub.populate(text="".join(sorted(chars)))
        sub.subset(f)
        buf = io.BytesIO()
        f.save(buf)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        rules.append(f"@font-face{{font-family:'{family}';src:url(data:font/ttf;base64,{data}) format('truetype')}}")
        needed -= chars  # the next font only fills what this one lacks
    return "".join(rules)


# --------------------------------------------------------------------------- one opinion, for the review notebook


def diff_html(base: str, other: str) -> str:
    """``other`` against ``base`` character by character (Japanese has no spaces to split words on):
    what ``other`` adds in <ins>, what it leaves out of ``base`` in <del>, the rest as is; escaped."""
    import difflib
    from html import escape

    base, other = str(base or ""), str(other or "")
    out = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, base, other, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(other[b0:b1]))
            continue
        if a1 > a0:
            out.append(f"<del>{escape(base[a0:a1])}</del>")
        if b1 > b0:
            out.append(f"<ins>{escape(other[b0:b1])}</ins>")
    return "".join(out).replace("\n", "<br>")


_CARD_CSS = (
    "<style>.op{font-family:'IPAexGothic','Noto Sans CJK JP','Hiragino Sans','Yu Gothic',sans-serif;font-size:14px;line-height:1.6;max-width:1100px}"
    ".op h4{margin:12px 0 4px;border-bottom:1px solid #90caf9}.op .box{background:#f7f9fc;padding:6px 10px;border-radius:4px;white-space:pre-wrap}"
    ".op table{border-collapse:collapse;font-size:13px}.op th,.op td{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}"
    ".op th{background:#ddebf7}.op ins{background:#c8f7c5;text-decoration:none}.op del{background:#ffd6d6}.op .muted{color:#777}</style>"
)


def group_members_html(members: pd.DataFrame, representative: str, domain: Domain) -> str:
    """The members of a duplicate group: each one's opinion and reason against the representative's
    (追加 <ins>, 削除 <del>), its body and the model's category."""
    from html import escape

    if members is None or len(members) == 0:
        return "<p class='muted'>同旨の意見はありません。</p>"
    rep = members[members["opinion_id"] == representative]
    rep = rep.iloc[0] if len(rep) else members.iloc[0]
    rows = []
    for _, m in members.iterrows():
        is_rep = m["opinion_id"] == rep["opinion_id"]
        text = escape(str(m.get("text", "") or "")).replace("\n", "<br>") if is_rep else diff_html(rep.get("text", ""), m.get("text", ""))
        reason = escape(str(m.get("reason", "") or "")).replace("\n", "<br>") if is_rep else diff_html(rep.get("reason", ""), m.get("reason", ""))
        rows.append(
            f"<tr><td>{escape(str(m.get('body', '') or ''))}{'（代表）' if is_rep else ''}</td><td>{escape(str(m['opinion_id']))}</td>"
            f"<td>{text}</td><td>{reason}</td><td>{escape(domain.category_label(str(m.get('category', ''))))}</td></tr>"
        )
    head = "<tr><th>団体名</th><th>意見ID</th><th>意見（代表意見との差分）</th><th>理由（代表意見との差分）</th><th>モデルの分類</th></tr>"
    legend = "<p class='muted'><ins>緑</ins> は代表意見にない文字、<del>赤</del> は代表意見にあってこの意見にない文字です。</p>"
    return f"{legend}<table>{head}{''.join(rows)}</table>"


def opinion_html(row: pd.Series, domain: Domain, members: pd.DataFrame | None = None) -> str:
    """One opinion as the reviewer reads it before deciding: the text, its reason column, the model's
    category and candidate with their reasons, why it is to be checked, the cited passages (解決済の
    根拠, the passage a 修正意見 would amend) and its duplicate group with the differences marked.
    ``row`` is a row of queue.window_table; ``members`` the present rows of its group."""
    from html import escape

    from pipeline.explain import passage_label

    def v(col: str) -> str:
        x = row.get(col, "")
        return "" if x is None or (isinstance(x, float) and x != x) else str(x)

    def box(text: str, empty: str = "（空欄）") -> str:
        return f"<div class='box'>{escape(text) if text.strip() else f'<span class=muted>{empty}</span>'}</div>"

    decided = v("decision_reviewer")
    status = {"pending": "確認待ち", "decided": "確定", "stale": "要再確認"}.get(v("status"), v("status"))
    final = f"{domain.category_label(v('final_category'))}・{v('final_candidate')} {domain.candidate_name(v('final_candidate'))}"
    head = f"<p><b>{escape(v('body') or '団体名なし')}</b>（意見ID {escape(v('opinion_id'))}、確認コード {escape(v('read_code'))}）　状況: {escape(status)}"
    head += f"（{escape(decided)} が判断: {escape(final)}）</p>" if decided else "</p>"
    parts = [_CARD_CSS, "<div class='op'>", head, "<h4>意見</h4>", box(v("text")), "<h4>理由</h4>", box(v("reason"))]
    conf = float(row.get("category_confidence") or 0)
    parts += [
        "<h4>モデルの判断</h4>",
        f"<p><b>分類</b>: {escape(domain.category_label(v('category')))}（確信度 {conf:.2f}）<br>{escape(v('category_reason'))}</p>",
        f"<p><b>対象候補</b>: {escape(v('candidate_reason') or v('candidate_id'))}</p>",
        f"<p><b>要確認の理由</b>: {escape(v('review_reasons') or 'なし')}</p>",
    ]
    cited = []
    if v("resolved_by"):
        cited.append(f"<p><b>解決済とする根拠の記載</b>: {escape(passage_label(v('resolved_by')))}</p>{box(v('resolved_quote'), '（引用なし）')}")
    if v("nearest_passage"):
        label = "方針案の記載（記載あり）" if v("addressed_suggestion") == "記載あり" else "修正意見の対象となる記載（最も近い記載）"
        cited.append(f"<p><b>{label}</b>: {escape(passage_label(v('nearest_passage')))}</p>{box(v('nearest_quote'), '（引用なし）')}")
    parts += ["<h4>引用された記載</h4>", *(cited or ["<p class='muted'>引用された記載はありません。</p>"])]
    n = int(row.get("dup_count") or 1)
    parts += [f"<h4>同旨グループ（{n} 団体）</h4>", group_members_html(members, v("dup_representative"), domain) if members is not None and len(members) > 1 else "<p class='muted'>同旨の意見はありません。</p>", "</div>"]
    return "".join(parts)
