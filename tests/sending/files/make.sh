#!/bin/sh
# Makes the spreadsheet files the tests read, with LibreOffice (Debian bookworm's
# libreoffice-calc-nogui, LibreOffice 7.4.7.2). The tests read the committed files: CI does not
# need LibreOffice. Run from this folder: sh make.sh
set -eu
out=$(mktemp -d)
# --infilter reads the sources as UTF-8 (76), comma-separated (44), quoted with " (34).
lo() { soffice --headless --infilter="CSV:44,34,76,1" --convert-to "$1" --outdir "$out" "$2" >/dev/null; }

# Excel's "CSV" on Windows: Windows-1252 (LibreOffice's charset 1), semicolons (59).
lo 'csv:Text - txt - csv (StarCalc):59,34,1' people.csv
mv "$out/people.csv" people-windows-1252-semicolons.csv
# Excel's "Unicode text": UTF-16 (65535, written with a BOM), tabs (9).
lo 'txt:Text - txt - csv (StarCalc):9,34,65535' people.csv
mv "$out/people.txt" people-utf-16-tabs.txt
# UTF-8 with a BOM (Excel's "CSV UTF-8"). LibreOffice 7.4 has no option to write the BOM (it
# came with 7.6), so its UTF-8 file gets the three bytes in front here.
lo 'csv:Text - txt - csv (StarCalc):44,34,76' people.csv
printf '\357\273\277' | cat - "$out/people.csv" > people-utf-8-bom.csv
# A workbook: two sheets, numeric IDs, a date in the email column, formulas with their values.
lo xlsx workbook.fods
mv "$out/workbook.xlsx" workbook.xlsx
# Number formats: IDs under "00000" (shown 00123), 21-digit numbers under General, "0", "@".
lo xlsx numbers.fods
mv "$out/numbers.xlsx" numbers.xlsx
# Headers that name no column we know, for the column choice.
lo xlsx unknown-headers.csv
mv "$out/unknown-headers.xlsx" unknown-headers.xlsx
rm -r "$out"
