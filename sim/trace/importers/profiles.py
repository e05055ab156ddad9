"""Measured GPU profiles: energy per output token and inter-token latency by model x GPU x concurrency.

``python -m sim profile import mlenergy PATH [PATH ...] -o profiles.parquet`` reads any mix of

- the ML.ENERGY leaderboard v2 CSV (``mlenergy_v2_llm_text_generation.csv``): one row per configuration;
  concurrency = ``Max BS (reqs)``, J/token = ``Energy/token (J)``, ITL = ``Avg TPOT (s)``,
  GPUs = ``TP x PP``;
- ML.ENERGY v3 task JSONs (``{"task": ..., "configurations": [...]}``), a file or a directory of them;
  concurrency = ``max_num_seqs``, J/token = ``energy_per_token_joules``, ITL = ``median_itl_ms`` / 1000;
- the ``h200_llama_profile`` directory (``decode.csv`` + ``prefill.csv``), or its ``decode.csv``;
  concurrency = ``batch``, J/token = ``j_per_token``, ITL = ``step_ms`` / 1000; one curve per context
  length (``variant`` ``ctx1024`` / ``ctx4096``).

The output has one row per model_id x gpu x num_gpus x concurrency x (source, task, variant):

| column | meaning |
|---|---|
| ``model_id`` | as the source spells it (``meta-llama/Llama-3.1-8B-Instruct``, ``llama-3.1-8b``) |
| ``gpu`` | short GPU name: ``A100``, ``H100``, ``H200``, ``B200`` |
| ``num_gpus`` | GPUs serving one replica (tensor x pipeline parallel) |
| ``concurrency`` | configured batch size (max concurrent sequences) |
| ``energy_per_token_j`` | GPU energy per output token, J (all ``num_gpus`` GPUs) |
| ``itl_s`` | inter-token latency, s |
| ``avg_batch_size`` | measured mean batch size (ML.ENERGY), else null |
| ``prefill_s_per_token``, ``prefill_j_per_token`` | prefill cost per prompt token (H200 profile only; null elsewhere) |
| ``source``, ``task``, ``variant`` | where the row came from and the serving configuration |
| ``n_configs`` | measured configurations averaged into this row (ML.ENERGY repeats a few) |

Prefill is stored as per-token columns on every row of the model (not a separate table). For the H200
profile it is the pooled per-token cost of the 512- and 2048-token rows (total time / total tokens);
its README says the 128-token rows are launch-bound. ML.ENERGY's per-token energy already amortises prefill,
so its prefill columns are null and prefill costs nothing extra.

:class:`ProfileCurve` interpolates linearly between measured batch sizes and clamps at both ends.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from sim.atomic import atomic_path
from sim.errors import UserError
from sim.trace.importers._common import first_line, read_frame, require_columns, short_list

META_KEY = b"messplus_sim_profiles"
FORMAT_VERSION = 1

COLUMNS = {
    "model_id": pl.Utf8, "gpu": pl.Utf8, "num_gpus": pl.Int64, "concurrency": pl.Int64,
    "energy_per_token_j": pl.Float64, "itl_s": pl.Float64, "avg_batch_size": pl.Float64,
    "prefill_s_per_token": pl.Float64, "prefill_j_per_token": pl.Float64,
    "source": pl.Utf8, "task": pl.Utf8, "variant": pl.Utf8, "n_configs": pl.Int64,
}
KEY = ["model_id", "gpu", "num_gpus", "source", "task", "variant"]

V2_COLUMNS = ["Model", "GPU", "TP", "PP", "Energy/token (J)", "Avg TPOT (s)", "Max BS (reqs)"]
V3_KEYS = ["model_id", "gpu_model", "num_gpus", "max_num_seqs", "energy_per_token_joules", "median_itl_ms"]
H200_DECODE = ["model", "batch", "ctx", "step_ms", "j_per_token"]
H200_PREFILL = ["model", "prompt_tokens", "ms", "j"]


def short_gpu(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``H100``; ``NVIDIA A100-SXM4-40GB`` -> ``A100``; ``b200`` -> ``B200``."""
    m = re.search(r"\b([A-Za-z]\d{2,4})(?=\b|[-_ ])", str(name))
    return m.group(1).upper() if m else str(name).strip().upper()


# ---------------------------------------------------------------------------------------------- readers


