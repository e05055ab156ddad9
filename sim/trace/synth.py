"""Synthetic traces with a latent-difficulty outcome model.

Each request has a difficulty d ~ N(mu_group, sigma). Model m satisfies it with probability
sigmoid(a (theta_{m,group} - d)), so a hard request is hard for every model and correctness is correlated
across the zoo, as it is on real benchmarks. theta is calibrated per group so that the mean of p_true over
the drawn requests equals each target accuracy exactly; labels are then Bernoulli(p_true), independent
across models given d. Energies and latencies share a per-request length factor (a long prompt costs every
model more) times a per-model factor, both mean-one lognormal.

Text is a bag of tokens: some name the group, some a noisy bin of the difficulty, the rest are noise words,
so a text predictor has something real, but not everything, to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from sim.config import FileArrivals, GammaArrivals, PoissonArrivals, SynthTrace
from sim.errors import UserError
from sim.rng import stream
from sim.trace.format import col, index_dtype, token_csr, token_hash, write_trace_chunks


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def mean_one_lognormal(rng: np.random.Generator, cv: float, size) -> np.ndarray:
    if cv == 0:
        return np.ones(size)
    s2 = np.log1p(cv * cv)
    return np.exp(rng.normal(-s2 / 2, np.sqrt(s2), size))


def arrival_times(spec, n: int, seed: int) -> np.ndarray:
    rng = stream(seed, "arrivals")
    if isinstance(spec, PoissonArrivals):
        return np.cumsum(rng.exponential(1.0 / spec.rate, n))
    if isinstance(spec, GammaArrivals):
        shape = 1.0 / spec.cv**2
        return np.cumsum(rng.gamma(shape, 1.0 / (spec.rate * shape), n))
    if isinstance(spec, FileArrivals):
        return file_arrivals(spec, n)
    raise TypeError(spec)


def file_arrivals(spec: FileArrivals, n: int) -> np.ndarray:
    p = Path(spec.path)
    if not p.is_file():
        raise UserError(f"arrivals file {spec.path}: no such file")
    try:
        df = pl.read_parquet(p) if p.suffix == ".parquet" else pl.read_csv(p)
    except Exception as e:  # polars raises many kinds; all mean the same to the user
        raise UserError(f"arrivals file {spec.path}: cannot read ({str(e).splitlines()[0]})") from None
    if spec.column not in df.columns:
        raise UserError(f"arrivals file {spec.path}: no column {spec.column!r} (has {df.columns})")
    t = df[spec.column].cast(pl.Float64, strict=False).to_numpy()
    if len(t) < n:
        raise UserError(f"arrivals file {spec.path}: has {len(t)} timestamps, the scenario asks for {n} requests")
    t = t[:n]
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0) or t[0] < 0:
        raise UserError(f"arrivals file {spec.path}: timestamps must be finite, non-negative and sorted")
    return (t - t[0]) * spec.time_scale


def calibrate_theta(d: np.ndarray, target: float, a: float) -> float:
    """theta such that mean(sigmoid(a(theta - d))) == target, by bisection (monotone in theta)."""
    lo, hi = float(d.min()) - 60.0 / a, float(d.max()) + 60.0 / a
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if sigmoid(a * (mid - d)).mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def group_assignment(spec: SynthTrace, rng: np.random.Generator) -> np.ndarray:
    weights = np.array([g.weight for g in spec.groups.values()], float)
    counts = np.floor(spec.requests * weights / weights.sum()).astype(np.int64)
    counts[: spec.requests - counts.sum()] += 1  # hand out the rounding remainder, first groups first
    g = np.repeat(np.arange(len(counts)), counts)
    return g if spec.mix == "sequential" else rng.permutation(g)


WRITE_CHUNK_ROWS = 1 << 17  # rows synthesised and written at a time by `trace synth` (one row group each)


def synth_frame(spec: SynthTrace, seed: int) -> tuple[pl.DataFrame, list[str]]:
    """The synthetic trace as a table (the trace format of traces/README.md)."""
    plan = SynthPlan(spec, seed)
    return plan.frame(next(plan.chunks(spec.requests))), plan.models


def synth_columns(spec: SynthTrace, seed: int) -> tuple[dict, list[str]]:
    """The synthetic trace's columns, by name; without text (``tokens: 0``) there is no ``text`` column, ``text``
    is a :class:`SynthText` (token ids, made into strings or hashed a chunk at a time), and ``group`` is
    dictionary-encoded (an Arrow ``DictionaryArray``)."""
    plan = SynthPlan(spec, seed)
    cols = next(plan.chunks(spec.requests, text=False))
    if plan.text is not None:  # the text goes in after `group`, where the trace format puts it
        cols = {**dict(list(cols.items())[:3]), "text": plan.text, **dict(list(cols.items())[3:])}
    return cols, plan.models


def write_synth_trace(spec: SynthTrace, seed: int, path, provenance: dict) -> None:
    """Write the synthetic trace a row group at a time (``trace synth``): only the per-request difficulty, group
    and arrival time are held for the whole trace, so a 10^7-request trace with text needs well under 1 GB. The
    file is the one ``write_trace(synth_frame(...))`` writes."""
    plan = SynthPlan(spec, seed)
    write_trace_chunks((plan.frame(cols) for cols in plan.chunks(WRITE_CHUNK_ROWS)), path, plan.models, provenance)


class SynthPlan:
    """The random draws of a synthetic trace, made in the order of drawing each column whole, but a chunk of rows
    at a time.

    Drawing from one generator, column after column, fixes which draws each column gets. The plan draws what
    needs the whole trace (group assignment, difficulty, arrivals), then records the generator's state at the
    start of every other column's block and moves past it (uniform doubles: one 64-bit draw each, so by
    ``advance``; normal draws vary in count, so by drawing them a chunk at a time and dropping them).
    :meth:`chunks` replays every block from its recorded state, so any chunk size gives the same numbers.
    """

    def __init__(self, spec: SynthTrace, seed: int):
        self.spec, self.seed, self.models = spec, seed, spec.models
        n, self.group_names = spec.requests, list(spec.groups)
        rng = stream(seed, "synth")
        self.g = group_assignment(spec, rng)
        mu = np.array([spec.groups[name].difficulty_mean for name in self.group_names])
        self.d = mu[self.g] + spec.difficulty_sigma * rng.standard_normal(n)
        self.states: dict = {}

        def block(name, cv=None):  # cv None: uniform doubles; 0: no draws (all ones); else mean-one lognormal
            if cv == 0:
                return
            self.states[name] = rng.bit_generator.state
            if cv is None:
                rng.bit_generator.advance(n)
            else:
                for r0 in range(0, n, TEXT_CHUNK_ROWS):
                    rng.standard_normal(min(TEXT_CHUNK_ROWS, n - r0))

        block("length", spec.energy_cv)
        block("lat_length", spec.latency_cv)
        self.theta = {}
        for m in self.models:
            block(("sat", m))
            block(("energy_j", m), spec.energy_cv / 2)
            block(("latency_s", m), spec.latency_cv / 2)
            if spec.output_tokens:
                block(("output_tokens", m), spec.latency_cv / 2)
            for gi, name in enumerate(self.group_names):
                idx = np.flatnonzero(self.g == gi)
                if len(idx):
                    self.theta[m, gi] = calibrate_theta(self.d[idx], spec.groups[name].accuracy[m], spec.slope)
        self.text = synth_text(spec, self.g, self.d, rng) if spec.text.tokens else None
        self.arrival_s = arrival_times(spec.arrivals, n, seed)

    def chunks(self, rows: int, text: bool = True):
        """The trace's columns for rows [r0, r0 + rows), chunk after chunk (``text``: with the ids as strings)."""
        spec, n = self.spec, self.spec.requests
        gens = {}
        for name, state in self.states.items():
            gens[name] = np.random.Generator(np.random.PCG64())
            gens[name].bit_generator.state = state
        texts = self.text.strings_by_chunk(rows) if text and self.text is not None else None

        def lognormal(name, cv, size):
            return mean_one_lognormal(gens[name], cv, size) if cv != 0 else np.ones(size)

        for r0 in range(0, n, rows):
            r1 = min(r0 + rows, n)
            size, g, d = r1 - r0, self.g[r0:r1], self.d[r0:r1]
            length = lognormal("length", spec.energy_cv, size)
            lat_length = lognormal("lat_length", spec.latency_cv, size)
            cols: dict = {}
            for m in self.models:
                p, e_mean, l_mean = np.empty(size), np.empty(size), np.empty(size)
                for gi, name in enumerate(self.group_names):
                    idx = np.flatnonzero(g == gi)
                    if len(idx) == 0:
                        continue
                    gs = spec.groups[name]
                    p[idx] = sigmoid(spec.slope * (self.theta[m, gi] - d[idx]))
                    e_mean[idx] = gs.energy_j[m]
                    l_mean[idx] = (gs.latency_s or spec.latency_s or {}).get(m, 0.0)
                cols[col("sat", m)] = (gens["sat", m].random(size) < p).astype(np.float64)
                cols[col("p_true", m)] = p
                cols[col("energy_j", m)] = e_mean * length * lognormal(("energy_j", m), spec.energy_cv / 2, size)
                cols[col("latency_s", m)] = l_mean * lat_length * lognormal(("latency_s", m), spec.latency_cv / 2, size)
                if spec.output_tokens:
                    tokens = spec.output_tokens[m] * lat_length * lognormal(("output_tokens", m), spec.latency_cv / 2,
                                                                            size)
                    cols[col("output_tokens", m)] = np.maximum(1, np.rint(tokens)).astype(np.int64)
            head = {
                "request_id": np.arange(r0, r1, dtype=np.int64),
                "arrival_s": self.arrival_s[r0:r1],
                # group names by code: no Python string per request (10^7-request traces)
                "group": pa.DictionaryArray.from_arrays(pa.array(g.astype(np.int32)),
                                                        pa.array(self.group_names, pa.string())),
                **({"text": next(texts)} if texts is not None else {}),
                "prompt_tokens": np.maximum(1, np.rint(200 * length)).astype(np.int64),
            }
            yield {**head, **cols}

    @staticmethod
    def frame(cols: dict) -> pl.DataFrame:
        """A chunk as a trace table: ``group`` and ``text`` as strings (the trace format)."""
        cols = dict(cols)
        cols["group"] = pl.from_arrow(cols["group"]).cast(pl.Utf8)
        if "text" in cols:
            cols["text"] = pl.from_arrow(cols["text"])
        return pl.DataFrame(cols)


