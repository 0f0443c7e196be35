"""Build the bundled sample window data/raw/R7-sample/ from the dev split's R7-policy opinions.

The files look like what the secretariat receives: one prefecture's roll-up as .xlsx with a title row,
one as CP932 CSV, one as UTF-8-with-BOM CSV, each with its own header names; plus the untidy rows real
windows contain (「特になし」, an opinion left blank with only a reason). Labels are not written.
Run: python scripts/make_sample_window.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from openpyxl import Workbook

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "raw" / "R7-sample"


def main() -> None:
    data = pd.read_csv(ROOT / "data" / "labeled" / "opinions.csv", dtype=str, keep_default_na=False)
    rows = data[(data["split"] == "dev") & (data["window"] == "R7-policy")].reset_index(drop=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    by_pref = {p: g for p, g in rows.groupby("prefecture")}

    miyazaki = by_pref.get("宮崎県", rows.iloc[:0])
    wb = Workbook()
    ws = wb.active
    ws.title = "回答一覧"
    ws.append(["共通化推進方針案に対する意見（宮崎県取りまとめ）"])
    ws.append(["番号", "団体名", "対象候補", "意見内容", "理由"])
    for i, r in enumerate(miyazaki.itertuples(), start=1):
        ws.append([i, r.body, r.stated_candidate, r.text, r.reason])
    ws.append([len(miyazaki) + 1, "宮崎県西米良村", "全般", "特になし。", ""])
    wb.save(OUT / "宮崎県_回答.xlsx")

    kago = by_pref.get("鹿児島県", rows.iloc[:0])
    k = pd.DataFrame({"No.": range(101, 101 + len(kago)), "回答団体": kago["body"].values, "都道府県名": kago["prefecture"].values, "該当箇所": kago["stated_candidate"].values, "ご意見": kago["text"].values, "意見の理由": kago["reason"].values})
    k.loc[len(k)] = [101 + len(kago), "鹿児島県三島村", "鹿児島県", "", "", "意見欄に記入漏れ（理由のみ記載）"]
    # CP932 is what Excel on Windows writes as "CSV"; characters outside it would not survive
    k.to_csv(OUT / "鹿児島県.csv", index=False, encoding="cp932", errors="replace")

    oki = by_pref.get("沖縄県", rows.iloc[:0])
    pd.DataFrame({"通番": [f"OK-{i:03d}" for i in range(1, len(oki) + 1)], "提出団体": oki["body"].values, "項目": oki["stated_candidate"].values, "意見": oki["text"].values, "理由・背景": oki["reason"].values}).to_csv(
        OUT / "沖縄県.csv", index=False, encoding="utf-8-sig"
    )
    print(f"{OUT}: 宮崎県 {len(miyazaki) + 1}, 鹿児島県 {len(kago) + 1}, 沖縄県 {len(oki)} rows")


if __name__ == "__main__":
    main()