def _v2(path: Path) -> pl.DataFrame:
    where = f"ML.ENERGY v2 CSV {path}"
    df = read_frame(path, "ML.ENERGY v2 CSV")
    require_columns(df, V2_COLUMNS, where)
    _check_numeric(df, V2_COLUMNS[2:], where)
    return pl.DataFrame({
        "model_id": df["Model"].cast(pl.Utf8),
        "gpu": [short_gpu(g) for g in df["GPU"].to_list()],
        "num_gpus": (df["TP"] * df["PP"]).cast(pl.Int64),
        "concurrency": df["Max BS (reqs)"].cast(pl.Int64),
        "energy_per_token_j": df["Energy/token (J)"].cast(pl.Float64),
        "itl_s": df["Avg TPOT (s)"].cast(pl.Float64),
        "avg_batch_size": df["Avg BS (reqs)"].cast(pl.Float64) if "Avg BS (reqs)" in df.columns else None,
        "prefill_s_per_token": None, "prefill_j_per_token": None,
        "source": f"mlenergy_v2:{path.name}",
        "task": df["task"].cast(pl.Utf8) if "task" in df.columns else "unknown",
        "variant": [f"tp{t}+pp{p}" for t, p in zip(df["TP"].to_list(), df["PP"].to_list())],
    }, schema_overrides={k: v for k, v in COLUMNS.items() if k != "n_configs"})


def _v3(path: Path) -> pl.DataFrame:
    where = f"ML.ENERGY v3 task JSON {path}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: not valid JSON ({first_line(e)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("configurations"), list):
        raise UserError(f"{where}: expected an object with a 'configurations' list")
    confs = doc["configurations"]
    if not confs:
        raise UserError(f"{where}: 'configurations' is empty")
    rows = []
    for i, c in enumerate(confs):
        if not isinstance(c, dict):
            raise UserError(f"{where}: configuration {i} is not an object")
        missing = [k for k in V3_KEYS if c.get(k) is None]
        if missing:
            raise UserError(f"{where}: configuration {i} lacks {missing}")
        for k in V3_KEYS[2:]:
            if not isinstance(c[k], (int, float)) or isinstance(c[k], bool):
                raise UserError(f"{where}: configuration {i}: {k!r} must be a number, got {c[k]!r}")
        rows.append({
            "model_id": str(c["model_id"]), "gpu": short_gpu(c["gpu_model"]), "num_gpus": int(c["num_gpus"]),
            "concurrency": int(c["max_num_seqs"]), "energy_per_token_j": float(c["energy_per_token_joules"]),
            "itl_s": float(c["median_itl_ms"]) / 1000.0,
            "avg_batch_size": float(c["avg_batch_size"]) if isinstance(c.get("avg_batch_size"), (int, float)) else None,
            "prefill_s_per_token": None, "prefill_j_per_token": None,
            "source": f"mlenergy_v3:{path.name}", "task": str(doc.get("task") or path.stem),
            "variant": "tp{}+ep{}+dp{}+{}".format(c.get("tensor_parallel", "?"), c.get("expert_parallel", "?"),
                                                  c.get("data_parallel", "?"), c.get("weight_precision", "?")),
        })
    return pl.DataFrame(rows, schema={k: v for k, v in COLUMNS.items() if k != "n_configs"})


def _h200(decode: Path, prefill: Path | None) -> pl.DataFrame:
    where = f"H200 decode profile {decode}"
    df = read_frame(decode, "H200 decode profile")
    require_columns(df, H200_DECODE, where)
    _check_numeric(df, H200_DECODE[1:], where)
    pre: dict[str, tuple[float, float]] = {}
    if prefill is not None and prefill.exists():
        pw = f"H200 prefill profile {prefill}"
        p = read_frame(prefill, "H200 prefill profile")
        require_columns(p, H200_PREFILL, pw)
        _check_numeric(p, H200_PREFILL[1:], pw)
        # rows of >= 512 prompt tokens (the 128-token rows are launch-bound, see the profile's README)
        use = p.filter(pl.col("prompt_tokens") >= 512)
        if use.height == 0:
            use = p
        agg = use.group_by("model").agg(pl.col("ms").sum(), pl.col("j").sum(), pl.col("prompt_tokens").sum())
        for m, ms, j, tok in agg.iter_rows():
            pre[m] = (ms / 1000.0 / tok, j / tok)
    models = df["model"].cast(pl.Utf8).to_list()
    return pl.DataFrame({
        "model_id": models, "gpu": "H200", "num_gpus": 1,
        "concurrency": df["batch"].cast(pl.Int64),
        "energy_per_token_j": df["j_per_token"].cast(pl.Float64),
        "itl_s": df["step_ms"].cast(pl.Float64) / 1000.0,
        "avg_batch_size": None,
        "prefill_s_per_token": [pre.get(m, (None, None))[0] for m in models],
        "prefill_j_per_token": [pre.get(m, (None, None))[1] for m in models],
        "source": f"h200_llama_profile:{decode.name}", "task": "decode",
        "variant": [f"ctx{c}" for c in df["ctx"].to_list()],
    }, schema_overrides={k: v for k, v in COLUMNS.items() if k != "n_configs"})


