"""The trace format: one Parquet row per request, with every model's outcome in wide columns.

See ``traces/README.md`` for the column table. A loaded :class:`Trace` is split in two on purpose:
:class:`RequestFeatures` (what a router may read at decision time) and :class:`Outcomes` (what only the
evaluator, the feedback channel and the labelled oracles may read). Routers are built from the former.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sim.atomic import atomic_path
from sim.errors import UserError

FORMAT_VERSION = 1
META_KEY = b"messplus_sim"
MODEL_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]*\Z")  # \Z: '$' would accept a trailing newline
COST_FAMILIES = ("energy_j", "cost_usd")
# Per-model column families (``<prefix>__<model>``): prefix -> required in every trace (a cost family is checked
# apart: at least one of COST_FAMILIES)
PER_MODEL = {
    "sat": True,
    "energy_j": False,
    "cost_usd": False,
    "latency_s": True,
    "output_tokens": False,
    "p_true": False,
    "pred": False,
}
HASH_DIM = 1 << 14
# Largest accepted time, cost, energy or token count: far above anything real, and low enough that sums over
# 1e9 requests x 12 models and V * energy stay finite (no inf in summaries, no decision lost to overflow).
MAX_VALUE = 1e12


def col(family: str, model: str) -> str:
    return f"{family}__{model}"


def normalise_model_name(name: str) -> str:
    """Names that differ only in case or in ``-``/``_``/``.`` would be confusing in reports; refuse them."""
    return re.sub(r"[-_.]", "", name.lower())


def check_model_names(models: list[str], where: str) -> None:
    if len(models) < 2:
        raise UserError(f"{where}: a zoo needs at least 2 models to route between, got {len(models)}")
    seen: dict[str, str] = {}
    for m in models:
        if not MODEL_NAME.match(m):
            raise UserError(f"{where}: model name {m!r} may only use letters, digits and . _ + -")
        key = normalise_model_name(m)
        if key in seen:
            raise UserError(f"{where}: model names {seen[key]!r} and {m!r} collide (same name ignoring case and -_.)")
        seen[key] = m


@dataclass(frozen=True)
class RequestFeatures:
    """Everything a causal router may see about request t before deciding: no outcome columns."""

    groups: np.ndarray  # int32 group code per request
    group_names: list[str]
    token_indptr: np.ndarray  # CSR over hashed text tokens (or a supplied embedding)
    token_index: np.ndarray
    token_value: np.ndarray
    feature_dim: int
    pred: np.ndarray | None  # (T, M) precomputed predictions to replay, if the trace has them
    prompt_tokens: np.ndarray | None = None  # (T,) prompt length, known on arrival
    token_source: str = "text"  # what token_* hold: "embedding", "text", or "none" (no text: empty rows)
    # the hashed text as CSR (indptr, index, value), kept apart only when an embedding fills token_*, so that a
    # logistic predictor can still be given `features: text` (docs/importers.md, "Which features")
    text_tokens: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class Outcomes:
    """What happens when a model serves a request. Read by the evaluator, the feedback channel and oracles."""

    sat: np.ndarray  # (T, M) realised satisfaction: uint8 when every label is 0 or 1, else float64 in [0, 1]
    cost: np.ndarray  # (T, M) objective cost (energy in J, or USD)
    energy_j: np.ndarray | None
    latency_s: np.ndarray  # (T, M) service time when run alone
    p_true: np.ndarray | None
    output_tokens: np.ndarray | None = None  # (T, M) tokens each model generates (only known once it ran)


@dataclass
class Trace:
    path: str
    models: list[str]
    request_id: np.ndarray
    arrival_s: np.ndarray
    features: RequestFeatures
    outcomes: Outcomes
    cost_unit: str
    provenance: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.request_id)

    @property
    def m(self) -> int:
        return len(self.models)


def models_in_columns(columns: list[str]) -> list[str]:
    seen: list[str] = []
    for c in columns:
        if c.startswith("sat__"):
            seen.append(c[len("sat__"):])
    return seen


class FrameColumns:
    """Column access to a trace held in memory (a synthetic or imported frame)."""

    def __init__(self, df: pl.DataFrame):
        self.df, self.columns, self.height, self.schema = df, df.columns, df.height, df.schema

    def get(self, name: str) -> pa.ChunkedArray:
        return pa.chunked_array([self.df[name].to_arrow()])

    def hashed_text(self, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return hash_tokens(self.df["text"], dim)


class DictColumns:
    """Column access to columns by name (numpy arrays, polars Series or Arrow arrays) that the builder may take: each is
    removed from ``cols`` when read, so that it can go as soon as it has been converted (synthetic traces).

    ``text`` may also be an object with ``hashed(dim)`` (``sim.trace.synth.SynthText``: token ids, no strings)."""

    def __init__(self, cols: dict):
        self.text = cols.pop("text") if hasattr(cols.get("text"), "hashed") else None
        self.cols, self.columns = cols, list(cols) + (["text"] if self.text is not None else [])
        self.height = len(next(iter(cols.values()))) if cols else 0
        self.schema = pl.Schema({k: pl.from_arrow(self._arrow(v[:0])).dtype for k, v in cols.items()})

    @staticmethod
    def _arrow(v) -> pa.Array:
        return v.to_arrow() if isinstance(v, pl.Series) else v if isinstance(v, pa.Array) else pa.array(v)

    def get(self, name: str) -> pa.ChunkedArray:
        return pa.chunked_array([self._arrow(self.cols.pop(name))])

    def hashed_text(self, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.text is not None:
            text, self.text = self.text, None
            return text.hashed(dim)
        return hash_tokens(self.get("text"), dim)


class ParquetColumns:
    """Column access to a trace file, one column at a time: a 10^7-request trace is never held whole, only the
    arrays built from it and the one column being converted (docs/performance.md)."""

    def __init__(self, path: str | Path):
        self.path = path
        self.file, self.meta = open_parquet(path, "trace", META_KEY)
        self.schema = pl.from_arrow(self.file.schema_arrow.empty_table()).schema
        self.columns = list(self.schema.names())
        self.height = self.file.metadata.num_rows

    def get(self, name: str) -> pa.ChunkedArray:
        try:
            return self.file.read(columns=[name]).column(0)
        except (pa.ArrowException, OSError) as e:
            raise UserError(f"trace {self.path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None

    def hashed_text(self, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The text column hashed one row group at a time: its strings are never all in memory together."""
        indptr, index = [np.zeros(1, np.int64)], []
        try:
            for i in range(self.file.num_row_groups):
                part_ptr, part_index, _ = hash_tokens(self.file.read_row_group(i, columns=["text"]).column(0), dim)
                indptr.append(part_ptr[1:] + indptr[-1][-1])
                index.append(part_index)
        except (pa.ArrowException, OSError) as e:
            raise UserError(f"trace {self.path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
        indptr = np.concatenate(indptr)
        return token_csr(np.diff(indptr), np.concatenate(index) if index else np.zeros(0, index_dtype(dim)))


def numeric_columns(columns: list[str], models: list[str]) -> list[str]:
    """The trace's numeric columns that are present, in the order they are checked."""
    names = ["request_id", "arrival_s", "prompt_tokens"] + [col(f, m) for m in models for f in PER_MODEL]
    return [n for n in names if n in columns]


NO_COST_HINT = ("the trace has no cost yet: add energy with `python -m sim trace compose --profile P --gpu G --map ...`, "
                "or re-import it with --cost GLOB, --energy GLOB, --cost-per-request MODEL=PRICE,... or "
                "--price-per-mtok MODEL=PRICE,... (x token counts)")


def check_schema(src, models: list[str], where: str, need_cost: bool = True) -> None:
    """The checks that need only the column names and types; a one-line :class:`UserError` for the first problem.

    ``need_cost=False`` lets an importer write a trace of outcomes whose cost is added later (compose)."""
    if src.height == 0:
        raise UserError(f"{where}: the trace has zero rows")
    check_model_names(models, where)
    for name in ("request_id", "arrival_s", "group"):
        if name not in src.columns:
            raise UserError(f"{where}: missing required column {name!r}")
    # any per-model column (not only sat__) naming an undeclared model is refused, so none is silently ignored
    in_cols = [c.split("__", 1) for c in src.columns if c.split("__", 1)[0] in PER_MODEL and "__" in c]
    extra = list(dict.fromkeys(m for _, m in in_cols if m not in models))
    if extra:
        first = next(f"{f}__{m}" for f, m in in_cols if m == extra[0])
        raise UserError(f"{where}: columns for model(s) {extra} (e.g. {first!r}) that the trace does not declare "
                        f"(declared by the metadata or by 'sat__<model>' columns: {list(models)})")
    for m in models:
        for family, required in PER_MODEL.items():
            if required and col(family, m) not in src.columns:
                raise UserError(f"{where}: missing column {col(family, m)!r} for model {m!r}")
        if need_cost and not any(col(f, m) in src.columns for f in COST_FAMILIES):
            raise UserError(f"{where}: model {m!r} has neither 'energy_j__{m}' nor 'cost_usd__{m}'; {NO_COST_HINT}")
    for name in numeric_columns(src.columns, models):
        if not src.schema[name].is_numeric():
            raise UserError(f"{where}: column {name!r} must be numeric, found {src.schema[name]}")
    kinds = {"group": "text or integers", "text": "text", "embedding": "a list of numbers per row"}
    for name, ok in (("group", lambda t: t in (pl.Utf8, pl.Categorical) or isinstance(t, pl.Enum) or t.is_integer()),
                     ("text", lambda t: t in (pl.Utf8, pl.Null)),  # Null: a synthetic trace without text
                     ("embedding", lambda t: isinstance(t, (pl.List, pl.Array)) and t.inner.is_numeric())):
        # a synthetic trace's text is token ids drawn per chunk (sim/trace/synth.py): it has no column type to check
        if name in src.columns and name in src.schema and not ok(src.schema[name]):
            raise UserError(f"{where}: column {name!r} must hold {kinds[name]}, found {src.schema[name]}")


def check_values(name: str, column: pa.ChunkedArray, where: str) -> np.ndarray:
    """The value checks of one numeric column (no missing, NaN, negative or implausible values); its values."""
    if column.null_count:
        raise UserError(f"{where}: column {name!r} has {column.null_count} missing value(s)")
    a = column.to_numpy()
    if a.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise UserError(f"{where}: column {name!r} has {bad} NaN or infinite value(s)")
    if (a < 0).any():
        raise UserError(f"{where}: column {name!r} has negative value(s), first at row {int(np.argmax(a < 0))}")
    if name != "request_id" and (a > MAX_VALUE).any():
        raise UserError(f"{where}: column {name!r} has value(s) above {MAX_VALUE:g}, first at row "
                        f"{int(np.argmax(a > MAX_VALUE))} (times, costs and tokens must be plausible)")
    if name == "request_id" and a.dtype.kind == "u" and (a > np.iinfo(np.int64).max).any():
        raise UserError(f"{where}: column 'request_id' has value(s) of 2^63 or more, first at row "
                        f"{int(np.argmax(a > np.iinfo(np.int64).max))} (it is read as int64)")
    if name == "request_id" and a.dtype.kind == "f" and ((a != np.floor(a)).any() or (a >= 2.0**53).any()):
        raise UserError(f"{where}: column 'request_id' must hold whole numbers (it is read as int64)")
    if name.split("__", 1)[0] in ("sat", "p_true", "pred") and (a > 1).any():
        raise UserError(f"{where}: column {name!r} must lie in [0, 1]")
    return a


def check_request_ids(rid: np.ndarray, where: str) -> None:
    # increasing ids (every trace this tool writes) are unique without sorting 10^7 values
    if not (rid[1:] > rid[:-1]).all() and np.unique(rid).size != rid.size:
        raise UserError(f"{where}: column 'request_id' has duplicated values")


def check_arrivals(arr: np.ndarray, where: str) -> None:
    late = arr[1:] < arr[:-1]
    if late.any():
        i = int(np.argmax(late)) + 1
        raise UserError(f"{where}: arrivals are not sorted: row {i} arrives at {arr[i]} s, before row {i - 1} at {arr[i - 1]} s")


def validate_frame(df: pl.DataFrame, models: list[str], where: str, need_cost: bool = True) -> None:
    """Raise a one-line :class:`UserError` naming the first problem found in a trace table."""
    src = FrameColumns(df)
    check_schema(src, models, where, need_cost)
    for name in numeric_columns(src.columns, models):
        check_values(name, src.get(name), where)
    check_request_ids(df["request_id"].to_numpy(), where)
    check_arrivals(df["arrival_s"].to_numpy(), where)


def write_parquet(table: pa.Table, path: str | Path, meta_key: bytes, meta: dict) -> None:
    """Write ``table`` atomically with ``meta`` as JSON under ``meta_key`` and a CRC on every page."""
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), meta_key: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)


