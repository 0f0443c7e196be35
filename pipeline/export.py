"""WT export: one row per duplicate group, Japanese columns and labels, for people in a meeting.

``wt_export.csv`` (UTF-8 with BOM, so Excel opens it) and ``wt_export.xlsx`` (header frozen, filters,
readable widths; sheet 共有すべきもの and sheet 除外した意見). Officers' e-mail addresses and phone numbers
are masked; cells a spreadsheet would run as a formula are neutralised.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import Domain
from pipeline.normalize import EMAIL, EXTENSION, PHONE
from pipeline.queue import jst

GROUP_STATUS_LABELS = {
    "pending": "未判断（モデルの分類）",
    "decided": "確定",
    "stale": "要再確認（判断後に本文が変更）",
    "partial": "一部判断済（グループ内に未判断あり）",
    "conflict": "判断不一致（グループ内で分類が異なる）",
}
TEXT_COLUMNS = ("団体名（代表）", "同旨団体", "意見", "理由", "メモ", "修正意見", "分類の理由（モデル）", "要確認の理由")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Prefix text a spreadsheet would evaluate (=, +, -, @, tab, CR at the start) with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def mask_pii(text: str) -> str:
    """Mask officers' e-mail addresses, phone numbers and extensions (exports only; the data keeps them)."""
    if not isinstance(text, str):
        return text
    text = EMAIL.sub("［メール省略］", text)
    text = EXTENSION.sub("内線［省略］", text)
    return PHONE.sub("［電話省略］", text)


def group_rows(table: pd.DataFrame, domain: Domain, kind: str) -> pd.DataFrame:
    """One row per duplicate group of a window table (queue.window_table), Japanese columns."""
    present = table[table["present"].astype(bool)].copy()
    rows = []
    for _, g in present.groupby("dup_group", sort=False):
        rep_id = g["dup_representative"].iloc[0]
        rep = g[g["opinion_id"] == rep_id].iloc[0] if (g["opinion_id"] == rep_id).any() else g.iloc[0]
        statuses = set(g["status"])
        decided = g[g["status"] != "pending"]
        if "stale" in statuses:
            status = "stale"
        elif decided["decision_category"].nunique() > 1 or decided["decision_candidate_id"].nunique() > 1:
            status = "conflict"
        elif statuses == {"decided"}:
            status = "decided"
        elif "decided" in statuses:
            status = "partial"
        else:
            status = "pending"
        src = decided.iloc[0] if len(decided) else rep
        has_decision = len(decided) > 0
        category = src["decision_category"] if has_decision else rep["category"]
        candidate = src["decision_candidate_id"] if has_decision else rep["candidate_id"]
        bodies = list(dict.fromkeys(b for b in g["body"] if b))
        unnamed = int((g["body"] == "").sum())
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
            "分類の理由（モデル）": rep["category_reason"],
            "モデルの分類": domain.category_label(rep["category"]),
            "分類の確信度": round(float(rep["category_confidence"]), 2),
            "要確認の理由": rep["review_reasons"],
            "メモ": (src["decision_note"] or "") if has_decision else "",
            "過去の照会回": f"{rep['prior_window']} {rep['prior_opinion_id']}".strip(),
        }
        if kind == "policy":
            addressed = src["decision_addressed"] if has_decision else None
            row["記載の有無"] = {"yes": "記載あり", "no": "記載なし"}.get(addressed or "", "")
            row["修正意見"] = (src["decision_revision_request"] or "") if has_decision else ""
        rows.append(row)
    base = ["照会回", "グループID", "代表意見ID", "団体名（代表）", "同旨団体数", "同旨団体", "対象候補ID", "対象候補", "分類", "区分", "判断状況", "判断者", "判断日時", "意見", "理由", "分類の理由（モデル）", "モデルの分類", "分類の確信度", "要確認の理由", "メモ", "過去の照会回"]
    frame = pd.DataFrame(rows, columns=base + (["記載の有無", "修正意見"] if kind == "policy" else []))
    for col in TEXT_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].map(mask_pii)
    return frame


WIDTHS = {"意見": 60, "理由": 40, "分類の理由（モデル）": 50, "同旨団体": 30, "修正意見": 40, "メモ": 30, "要確認の理由": 30, "対象候補": 30}


def write_export(groups: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write wt_export.csv (BOM) and wt_export.xlsx (sheets 共有すべきもの / 除外した意見)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "wt_export.csv", "xlsx": out_dir / "wt_export.xlsx"}
    (groups.map(neutralise) if len(groups) else groups).to_csv(paths["csv"], index=False, encoding="utf-8-sig")
    wb = Workbook()
    wb.remove(wb.active)
    for title, part in (("共有すべきもの", groups[groups["区分"] == "共有"] if len(groups) else groups), ("除外した意見", groups[groups["区分"] == "除外"] if len(groups) else groups)):
        ws = wb.create_sheet(title)
        cols = list(groups.columns)
        ws.append(cols)
        for rec in part.itertuples(index=False):
            ws.append([v.item() if hasattr(v, "item") else v for v in rec])
            for cell in ws[ws.max_row]:
                # openpyxl stores a string starting with "=" as a formula: force it to stay text, as typed
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_START):
                    cell.data_type = "s"
        for i, c in enumerate(cols, start=1):
            ws.column_dimensions[get_column_letter(i)].width = WIDTHS.get(c, max(10, min(24, len(c) * 2 + 2)))
            cell = ws.cell(row=1, column=i)
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.freeze_panes = "A2"
        if cols:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{max(ws.max_row, 1)}"
    wb.save(paths["xlsx"])
    return paths