def _check_numeric(df: pl.DataFrame, names: list[str], where: str) -> None:
    for n in names:
        if n in df.columns and not df[n].dtype.is_numeric():
            bad = df[n].cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False).is_null() & df[n].is_not_null()
            row = int(bad.arg_true()[0]) if bad.any() else 0
            raise UserError(f"{where}: column {n!r} must be numeric, row {row} has {df[n][row]!r}")
        if n in df.columns and df[n].null_count():
            raise UserError(f"{where}: column {n!r} has {df[n].null_count()} missing value(s)")


def _read_source(path: Path) -> list[pl.DataFrame]:
    if not path.exists():
        raise UserError(f"profile source {path}: no such file or directory")
    if path.is_dir():
        if (path / "decode.csv").exists():
            return [_h200(path / "decode.csv", path / "prefill.csv")]
        jsons = sorted(path.glob("*.json"))
        csvs = [c for c in sorted(path.glob("*.csv")) if _looks_v2(c)]
        if not jsons and not csvs:
            raise UserError(f"profile source {path}: a directory without decode.csv, ML.ENERGY v3 task JSONs or a v2 CSV")
        return [_v3(j) for j in jsons if j.name != "info.json"] + [_v2(c) for c in csvs]
    if path.stat().st_size == 0:
        raise UserError(f"profile source {path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return [_v3(path)]
    if suffix == ".csv":
        header = path.open(encoding="utf-8", errors="replace").readline()
        cols = [c.strip() for c in header.strip().split(",")]
        if all(c in cols for c in H200_DECODE):
            return [_h200(path, path.parent / "prefill.csv")]
        if _looks_v2(path):
            return [_v2(path)]
        raise UserError(f"profile source {path}: not an ML.ENERGY v2 CSV (needs {V2_COLUMNS}) "
                        f"nor an H200 decode.csv (needs {H200_DECODE})")
    raise UserError(f"profile source {path}: expected an ML.ENERGY v2 .csv, a v3 task .json, a directory of them, "
                    f"or the h200_llama_profile directory")


def _looks_v2(path: Path) -> bool:
    header = path.open(encoding="utf-8", errors="replace").readline()
    return all(c in header for c in ("Energy/token (J)", "Max BS (reqs)"))


def import_profiles(paths: list[str | Path]) -> pl.DataFrame:
    """Parse every source and return the normalised profile table (duplicate measurements averaged)."""
    if not paths:
        raise UserError("profile import: give at least one PATH")
    frames: list[pl.DataFrame] = []
    for p in paths:
        frames.extend(_read_source(Path(p)))
    df = pl.concat(frames, how="vertical")
    bad = df.filter(~(pl.col("energy_per_token_j").is_finite() & (pl.col("energy_per_token_j") > 0)
                      & pl.col("itl_s").is_finite() & (pl.col("itl_s") > 0) & (pl.col("concurrency") > 0)))
    if bad.height:
        r = bad.row(0, named=True)
        raise UserError(f"profile {r['source']}: model {r['model_id']!r} on {r['gpu']} at concurrency {r['concurrency']} "
                        f"has a non-positive or non-finite energy/token or ITL")
    df = (df.group_by(KEY + ["concurrency"], maintain_order=True)
            .agg(pl.col("energy_per_token_j").mean(), pl.col("itl_s").mean(), pl.col("avg_batch_size").mean(),
                 pl.col("prefill_s_per_token").first(), pl.col("prefill_j_per_token").first(),
                 pl.len().cast(pl.Int64).alias("n_configs"))
            .select(list(COLUMNS))
            .sort(["model_id", "gpu", "num_gpus", "source", "task", "variant", "concurrency"]))
    return df


def write_profiles(df: pl.DataFrame, out: str | Path, sources: list[str]) -> None:
    table = df.to_arrow()
    meta = {"format_version": FORMAT_VERSION, "provenance": {"importer": "mlenergy", "sources": sources}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def load_profiles(path: str | Path | list) -> pl.DataFrame:
    """A profile table: a Parquet file written by ``profile import``, or raw sources parsed on the fly."""
    if isinstance(path, (list, tuple)):
        return import_profiles(list(path))
    p = Path(path)
    if p.suffix.lower() not in (".parquet", ".pq"):
        return import_profiles([p])
    if not p.exists():
        raise UserError(f"profiles {path}: no such file")
    if p.is_dir():
        raise UserError(f"profiles {path}: is a directory, expected a Parquet file")
    try:
        df = pl.read_parquet(p)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise UserError(f"profiles {path}: not a readable Parquet file ({first_line(e)})") from None
    need = ["model_id", "gpu", "num_gpus", "concurrency", "energy_per_token_j", "itl_s"]
    require_columns(df, need, f"profiles {path}")
    for name, dtype in COLUMNS.items():
        if name not in df.columns:
            df = df.with_columns(pl.lit(None if name not in ("source", "task", "variant") else "", dtype=dtype).alias(name))
    if df.height == 0:
        raise UserError(f"profiles {path}: the table has zero rows")
    return df.select(list(COLUMNS))


# ---------------------------------------------------------------------------------------------- curves


def _model_matches(ids: pl.Series, model_id: str) -> pl.Series:
    """Exact id; failing that, case-insensitive on the full id or on the part after the last '/'."""
    exact = ids == model_id
    if exact.any():
        return exact
    want = model_id.lower()
    low = ids.str.to_lowercase()
    return (low == want) | (low.str.split("/").list.last() == want.split("/")[-1])


@dataclass(frozen=True)
class ProfileCurve:
    """One model on one GPU configuration: J/token and ITL as functions of concurrency.

    Values between measured batch sizes are interpolated linearly; outside them they are clamped to the
    nearest measured point (so concurrency 1 on an ML.ENERGY curve that starts at batch 8 uses batch 8).
    """

    model_id: str
    gpu: str
    num_gpus: int
    concurrency: np.ndarray
    energy_j: np.ndarray  # J per output token at each measured concurrency
    itl: np.ndarray  # seconds per output token at each measured concurrency
    prefill_s_per_token: float | None = None
    prefill_j_per_token: float | None = None
    source: str = ""
    task: str = ""
    variant: str = ""
    scaled: dict = field(default_factory=dict)

    def __post_init__(self):
        c = np.asarray(self.concurrency, dtype=np.float64)
        if c.size < 2:
            raise UserError(f"profile for model {self.model_id!r} on {self.gpu} ({self.source} {self.task} {self.variant}) "
                            f"has {c.size} concurrency point(s); at least 2 are needed to interpolate")
        order = np.argsort(c, kind="stable")
        object.__setattr__(self, "concurrency", c[order])
        object.__setattr__(self, "energy_j", np.asarray(self.energy_j, dtype=np.float64)[order])
        object.__setattr__(self, "itl", np.asarray(self.itl, dtype=np.float64)[order])

    # -- construction
    @classmethod
    def select(cls, profiles: pl.DataFrame, model_id: str, gpu: str, *, num_gpus: int | None = None,
               task: str | None = None, variant: str | None = None, source: str | None = None) -> "ProfileCurve":
        """Pick one configuration of ``model_id`` on ``gpu`` from a profile table.

        When several configurations match (tasks, parallelism, context lengths), the one with the fewest GPUs
        wins, then the one with the most concurrency points, then the first by (source, task, variant).
        """
        where = f"profile: model {model_id!r} on GPU {gpu!r}"
        g = short_gpu(gpu)
        on_gpu = profiles.filter(pl.col("gpu").str.to_uppercase() == g)
        if on_gpu.height == 0:
            raise UserError(f"{where}: no measurements on that GPU (GPUs in the table: {short_list(sorted(profiles['gpu'].unique().to_list()))})")
        rows = on_gpu.filter(_model_matches(on_gpu["model_id"], model_id))
        if rows.height == 0:
            names = sorted(on_gpu["model_id"].unique().to_list())
            raise UserError(f"{where}: model not measured on that GPU (measured there: {short_list(names)})")
        if rows["model_id"].n_unique() > 1:
            raise UserError(f"{where}: ambiguous, matches {sorted(rows['model_id'].unique().to_list())}; give the full id")
        for name, value in (("num_gpus", num_gpus), ("task", task), ("variant", variant), ("source", source)):
            if value is not None:
                sub = rows.filter(pl.col(name) == value)
                if sub.height == 0:
                    raise UserError(f"{where}: no configuration with {name}={value!r} "
                                    f"(available: {sorted(set(map(str, rows[name].to_list())))})")
                rows = sub
        groups = (rows.group_by(KEY).agg(pl.len().alias("points"))
                  .sort(["num_gpus", "points", "source", "task", "variant"], descending=[False, True, False, False, False]))
        key = groups.row(0, named=True)
        sel = rows.filter(*(pl.col(k) == key[k] for k in KEY)).sort("concurrency")
        pre_s = sel["prefill_s_per_token"].drop_nulls()
        pre_j = sel["prefill_j_per_token"].drop_nulls()
        return cls(model_id=key["model_id"], gpu=key["gpu"], num_gpus=int(key["num_gpus"]),
                   concurrency=sel["concurrency"].to_numpy(), energy_j=sel["energy_per_token_j"].to_numpy(),
                   itl=sel["itl_s"].to_numpy(),
                   prefill_s_per_token=float(pre_s[0]) if len(pre_s) else None,
                   prefill_j_per_token=float(pre_j[0]) if len(pre_j) else None,
                   source=key["source"] or "", task=key["task"] or "", variant=key["variant"] or "")

    def scale_from(self, factor: float, *, model_id: str | None = None, itl_factor: float | None = None) -> "ProfileCurve":
        """A curve for an unmeasured model derived from this one: J/token (and prefill J) x ``factor``,
        ITL (and prefill time) x ``itl_factor`` (default: the same factor)."""
        itl_factor = factor if itl_factor is None else itl_factor
        for name, v in (("factor", factor), ("itl_factor", itl_factor)):
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise UserError(f"profile scale_from for {model_id or self.model_id!r}: {name} must be a positive number, got {v!r}")
        return replace(
            self, model_id=model_id or f"{self.model_id}*{factor:g}",
            energy_j=self.energy_j * factor, itl=self.itl * itl_factor,
            prefill_s_per_token=None if self.prefill_s_per_token is None else self.prefill_s_per_token * itl_factor,
            prefill_j_per_token=None if self.prefill_j_per_token is None else self.prefill_j_per_token * factor,
            scaled={"from": self.model_id, "factor": float(factor), "itl_factor": float(itl_factor)},
        )

    # -- evaluation (scalars in, float out; arrays in, arrays out)
    def itl_s(self, concurrency):
        return _interp(concurrency, self.concurrency, self.itl)

    def energy_per_token_j(self, concurrency):
        return _interp(concurrency, self.concurrency, self.energy_j)

    def prefill_s(self, prompt_tokens):
        return np.asarray(prompt_tokens, dtype=np.float64) * (self.prefill_s_per_token or 0.0)

    def prefill_j(self, prompt_tokens):
        return np.asarray(prompt_tokens, dtype=np.float64) * (self.prefill_j_per_token or 0.0)

    def service_time_s(self, prompt_tokens, output_tokens, concurrency=1):
        """prefill + output tokens x ITL at ``concurrency``."""
        return self.prefill_s(prompt_tokens) + np.asarray(output_tokens, dtype=np.float64) * self.itl_s(concurrency)

    def request_energy_j(self, prompt_tokens, output_tokens, concurrency=1):
        """prefill J + output tokens x J/token at ``concurrency``."""
        return self.prefill_j(prompt_tokens) + np.asarray(output_tokens, dtype=np.float64) * self.energy_per_token_j(concurrency)

    def describe(self) -> dict:
        return {"model_id": self.model_id, "gpu": self.gpu, "num_gpus": self.num_gpus, "source": self.source,
                "task": self.task, "variant": self.variant,
                "concurrency": [int(c) if float(c).is_integer() else float(c) for c in self.concurrency],
                "prefill_measured": self.prefill_s_per_token is not None, **({"scaled": self.scaled} if self.scaled else {})}


def _interp(x, xp: np.ndarray, fp: np.ndarray):
    arr = np.asarray(x, dtype=np.float64)
    out = np.interp(arr, xp, fp)  # clamps to fp[0] / fp[-1] outside [xp[0], xp[-1]]
    return float(out) if arr.ndim == 0 else out


def get_curve(profiles: pl.DataFrame | str | Path, model_id: str, gpu: str, *, scale_from: dict | None = None,
              **select) -> ProfileCurve:
    """Convenience for scenario code: ``profile: {model_id, gpu, scale_from: {model_id, factor}}``.

    With ``scale_from`` the curve of ``scale_from['model_id']`` is selected and scaled by ``factor``
    (``itl_factor`` optional), and the result carries the name ``model_id``.
    """
    table = profiles if isinstance(profiles, pl.DataFrame) else load_profiles(profiles)
    if scale_from:
        if "model_id" not in scale_from or "factor" not in scale_from:
            raise UserError(f"profile for {model_id!r}: scale_from needs 'model_id' and 'factor'")
        base = ProfileCurve.select(table, scale_from["model_id"], gpu, **select)
        return base.scale_from(scale_from["factor"], model_id=model_id, itl_factor=scale_from.get("itl_factor"))
    return ProfileCurve.select(table, model_id, gpu, **select)
