"""Hostile spreadsheets for the upload tests (issue 22, item 1), built on the fly: small files that
declare or hold far more than they weigh. Each builder writes `path` and returns it."""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from openpyxl import Workbook

HEADER = ["Nom bénéficiaire", "Prénom bénéficiaire", "Date de naissance", "N° Allocataire"]
SHEET = "xl/worksheets/sheet1.xml"
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'


def _inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'


def _header_row() -> str:
    return '<row r="1">' + "".join(_inline(f"{'ABCD'[j]}1", h) for j, h in enumerate(HEADER)) + "</row>"


def _rewrite(path: Path, write_sheet, level: int = 1) -> Path:
    """A genuine workbook from openpyxl whose first sheet is replaced by `write_sheet(binary file)`."""
    base = path.with_suffix(".base.xlsx")
    wb = Workbook()
    wb.active.append(HEADER)
    wb.save(base)
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as dst:
        for info in src.infolist():
            if info.filename == SHEET:
                with dst.open(SHEET, "w", force_zip64=True) as out:
                    write_sheet(out)
            else:
                dst.writestr(info, src.read(info.filename))
    base.unlink()
    return path


def sparse_corner(path: Path, declared: bool = True) -> Path:
    """Cells A1 and XFD1048576 only (1.6 KB): pandas built the whole 1,048,576 × 16,384 grid."""
    def write(out):
        out.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}>'.encode())
        if declared:
            out.write(b'<dimension ref="A1:XFD1048576"/>')
        out.write(b"<sheetData>" + _header_row().encode())
        out.write(b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>')
    return _rewrite(path, write)


def huge_cell(path: Path, size: int) -> Path:
    """One cell of `size` characters (the issue: 1.5 GiB in a 1.5 MB file)."""
    def write(out):
        out.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}><sheetData>'.encode())
        out.write(_header_row().encode())
        out.write(b'<row r="2"><c r="A2" t="inlineStr"><is><t>')
        chunk = b"A" * (1 << 20)
        left = size
        while left > 0:
            out.write(chunk[:min(left, len(chunk))])
            left -= len(chunk)
        out.write(b"</t></is></c></row></sheetData></worksheet>")
    return _rewrite(path, write)


def many_rows(path: Path, rows: int, declared: bool = False) -> Path:
    """`rows` data rows (the issue: 15 MB holding 1M rows took 427 s at 5.5 GB). Rows and cells
    carry no reference (allowed by the format), so the file is written in bulk."""
    row = (f"<row>{_inline('', 'DURAND')}{_inline('', 'Lou')}<c><v>30000</v></c><c><v>1234567</v></c></row>"
           .replace(' r=""', "")).encode()

    def write(out):
        out.write(f'<?xml version="1.0" encoding="UTF-8"?><worksheet {NS}>'.encode())
        if declared:
            out.write(f'<dimension ref="A1:D{rows + 1}"/>'.encode())
        out.write(b"<sheetData>" + _header_row().encode())
        block = row * 10_000
        for _ in range(rows // 10_000):
            out.write(block)
        out.write(row * (rows % 10_000) + b"</sheetData></worksheet>")
    return _rewrite(path, write)


def ods_repeated(path: Path) -> Path:
    """An OpenDocument sheet whose one row of values is repeated 1,048,576 times over 16,384 columns."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Feuille1"><table:table-row>'
        + "".join(f'<table:table-cell office:value-type="string"><text:p>{h}</text:p></table:table-cell>'
                  for h in HEADER)
        + '</table:table-row><table:table-row table:number-rows-repeated="1048576">'
        '<table:table-cell table:number-columns-repeated="16384" office:value-type="string">'
        '<text:p>X</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>'
        '</office:body></office:document-content>')
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED)
        zf.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml",
                    '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                    'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
                    '<manifest:file-entry manifest:full-path="/" '
                    'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
                    '</manifest:manifest>')
    return path


def wide_csv(path: Path, columns: int) -> Path:
    path.write_text(";".join(HEADER + [f"c{j}" for j in range(columns)]) + "\nDURAND;Lou;01/02/1980;1234567\n",
                    encoding="utf-8")
    return path


def long_cell_csv(path: Path, size: int) -> Path:
    path.write_text(";".join(HEADER) + f"\n{'D' * size};Lou;01/02/1980;1234567\n", encoding="utf-8")
    return path