TEXT_CHUNK_ROWS = 1 << 16  # rows of token ids drawn at a time: (65,536 x tokens) temporaries, not (T x tokens)


@dataclass
class SynthText:
    """The synthetic text as token ids, drawn a chunk of rows at a time (never a Python object per token).

    ``chunks()`` yields (rows, tokens) int64 arrays of ids into ``vocabulary``; every call replays the same draws.
    The draws are those of drawing each (T, tokens) block whole, in the same order, from the trace's generator:
    the exploration flags and group flags are uniform doubles (one 64-bit draw each, so the generator can be
    advanced past a block), the difficulty noise is normal and the noise words Zipf (variable draws, so the
    state after the normal block is found by drawing it once and throwing it away).
    """

    spec: SynthTrace
    groups: np.ndarray  # group code per request
    difficulty: np.ndarray
    states: tuple  # bit-generator states at the start of the four blocks
    vocabulary: list[str]

    @property
    def n(self) -> int:
        return len(self.groups)

    @property
    def tokens(self) -> int:
        return self.spec.text.tokens

    def chunks(self, rows: int | None = None):
        rows = rows or TEXT_CHUNK_ROWS
        spec, k, n_groups = self.spec, self.spec.text.tokens, len(self.spec.groups)
        vocab = spec.text.vocabulary
        draw = [np.random.Generator(np.random.PCG64()) for _ in self.states]
        for gen, state in zip(draw, self.states):
            gen.bit_generator.state = state
        for r0 in range(0, self.n, rows):
            r1 = min(r0 + rows, self.n)
            g, d = self.groups[r0:r1, None], self.difficulty[r0:r1, None]
            informative = draw[0].random((r1 - r0, k)) < spec.text.informative
            is_group = draw[1].random((r1 - r0, k)) < 0.5
            noisy_d = d + draw[2].normal(0, 0.5 * spec.difficulty_sigma, (r1 - r0, k))
            d_bin = np.clip(np.floor(noisy_d / (0.5 * spec.difficulty_sigma)), -9, 9).astype(np.int64)
            # Zipf-like noise words: a few frequent ones and a long tail, as in real text
            noise = np.minimum(draw[3].zipf(1.3, (r1 - r0, k)) - 1, vocab - 1)
            # token ids: [0, vocab) noise words, then group tokens, then difficulty bins -9..9
            yield np.where(informative, np.where(is_group, vocab + g, vocab + n_groups + 9 + d_bin), noise)

    def strings(self) -> pa.ChunkedArray:
        """The text column: the words of each row joined by single spaces, built from byte buffers per chunk."""
        return pa.chunked_array([a for part in self.strings_by_chunk() for a in part.chunks], pa.large_string())

    def strings_by_chunk(self, rows: int | None = None):
        """:meth:`strings` ``rows`` rows at a time (a chunked array each; drawn in chunks of at most
        :data:`TEXT_CHUNK_ROWS` rows)."""
        pending, have = [], 0
        rows = rows or TEXT_CHUNK_ROWS
        for part in self._joined(min(rows, TEXT_CHUNK_ROWS)):
            while len(part):
                take = min(rows - have, len(part))
                pending.append(part.slice(0, take))
                part, have = part.slice(take), have + take
                if have == rows:
                    yield pa.chunked_array(pending, pa.large_string())
                    pending, have = [], 0
        if pending:
            yield pa.chunked_array(pending, pa.large_string())

    def _joined(self, rows: int):
        """The rows' words joined by spaces, one Arrow array per chunk of token ids."""
        words = [w.encode() for w in self.vocabulary]
        word_len = np.array([len(w) for w in words], np.int64)
        word_start = np.zeros(len(words) + 1, np.int64)
        np.cumsum(word_len, out=word_start[1:])
        blob = np.frombuffer(b"".join(words), np.uint8)
        for ids in self.chunks(rows):
            n_rows, k = ids.shape
            length = word_len[ids]  # bytes of each token, then one space after every token but the row's last
            with_space = length + 1
            with_space[:, -1] -= 1
            ends = np.cumsum(with_space.ravel())
            offsets = np.zeros(n_rows + 1, np.int64)
            offsets[1:] = ends[k - 1::k]
            data = np.full(int(offsets[-1]), ord(" "), np.uint8)
            starts = ends - with_space.ravel()  # where each token's bytes begin in ``data``
            flat_len = length.ravel()
            # copy every token's bytes: position j of token i is data[starts[i] + j] = blob[word_start[id] + j]
            for j in range(int(word_len.max()) if len(words) else 0):
                has = flat_len > j
                data[starts[has] + j] = blob[word_start[ids.ravel()[has]] + j]
            yield pa.Array.from_buffers(pa.large_string(), n_rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)])

    def hashed(self, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bag of hashed tokens of :func:`sim.trace.format.hash_tokens` on :meth:`strings`, without strings."""
        word_index = np.array([token_hash(w, dim) for w in self.vocabulary], np.int64)
        index = np.empty(self.n * self.tokens, index_dtype(dim))
        at = 0
        for ids in self.chunks():
            index[at:at + ids.size] = word_index[ids.ravel()]
            at += ids.size
        return token_csr(np.full(self.n, self.tokens, np.int64), index)


def synth_text(spec: SynthTrace, g: np.ndarray, d: np.ndarray, rng: np.random.Generator) -> SynthText:
    """The text of every request (see :class:`SynthText`), leaving ``rng`` where drawing it whole would."""
    k, n = spec.text.tokens, len(g)
    states = [rng.bit_generator.state]
    rng.bit_generator.advance(n * k)  # the informative flags: one 64-bit draw per double
    states.append(rng.bit_generator.state)
    rng.bit_generator.advance(n * k)  # the group-or-difficulty flags
    states.append(rng.bit_generator.state)
    for r0 in range(0, n, TEXT_CHUNK_ROWS):  # the difficulty noise: draw it to find where it ends
        rng.standard_normal((min(TEXT_CHUNK_ROWS, n - r0), k))
    states.append(rng.bit_generator.state)
    for r0 in range(0, n, TEXT_CHUNK_ROWS):  # the noise words (nothing draws after them today; keep it exact)
        rng.zipf(1.3, (min(TEXT_CHUNK_ROWS, n - r0), k))
    n_groups = len(spec.groups)
    vocab = ([f"w{i}" for i in range(spec.text.vocabulary)] + [f"topic{i}" for i in range(n_groups)]
             + [f"level{i - 9}" for i in range(19)])
    return SynthText(spec=spec, groups=g, difficulty=d, states=tuple(states), vocabulary=vocab)


def synth_provenance(spec: SynthTrace, seed: int) -> dict:
    return {"generator": "sim.synth", "seed": seed, "params": spec.model_dump(mode="json")}