def check_metadata(meta, where: str, key: str) -> None:
    """The shape of our metadata: a mapping with an integer format_version and a list of model names."""
    if not isinstance(meta, dict):
        raise UserError(f"{where}: '{key}' metadata must be a JSON object, found {type(meta).__name__}")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(f"{where}: '{key}' metadata: format_version must be an integer, found {version!r}")
    models = meta.get("models")
    if models is not None and not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        raise UserError(f"{where}: '{key}' metadata: models must be a list of names, found {models!r}")
    if "cost_unit" in meta and not isinstance(meta["cost_unit"], str):
        raise UserError(f"{where}: '{key}' metadata: cost_unit must be text, found {meta['cost_unit']!r}")


def open_parquet(path: str | Path, what: str, meta_key: bytes, hint: str = "") -> tuple[pq.ParquetFile, dict]:
    """Open a Parquet file written by :func:`write_parquet`; every I/O or format problem is a :class:`UserError`.

    Pages are checksum-verified when read, so a damaged file is an error rather than wrong data. ``meta`` is {}
    for a file without our metadata (for example one written by another tool).
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} {path}: no such file")
    if p.is_dir():
        raise UserError(f"{what} {path}: is a directory, expected a Parquet file")
    from sim.running.paths import check_regular_input

    check_regular_input(p, what)  # a FIFO or device would block or never end
    try:
        file = pq.ParquetFile(p, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{what} {path}: not a readable Parquet file ({str(e).splitlines()[0]}){hint}") from None
    names = file.schema_arrow.names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"{what} {path}: column name(s) {twice} appear more than once")
    raw = (file.schema_arrow.metadata or {}).get(meta_key)
    meta = {}
    if raw is not None:
        try:
            meta = json.loads(raw)
        except ValueError:
            raise UserError(f"{what} {path}: corrupt '{meta_key.decode()}' metadata") from None
        check_metadata(meta, f"{what} {path}", meta_key.decode())
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise UserError(f"{what} {path}: format version {meta['format_version']} is newer than this simulator ({FORMAT_VERSION})")
    return file, meta


def read_parquet(path: str | Path, what: str, meta_key: bytes, hint: str = "") -> tuple[pa.Table, dict]:
    """The whole table of :func:`open_parquet`'s file, and its metadata."""
    file, meta = open_parquet(path, what, meta_key, hint)
    try:
        return file.read(), meta
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{what} {path}: not a readable Parquet file ({str(e).splitlines()[0]}){hint}") from None


