"""Render wt_export.xlsx for docs/screenshots (how wt_export_xlsx_*.png were made):

    python docs/screenshots/render_xlsx.py outputs/R7-sample/wt_export.xlsx /tmp/s1.xlsx "D1:T6" fit
    soffice --headless --convert-to pdf --outdir /tmp /tmp/s1.xlsx && pdftoppm -r 150 -png -f 1 -l 1 /tmp/s1.pdf /tmp/s1

Only the copy is changed: sheet 共有すべきもの, print area, A3 landscape one page wide, grid lines, and (fit)
row heights estimated from the wrapped text, which the export itself does not write."""
import sys

from openpyxl import load_workbook
from openpyxl.worksheet.properties import PageSetupProperties
src, dst, area = sys.argv[1], sys.argv[2], sys.argv[3]
wb = load_workbook(src)
for ws in list(wb.worksheets):
    if ws.title != "共有すべきもの":
        ws.sheet_state = "hidden"
        continue
    ws.print_area = area
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A3
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.print_options.gridLines = True
wb.save(dst)


def with_row_heights(path: str) -> None:
    """Set each row's height from its wrapped text (what Excel's 'AutoFit row height' does by hand); the
    export writes none, so LibreOffice and Excel show every row one line high."""
    import math

    wb = load_workbook(path)
    ws = wb["共有すべきもの"]
    widths = {k: (v.width or 10) for k, v in ws.column_dimensions.items()}
    for row in ws.iter_rows(min_row=1):
        lines = 1
        for c in row:
            if c.value is None:
                continue
            w = widths.get(c.column_letter, 10)
            text = str(c.value)
            n = sum(max(1, math.ceil(sum(2 if ord(ch) > 0x2E7F else 1 for ch in part) / max(w * 1.25, 1))) for part in text.split("\n"))
            lines = max(lines, n)
        ws.row_dimensions[row[0].row].height = min(14 * lines + 4, 180)
    wb.save(path)


if len(sys.argv) > 4 and sys.argv[4] == "fit":
    with_row_heights(dst)
