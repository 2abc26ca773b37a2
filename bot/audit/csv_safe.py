"""CSV that spreadsheets read as data, never as formulas (OWASP "CSV Injection").

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets: `=HYPERLINK(...)` in a refund
reason would become a link in the finance team's spreadsheet. As OWASP advises,
such a cell gets a leading single quote and every cell is quoted. Every CSV the
bot writes goes through `SafeWriter` / `SafeDictWriter`.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# OWASP's list: a formula starts with one of these, or a tab or carriage return does.
FORMULA_SIGNS = frozenset("=+-@")
CONTROL_START = frozenset("\t\r")
# A plain number (`-12.50`) is data, not a formula, and stays a number.
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def formula_safe(value: Any) -> Any:
    """The cell as a spreadsheet should show it: text that could start a formula gets a `'`.

    Leading whitespace does not hide a sign (spreadsheets skip it), nor does a
    full-width form (`＝`, which some spreadsheets fold to `=`).
    """
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if not isinstance(value, str) or not value or _NUMBER.fullmatch(value):
        return value
    first = unicodedata.normalize("NFKC", value.lstrip()[:1])
    if value[0] in CONTROL_START or first[:1] in FORMULA_SIGNS:
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` that quotes every cell and neutralises formulas in every value."""

    def __init__(self, out: Any) -> None:
        self._writer = csv.writer(out, quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([formula_safe(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """`csv.DictWriter` that quotes every cell and neutralises formulas in every value."""

    def __init__(self, out: Any, fieldnames: Sequence[str], **kwargs: Any) -> None:
        super().__init__(out, fieldnames=fieldnames, quoting=csv.QUOTE_ALL, **kwargs)

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: formula_safe(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        # DictWriter.writerows would bypass writerow, and with it the neutralising.
        for row in rowdicts:
            self.writerow(row)