def write_trace(df: pl.DataFrame, path: str | Path, models: list[str], provenance: dict, cost_unit: str = "J",
                money_unit: str = "USD", need_cost: bool = True) -> None:
    """Validate and write a trace atomically, with the format version, model order and provenance in metadata.

    ``cost_unit`` is the unit of the default objective (``J``, or the money unit when there is no energy);
    ``money_unit`` labels the ``cost_usd__<m>`` columns (USD unless the source was priced in CNY, EUR, ...)."""
    validate_frame(df, models, str(path), need_cost)
    meta = {"format_version": FORMAT_VERSION, "models": list(models), "cost_unit": cost_unit, "provenance": provenance}
    if money_unit != "USD":
        meta["money_unit"] = money_unit
    write_parquet(df.to_arrow(), path, META_KEY, meta)


def write_trace_chunks(frames, path: str | Path, models: list[str], provenance: dict, cost_unit: str = "J") -> int:
    """:func:`write_trace` for a trace given as consecutive row chunks (``frames``: polars DataFrames), each
    validated and written as it comes, so the whole table is never in memory; the rows written."""
    meta = {"format_version": FORMAT_VERSION, "models": list(models), "cost_unit": cost_unit, "provenance": provenance}
    writer, rows, last_id, last_arrival = None, 0, None, None
    with atomic_path(path) as tmp:
        try:
            for df in frames:
                validate_frame(df, models, str(path))
                first_id, first_arrival = df["request_id"][0], df["arrival_s"][0]
                if last_id is not None and first_id <= last_id:
                    raise UserError(f"{path}: column 'request_id' has duplicated values")
                if last_arrival is not None and first_arrival < last_arrival:
                    raise UserError(f"{path}: arrivals are not sorted: row {rows} arrives at {first_arrival} s, "
                                    f"before row {rows - 1} at {last_arrival} s")
                last_id, last_arrival = df["request_id"][-1], df["arrival_s"][-1]
                table = df.to_arrow()
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", write_page_checksum=True)
                writer.write_table(table)
                rows += df.height
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise UserError(f"{path}: the trace has zero rows")
    return rows


