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


def build_report(window: str, table: pd.DataFrame, groups: pd.DataFrame, domain: Domain, generated_at: str) -> str:
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
        ".kpi b{font-size:20px;display:block}.cand{margin-top:14px;font-weight:bold}.note{color:#8a4b00}</style></head><body>",
        f"<h1>{escape(window)} 意見照会 集計レポート</h1><p>作成: {escape(generated_at)}</p>",
        "<!--missing-glyphs-->",
        "<div>",
        f"<span class='kpi'>意見数<b>{len(present)}</b></span>",
        f"<span class='kpi'>グループ数（同旨をまとめた数）<b>{len(groups)}</b></span>",
        f"<span class='kpi'>同旨グループ（2団体以上）<b>{len(multi)}</b></span>",
        f"<span class='kpi'>共有すべきもの（グループ）<b>{len(shared)}</b></span>",
        f"<span class='kpi'>予測が分かれたグループ<b>{len(split)}</b></span>",
        *(f"<span class='kpi'>{label}<b>{int(progress.get(key, 0))}</b></span>" for key, label in STATUS_LABELS.items()),
        "</div>",
        "<h2>対象候補 × 分類</h2>",
        f"<img alt='対象候補別・分類別の意見数' src='data:image/png;base64,{counts_figure(counts)}' style='max-width:100%'>" if len(counts) else "<p>意見がありません。</p>",
        tbl(counts.rename(index=lambda c: f"{c} {domain.candidate_name(c)[:18]}").rename_axis("対象候補"), index=True) if len(counts) else "",
        "<h2>確認の進み具合</h2>",
        tbl(pd.DataFrame({"状況": list(STATUS_LABELS.values()), "件数": [int(progress.get(k, 0)) for k in STATUS_LABELS]})),
        "<h2>同旨の意見（2団体以上）</h2>",
        "<p>意見は代表意見です。各団体が代表意見に加えた文は「代表意見との差分」にあります。</p>" if len(multi) else "",
        tbl(cols(multi, ["グループID", "同旨団体数", "同旨団体", "対象候補ID", "分類", "意見", DIFF_COLUMN, DISAGREE_COLUMN]).head(100)) if len(multi) else "<p>ありません。</p>",
        "<h2>グループ内で予測が分かれた意見</h2>",
        "<p>同旨グループの中でモデルの分類が異なります。いずれかの団体の意見が共有すべきものと予測された場合、グループは共有すべきものとしています。</p>" if len(split) else "",
        tbl(cols(split, ["グループID", "代表意見ID", "分類", DISAGREE_COLUMN, DIFF_COLUMN, "判断状況"])) if len(split) else "<p>ありません。</p>",
        "<h2>共有すべきもの（対象候補別）</h2>",
    ]
    for cand, g in shared.groupby("対象候補ID", sort=True):
        parts.append(f"<div class='cand'>{escape(cand)} {escape(domain.candidate_name(cand))}（{len(g)} 件）</div>")
        parts.append(tbl(cols(g, ["代表意見ID", "団体名（代表）", "同旨団体数", "意見", "理由", DIFF_COLUMN, RELATED_COLUMN, "記載の有無", "判断状況"])))
    parts.append("<h2>解決済とした意見と根拠となる記載</h2>")
    if len(resolved):
        r = cols(resolved, ["グループID", "代表意見ID", "団体名（代表）", "意見", GROUNDS_COLUMN, "判断状況"])
        if GROUNDS_COLUMN in r.columns:
            r[GROUNDS_COLUMN] = r[GROUNDS_COLUMN].fillna("").replace("", "（記載の引用なし）")
        parts.append(tbl(r))
    else:
        parts.append("<p>ありません。</p>")
    parts.append("</body></html>")
    page = "\n".join(parts)
    missing = missing_glyphs(page)
    note = ""
    if missing:
        listed = "、".join(f"{c}（U+{ord(c):04X}）" for c in missing)
        note = f"<p class='note'>次の文字は埋め込みフォントにないため、表示する PC のフォントによっては □ で表示されます: {escape(listed)}</p>"
    page = page.replace("<!--missing-glyphs-->", note, 1)
    return page.replace("<style>", "<style>" + font_face_css(page), 1)


def html_table(frame: pd.DataFrame) -> str:
    """A plain HTML table; cell text escaped, line breaks kept as <br>, control characters dropped."""
    from html import escape

    from pipeline.export import clean_text

    def cell(v: object) -> str:
        return escape("" if v is None else str(clean_text(v) if isinstance(v, str) else v)).replace("\r\n", "\n").replace("\n", "<br>")

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
