"""Render wt_export.xlsx for docs/screenshots (how wt_export_xlsx_*.png were made):

    python docs/screenshots/render_xlsx.py outputs/R7-sample/wt_export.xlsx /tmp/s1.xlsx "D1:T6"
    soffice --headless --convert-to pdf --outdir /tmp /tmp/s1.xlsx && pdftoppm -r 150 -png -f 1 -l 1 /tmp/s1.pdf /tmp/s1

The export itself sets what a print needs (A3 landscape, one page wide, header row repeated, grid lines,
row heights from the wrapped text, column widths from the content). Only the copy is changed here: the
other sheets hidden and a print area, so that a screenshot shows a few columns large enough to read."""
import sys

from openpyxl import load_workbook

src, dst, area = sys.argv[1], sys.argv[2], sys.argv[3]
wb = load_workbook(src)
for ws in list(wb.worksheets):
    if ws.title != "共有すべきもの":
        ws.sheet_state = "hidden"
        continue
    ws.print_area = area
wb.save(dst)