def read_table(path: str | Path) -> tuple[pl.DataFrame, dict]:
    """Read a trace file and its metadata."""
    table, meta = read_parquet(path, "trace", META_KEY)
    return pl.from_arrow(table), meta


HASH_CHUNK_ROWS = 1 << 16  # texts hashed at a time: the split words of 65,536 rows, not of the whole trace


def token_hash(token: str, dim: int = HASH_DIM) -> int:
    """A token's feature index: CRC32 (stable across processes and library versions) modulo ``dim``."""
    return zlib.crc32(token.encode()) % dim


def index_dtype(dim: int):
    """The narrowest integer type for feature indices below ``dim`` (int16 for the default 2^14: 2 bytes a token)."""
    return np.int16 if dim <= 1 << 15 else np.int32


def token_csr(lengths: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, index, value) of rows with ``lengths`` tokens; every token of a row weighs 1/sqrt(its length).

    When every row has the same length (a synthetic trace) all values are one number, and ``value`` is a
    read-only view of it with stride 0: no memory for 10^7 x 24 equal floats (docs/performance.md).
    """
    indptr = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    norm = np.where(lengths > 0, 1.0 / np.sqrt(np.maximum(lengths, 1)), 0.0)
    if len(lengths) and (lengths == lengths[0]).all():
        value = np.lib.stride_tricks.as_strided(norm[:1].copy(), (len(index),), (0,), writeable=False)
    else:
        value = np.repeat(norm, lengths)
    return indptr, index, value


def hash_tokens(texts, dim: int = HASH_DIM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bag of hashed whitespace tokens (lower-cased) as CSR (indptr, index, value); rows have unit norm.

    ``texts`` is a polars Series or an Arrow (chunked) array of strings; it is hashed :data:`HASH_CHUNK_ROWS`
    rows at a time, and each distinct word is hashed once per chunk, so no Python object is made per token.
    """
    series = texts if isinstance(texts, pl.Series) else pl.from_arrow(texts)
    lengths = np.empty(len(series), np.int64)
    parts: list[np.ndarray] = []
    codes: dict[str, int] = {}
    for r0 in range(0, len(series), HASH_CHUNK_ROWS):
        t = series.slice(r0, HASH_CHUNK_ROWS).fill_null("").str.to_lowercase().str.split(" ")
        t = t.list.eval(pl.element().filter(pl.element() != ""))
        lengths[r0:r0 + len(t)] = t.list.len().to_numpy()
        flat = t.explode().drop_nulls()
        if len(flat) == 0:
            continue
        uniq = flat.unique().to_list()
        for word in uniq:
            if word not in codes:
                codes[word] = token_hash(word, dim)
        mapping = {word: codes[word] for word in uniq}
        parts.append(flat.replace_strict(mapping, return_dtype=pl.Int32).to_numpy().astype(index_dtype(dim)))
    index = np.concatenate(parts) if parts else np.zeros(0, index_dtype(dim))
    return token_csr(lengths, index)


