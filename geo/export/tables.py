"""CSV tables of a run (``measurements.csv``, ``events.csv``), safe to open in a spreadsheet.

A text cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return) is
run as a formula by Excel, LibreOffice and Google Sheets ("CSV injection", OWASP). Such
cells get a leading ``'``, which spreadsheets show as text; numbers are left as numbers.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pandas as pd

from geo._atomic import atomic_write_text

__all__ = ["csv_safe", "csv_text", "read_csv", "write_csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, made inert with a leading ``'``.

    Only text is changed; numbers (negative ones too) stay numbers, and text that is just a
    number (``"-3.5"``) is left alone.

    Examples
    --------
    >>> csv_safe("=1+2"), csv_safe("@SUM(A1)"), csv_safe("-x"), csv_safe(-2.5), csv_safe("-2.5")
    ("'=1+2", "'@SUM(A1)", "'-x", -2.5, '-2.5')
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def csv_text(df: pd.DataFrame) -> str:
    """CSV of a table, text cells neutralised (:func:`csv_safe`), floats to 6 digits."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(csv_safe)
    buf = io.StringIO()
    out.to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, float_format="%.6g")
    return buf.getvalue()


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`csv_text` of ``df`` to ``path`` atomically."""
    return atomic_write_text(path, csv_text(df))


def _unsafe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] == "'" and value[1:2] in _FORMULA_START:
        return value[1:]
    return value


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_csv`, with the ``'`` of neutralised cells removed.

    An empty file gives an empty DataFrame.
    """
    p = Path(path)
    if not p.is_file() or not p.stat().st_size:
        return pd.DataFrame()
    df = pd.read_csv(p)
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            df[col] = df[col].map(_unsafe)
    return df
