"""Shared helpers for the importers: reading user files, checking columns, one-line errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from sim.errors import UserError

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_input_path(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {path}: no such file")
    if p.is_dir():
        raise UserError(f"{what} {path}: is a directory, expected a file")
    from sim.running.paths import check_regular_input

    check_regular_input(p, what)  # a FIFO or device would block or never end
    if p.stat().st_size == 0:
        raise UserError(f"{what} {path}: the file is empty")
    return p


def read_frame(path: str | Path, what: str) -> pl.DataFrame:
    """Read a CSV/TSV, JSONL (or a JSON array of records) or Parquet file; every failure is a one-line UserError.

    CSV types are inferred from the whole file, so a stray word in a numeric column makes that column a
    string column, which the column checks then report by row.
    """
    p = check_input_path(path, what)
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pl.read_parquet(p)
        elif suffix in (".jsonl", ".ndjson"):
            df = pl.read_ndjson(p, infer_schema_length=None)
        elif suffix == ".json":
            head = p.read_text(encoding="utf-8", errors="replace").lstrip()[:1]
            df = pl.read_json(p, infer_schema_length=None) if head == "[" else pl.read_ndjson(p, infer_schema_length=None)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            df = pl.read_csv(p, separator=sep, infer_schema_length=None)
    except pl.exceptions.NoDataError:
        raise UserError(f"{what} {path}: the file is empty") from None
    except (pl.exceptions.PolarsError, OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path}: cannot be read as {suffix.lstrip('.') or 'CSV'} ({first_line(e)})") from None
    if df.width == 0:
        raise UserError(f"{what} {path}: the file has no columns")
    if df.height == 0:
        raise UserError(f"{what} {path}: the file has a header but no data rows")
    return df


def require_columns(df: pl.DataFrame, names: list[str], where: str) -> None:
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {missing} (found: {short_list(df.columns)})")


def short_list(items, limit: int = 8) -> str:
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def numeric(df: pl.DataFrame, name: str, where: str) -> pl.Series:
    """Column ``name`` as Float64 (nulls kept). Text that is not a number is a UserError naming the row."""
    s = df[name]
    if s.dtype == pl.Boolean:
        return s.cast(pl.Float64)
    if s.dtype.is_numeric():
        return s.cast(pl.Float64)
    if s.dtype in (pl.Utf8, pl.Categorical):
        s = s.cast(pl.Utf8)
        stripped = s.str.strip_chars()
        blank = stripped.is_null() | (stripped == "")
        lowered = stripped.str.to_lowercase()
        as_bool = lowered.replace_strict({"true": 1.0, "false": 0.0}, default=None, return_dtype=pl.Float64)
        conv = stripped.cast(pl.Float64, strict=False).fill_null(as_bool)
        bad = conv.is_null() & ~blank
        if bad.any():
            i = int(bad.arg_true()[0])
            raise UserError(f"{where}: column {name!r} must be numeric, row {i} has {s[i]!r}")
        return conv
    raise UserError(f"{where}: column {name!r} must be numeric, found {s.dtype}")


def is_missing(s: pl.Series) -> pl.Series:
    """Null or NaN."""
    return s.is_null() | (s.is_nan().fill_null(False) if s.dtype.is_float() else pl.Series([False] * len(s)))


def glob_regex(pattern: str, flag: str) -> re.Pattern:
    """A column glob whose single ``*`` is the model name, e.g. ``correct__*``."""
    if pattern.count("*") != 1:
        raise UserError(f"{flag} {pattern!r}: the pattern needs exactly one '*', which stands for the model name")
    head, tail = pattern.split("*")
    return re.compile("^" + re.escape(head) + "(.+)" + re.escape(tail) + "$")


def match_glob(columns: list[str], pattern: str, flag: str) -> dict[str, str]:
    """Map model name -> column for the columns matching ``pattern``, in column order."""
    rx = glob_regex(pattern, flag)
    out: dict[str, str] = {}
    for c in columns:
        m = rx.match(c)
        if m:
            out[m.group(1)] = c
    return out


def parse_list(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UserError(f"{flag}: expected a comma-separated list, got {text!r}")
    dup = sorted({x for x in items if items.count(x) > 1})
    if dup:
        raise UserError(f"{flag}: listed more than once: {dup}")
    return items


def parse_mapping(text: str | None, flag: str) -> dict[str, str]:
    """``a=x,b=y`` -> {a: x, b: y}."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise UserError(f"{flag}: expected NAME=VALUE pairs separated by commas, got {item!r}")
        k, v = (x.strip() for x in item.split("=", 1))
        if not k or not v:
            raise UserError(f"{flag}: expected NAME=VALUE, got {item!r}")
        if k in out:
            raise UserError(f"{flag}: {k!r} is given twice")
        out[k] = v
    return out


def integral(values: np.ndarray, name: str, where: str) -> np.ndarray:
    """Float array -> int64, refusing fractional or negative values."""
    if values.size and (np.any(values != np.round(values)) or np.any(values < 0)):
        bad = np.flatnonzero((values != np.round(values)) | (values < 0))[0]
        raise UserError(f"{where}: column {name!r} must hold non-negative whole numbers, row {bad} has {values[bad]!r}")
    return values.astype(np.int64)

