"""Text at scale (docs/performance.md): synthetic text drawn a chunk at a time and hashed without strings, and
texts hashed a chunk or a row group at a time, give exactly what drawing and hashing everything at once gave."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from sim.config import SynthTrace
from sim.rng import stream
from sim.trace import format as fmt
from sim.trace import synth
from sim.trace.synth import synth_columns, synth_frame

GROUPS = {
    "easy": {"difficulty_mean": -0.5, "accuracy": {"s": 0.5, "l": 0.8}, "energy_j": {"s": 10.0, "l": 100.0}},
    "hard": {"difficulty_mean": 0.7, "accuracy": {"s": 0.2, "l": 0.45}, "energy_j": {"s": 12.0, "l": 120.0}},
}


def spec(**kw) -> SynthTrace:
    return SynthTrace.model_validate({"requests": 3000, "groups": GROUPS, **kw})


def text_drawn_whole(sp: SynthTrace, g: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> list[str]:
    """The previous generator, kept as the reference: every (T, tokens) block drawn at once, words joined in Python."""
    k, n = sp.text.tokens, len(g)
    informative = rng.random((n, k)) < sp.text.informative
    is_group = rng.random((n, k)) < 0.5
    noisy_d = d[:, None] + rng.normal(0, 0.5 * sp.difficulty_sigma, (n, k))
    d_bin = np.clip(np.floor(noisy_d / (0.5 * sp.difficulty_sigma)), -9, 9).astype(np.int64)
    noise = np.minimum(rng.zipf(1.3, (n, k)) - 1, sp.text.vocabulary - 1)
    ids = np.where(informative, np.where(is_group, sp.text.vocabulary + g[:, None],
                                         sp.text.vocabulary + len(sp.groups) + 9 + d_bin), noise)
    vocab = np.array([f"w{i}" for i in range(sp.text.vocabulary)] + [f"topic{i}" for i in range(len(sp.groups))]
                     + [f"level{i - 9}" for i in range(19)], dtype=object)
    return [" ".join(row) for row in vocab[ids]]


@pytest.mark.parametrize("chunk_rows", [7, 1000, 1 << 16])
@pytest.mark.parametrize("tokens", [1, 24])
def test_chunked_text_is_the_text_drawn_whole(monkeypatch, chunk_rows, tokens):
    monkeypatch.setattr(synth, "TEXT_CHUNK_ROWS", chunk_rows)
    sp = spec(text={"tokens": tokens, "vocabulary": 50})
    rng, reference_rng = stream(5, "t"), stream(5, "t")
    g = np.arange(sp.requests) % 2
    d = reference_rng.standard_normal(sp.requests)
    rng.standard_normal(sp.requests)
    text = synth.synth_text(sp, g, d, rng)
    expected = text_drawn_whole(sp, g, d, reference_rng)
    assert text.strings().to_pylist() == expected
    # the generator is left where drawing everything at once leaves it
    assert rng.bit_generator.state == reference_rng.bit_generator.state
    indptr, index, value = text.hashed(fmt.HASH_DIM)
    ref_indptr, ref_index, ref_value = fmt.hash_tokens(pl.Series(expected))
    assert np.array_equal(indptr, ref_indptr) and np.array_equal(index, ref_index)
    assert np.array_equal(value, ref_value) and value.dtype == np.float64


def test_synthetic_text_is_not_stored_per_token():
    cols, _ = synth_columns(spec(requests=50_000), seed=1)
    indptr, index, value = cols["text"].hashed(fmt.HASH_DIM)
    assert index.dtype == np.int16 and index.size == 50_000 * 24
    assert value.strides == (0,) and not value.flags.writeable  # one float for every token: rows are all 24 long
    assert np.all(value == 1 / np.sqrt(24))


def test_hashing_in_chunks_matches_hashing_at_once(monkeypatch):
    texts = pl.Series(["The cat  sat", None, "", "a B c d e", "x", "cat CAT", " lone "] * 13)
    whole = fmt.hash_tokens(texts)
    monkeypatch.setattr(fmt, "HASH_CHUNK_ROWS", 3)
    chunked = fmt.hash_tokens(texts)
    for a, b in zip(whole, chunked):
        assert np.array_equal(a, b)
    indptr, index, value = chunked
    assert value.strides != (0,)  # rows of different lengths: one weight per token
    lengths = np.diff(indptr)
    assert np.allclose(np.add.reduceat(value**2, indptr[:-1][lengths > 0]), 1.0)  # unit-norm rows
    assert index.tolist()[:3] == [fmt.token_hash(w) for w in ("the", "cat", "sat")]


def test_a_trace_file_hashed_by_row_group_matches_the_frame(tmp_path):
    df, models = synth_frame(spec(requests=5000, text={"tokens": 5}), seed=4)
    df = df.with_columns(pl.when(pl.col("request_id") % 7 == 0).then(pl.lit("odd one out")).otherwise(pl.col("text"))
                         .alias("text"))
    path = tmp_path / "t.parquet"
    fmt.write_trace(df, path, models, {})
    pq.write_table(pq.read_table(path), path, row_group_size=999)  # several row groups, metadata kept
    assert pq.ParquetFile(path).num_row_groups > 1
    from_file, from_memory = fmt.load_trace(path).features, fmt.from_frame(df, models).features
    for name in ("token_indptr", "token_index", "token_value"):
        assert np.array_equal(getattr(from_file, name), getattr(from_memory, name))
    assert from_file.token_index.dtype == np.int16


def test_an_all_empty_text_column_is_no_text():
    df, models = synth_frame(spec(requests=100), seed=4)
    trace = fmt.from_frame(df.with_columns(pl.lit("").alias("text")), models)
    assert trace.features.token_index.size == 0 and np.all(trace.features.token_indptr == 0)


@pytest.mark.parametrize("extra", [{}, {"energy_cv": 0.0, "mix": "sequential"},
                                   {"output_tokens": {"s": 50.0, "l": 300.0}, "text": {"tokens": 0}}])
def test_the_trace_written_by_row_groups_is_the_trace_made_whole(tmp_path, monkeypatch, extra):
    sp = spec(requests=2500, **extra)
    whole, models = synth_frame(sp, seed=9)
    fmt.write_trace(whole, tmp_path / "whole.parquet", models, {"p": 1})
    monkeypatch.setattr(synth, "WRITE_CHUNK_ROWS", 999)  # chunks of text and of the other columns do not line up
    monkeypatch.setattr(synth, "TEXT_CHUNK_ROWS", 400)
    synth.write_synth_trace(sp, 9, tmp_path / "chunked.parquet", {"p": 1})
    chunked = pq.read_table(tmp_path / "chunked.parquet")
    assert pq.ParquetFile(tmp_path / "chunked.parquet").num_row_groups == 3
    assert chunked.equals(pq.read_table(tmp_path / "whole.parquet"))
    assert chunked.schema.metadata == pq.read_table(tmp_path / "whole.parquet").schema.metadata
    assert ("text" in chunked.column_names) == (sp.text.tokens > 0)


def test_a_chunked_trace_with_a_bad_chunk_writes_nothing(tmp_path):
    df, models = synth_frame(spec(requests=100), seed=1)
    late = df.with_columns(pl.col("request_id") + 100)  # the second chunk starts again at time 0
    out = tmp_path / "t.parquet"
    with pytest.raises(fmt.UserError, match="arrivals are not sorted"):
        fmt.write_trace_chunks([df, late], out, models, {})
    assert not out.exists() and not list(tmp_path.iterdir())