def embedding_csr(emb: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    try:  # a ragged or null row cannot become a matrix
        arr = np.asarray(emb.to_list(), dtype=np.float64)
    except (ValueError, TypeError):
        arr = np.empty(0)
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise UserError("trace: column 'embedding' must be a list of equal-length finite floats per row")
    n, d = arr.shape
    indptr = np.arange(0, (n + 1) * d, d, dtype=np.int64)
    index = np.tile(np.arange(d, dtype=np.int32), n)
    return indptr, index, arr.ravel(), d


def group_codes(group: pa.ChunkedArray, where: str) -> tuple[np.ndarray, list[str]]:
    """int32 codes into the sorted names of the groups present; dictionary-encoded by Arrow, so that 10^7 group
    names are never Python strings."""
    if group.null_count:
        raise UserError(f"{where}: column 'group' has {group.null_count} missing value(s)")
    if pa.types.is_dictionary(group.type):
        encoded = group.unify_dictionaries()
    else:
        if not (pa.types.is_string(group.type) or pa.types.is_large_string(group.type)):
            group = pa.chunked_array([pl.from_arrow(group).cast(pl.Utf8).to_arrow()])
        encoded = group.dictionary_encode()
    values = encoded.chunk(0).dictionary.cast(pa.string()).to_pylist() if encoded.num_chunks else []
    index = np.empty(len(group), np.int32)
    at = 0
    for chunk in encoded.chunks:
        index[at:at + len(chunk)] = chunk.indices.to_numpy(zero_copy_only=False)
        at += len(chunk)
    used = np.zeros(len(values), np.bool_)
    used[index] = True
    names = sorted({v for v, u in zip(values, used) if u})
    position = {name: i for i, name in enumerate(names)}
    rank = np.array([position.get(v, -1) for v in values], np.int32)
    return rank[index], names


def from_frame(df: pl.DataFrame, models: list[str], *, path: str = "<memory>", cost_unit: str = "J",
               provenance: dict | None = None, objective: str = "energy_j", drop: tuple[str, ...] = ()) -> Trace:
    return build(FrameColumns(df), models, path=path, cost_unit=cost_unit, provenance=provenance, objective=objective,
                 drop=drop)


def load_trace(path: str | Path, objective: str = "energy_j", drop: tuple[str, ...] = ()) -> Trace:
    src = ParquetColumns(path)
    return build(src, src.meta.get("models") or models_in_columns(src.columns), path=str(path),
                 cost_unit=src.meta.get("cost_unit", "J"), provenance=src.meta.get("provenance", {}),
                 objective=objective, drop=drop, money_unit=src.meta.get("money_unit", "USD"))


def build(src: FrameColumns | DictColumns | ParquetColumns, models: list[str], *, path: str, cost_unit: str = "J",
          provenance: dict | None = None, objective: str = "energy_j", drop: tuple[str, ...] = (),
          money_unit: str = "USD") -> Trace:
    """Validate the trace column by column while its arrays are built (each column is read once).

    ``drop`` names columns or per-model families (``prompt_tokens``, ``output_tokens``) that the run never
    reads: they are validated like the others, but not kept.
    """
    check_schema(src, models, path)
    if objective not in COST_FAMILIES:
        raise UserError(f"objective {objective!r} must be one of {list(COST_FAMILIES)}")
    checked: set[str] = set()

    def column(name: str) -> np.ndarray:
        a = check_values(name, src.get(name), path)
        checked.add(name)
        return a

    def matrix(family: str) -> np.ndarray | None:
        names = [col(family, m) for m in models]
        if family in drop or not all(n in src.columns for n in names):
            return None
        out = np.empty((src.height, len(names)))  # filled column by column: one (T, M) allocation, no temporaries
        for i, name in enumerate(names):
            out[:, i] = column(name)
        return out

    def labels() -> np.ndarray:
        """``sat`` as uint8 when every label is 0 or 1 (1 byte a label instead of 8), else float64."""
        out = np.empty((src.height, len(models)), np.uint8)
        for i, m in enumerate(models):
            a = column(col("sat", m))
            if out.dtype == np.uint8 and not ((a == 0) | (a == 1)).all():
                wide = np.empty(out.shape)
                wide[:, :i] = out[:, :i]
                out = wide
            out[:, i] = a
        return out

    request_id = column("request_id").astype(np.int64)
    check_request_ids(request_id, path)
    arrival_s = column("arrival_s").astype(np.float64)
    check_arrivals(arrival_s, path)
    cost = matrix(objective)
    if cost is None:
        raise UserError(f"{path}: the objective is {objective!r} but the trace lacks '{objective}__<model>' columns")
    # with energy as the objective, cost and energy are the same columns: share one matrix
    outcomes = Outcomes(sat=labels(), cost=cost, energy_j=cost if objective == "energy_j" else matrix("energy_j"),
                        latency_s=matrix("latency_s"), p_true=matrix("p_true"), output_tokens=matrix("output_tokens"))
    groups, group_names = group_codes(src.get("group"), path)
    text_tokens = None
    if "embedding" in src.columns:
        indptr, index, value, dim = embedding_csr(pl.from_arrow(src.get("embedding")))
        source = "embedding"
        if "text" in src.columns:  # only for a predictor given `features: text`; traces with both columns are small
            tokens = src.hashed_text(HASH_DIM)
            text_tokens = tokens if len(tokens[1]) else None
    elif "text" in src.columns and len((tokens := src.hashed_text(HASH_DIM))[1]):
        (indptr, index, value), dim, source = tokens, HASH_DIM, "text"
    else:  # no text, or only empty strings; np.zeros takes untouched (shared zero) pages: no memory for it
        indptr, index, value, dim = np.zeros(src.height + 1, np.int64), np.zeros(0, np.int32), np.zeros(0), HASH_DIM
        source = "none"
    features = RequestFeatures(
        groups=np.ascontiguousarray(groups, dtype=np.int32), group_names=group_names,
        token_indptr=indptr, token_index=index, token_value=value, feature_dim=dim, pred=matrix("pred"),
        prompt_tokens=column("prompt_tokens").astype(np.float64)
        if "prompt_tokens" in src.columns and "prompt_tokens" not in drop else None,
        token_source=source, text_tokens=text_tokens,
    )
    for name in numeric_columns(src.columns, models):  # columns this objective does not use are checked too
        if name not in checked:
            column(name)
    return Trace(path=path, models=list(models), request_id=request_id, arrival_s=arrival_s, features=features,
                 outcomes=outcomes, cost_unit=money_unit if objective == "cost_usd" else cost_unit,
                 provenance=provenance or {})


def _per_model(obj, take):
    """Apply ``take`` to every (T, M) array field of a dataclass; None fields stay None."""
    return replace(obj, **{f.name: np.ascontiguousarray(take(v)) for f in fields(obj)
                           if isinstance(v := getattr(obj, f.name), np.ndarray) and v.ndim == 2})


def subset(trace: Trace, rows: np.ndarray) -> Trace:
    """The trace restricted to ``rows`` (a boolean mask or index array), keeping order and model columns."""
    idx = np.flatnonzero(rows) if rows.dtype == np.bool_ else np.asarray(rows)
    f = trace.features
    indptr, index, value = _csr_rows(f.token_indptr, f.token_index, f.token_value, idx)
    features = replace(_per_model(f, lambda a: a[idx]), groups=f.groups[idx], token_indptr=indptr,
                       token_index=index, token_value=value,
                       prompt_tokens=None if f.prompt_tokens is None else f.prompt_tokens[idx],
                       text_tokens=None if f.text_tokens is None else _csr_rows(*f.text_tokens, idx))
    return replace(trace, request_id=trace.request_id[idx], arrival_s=trace.arrival_s[idx] - trace.arrival_s[idx][0],
                   features=features, outcomes=_per_model(trace.outcomes, lambda a: a[idx]))


def _csr_rows(indptr: np.ndarray, index: np.ndarray, value: np.ndarray, idx: np.ndarray):
    """Rows ``idx`` of a CSR matrix, as (indptr, index, value)."""
    counts = np.diff(indptr)[idx]
    out = np.zeros(len(idx) + 1, np.int64)
    np.cumsum(counts, out=out[1:])
    take = np.concatenate([np.arange(indptr[i], indptr[i + 1]) for i in idx]) if len(idx) else np.zeros(0, np.int64)
    return out, index[take], value[take]


def select_models(trace: Trace, names: list[str]) -> Trace:
    """The trace with only ``names``' columns, in that order (which becomes the cost order)."""
    idx = [trace.models.index(n) for n in names]
    return replace(trace, models=list(names), outcomes=_per_model(trace.outcomes, lambda a: a[:, idx]),
                   features=_per_model(trace.features, lambda a: a[:, idx]))
