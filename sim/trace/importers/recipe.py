"""Build a scenario's trace from real files, with no manual import step (``trace: {recipe: ...}``).

A recipe names the same inputs as the three CLI steps (``trace import outcomes``, ``trace import arrivals``,
``trace compose``) and runs those importer functions in one go. Their intermediate Parquet files go to a
private temporary directory that is removed before this returns: nothing is written into the repository
or next to the data, and the result is the same trace the manual steps produce (same seed, same options).

    trace:
      recipe:
        outcomes: {path: ../shared/data/routerbench_subset/routerbench_arc_mbpp_winogrande_labels.csv,
                   preset: routerbench, models: [mistral-7b-chat, ...]}
        arrivals: {path: ../shared/data/azure_llm_2023/AzureLLMInferenceTrace_conv.csv, preset: azure}
        time_scale: 1.0          # < 1 raises the load
        assign: cycle            # or sample (seeded by recipe.seed, default the scenario's seed)
        profile: {path: ../shared/data/mlenergy_v2/mlenergy_v2_llm_text_generation.csv, gpu: H100,
                  map: {mistral-7b-chat: mistralai/Mistral-7B-Instruct-v0.3, ...}}

Relative paths are relative to the working directory (the repository root, as for ``trace: {path: ...}``).
A missing file is one :class:`~sim.errors.UserError` line naming it. Without ``arrivals`` the outcome rows
arrive one per second (the importer's default); ``profile`` needs ``arrivals`` (it reads their token counts).
The importers' notes (dropped rows, repeated arrivals) are kept in the trace provenance under ``notes``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sim.errors import UserError
from sim.trace.format import Trace, load_trace
from sim.trace.importers.arrivals import import_arrivals
from sim.trace.importers.compose import compose
from sim.trace.importers.outcomes import import_outcomes


def _check_exists(path: str, what: str) -> str:
    p = Path(path)
    if not p.exists():
        raise UserError(f"trace.recipe.{what}: {path}: no such file (the real data is expected in ../shared/data; "
                        f"see docs/importers.md)")
    return str(p)


def build_recipe_trace(recipe, seed: int, objective: str = "energy_j", drop: tuple[str, ...] = ()) -> Trace:
    """Import and compose the recipe's files in a temporary directory; return the loaded trace."""
    o, a, prof = recipe.outcomes, recipe.arrivals, recipe.profile
    _check_exists(o.path, "outcomes.path")
    if a is not None:
        _check_exists(a.path, "arrivals.path")
    if prof is not None:
        if a is None:
            raise UserError("trace.recipe.profile: deriving energy/latency from a GPU profile needs 'arrivals' "
                            "(their prompt and output token counts)")
        for p in [prof.path] if isinstance(prof.path, str) else prof.path:
            _check_exists(p, "profile.path")
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="messplus_recipe_") as tmp:
        tmp = Path(tmp)
        out_o = tmp / "outcomes.parquet"
        if o.join is not None:
            _check_exists(o.join, "outcomes.join")
        price = None if o.price_per_mtok is None else {m: str(v) for m, v in o.price_per_mtok.items()}
        import_outcomes(o.path, out_o, preset=o.preset, sat=o.sat, cost=o.cost, energy=o.energy, latency=o.latency,
                        group=o.group, text=o.text, models=o.models, cost_per_request=o.cost_per_request,
                        id_col=o.id, layout=o.layout, model_column=o.model_column, latency_unit=o.latency_unit,
                        cost_unit=o.cost_unit, prompt_tokens=o.prompt_tokens, output_tokens=o.output_tokens,
                        price_per_mtok=price, order=o.order, seed=recipe.seed if recipe.seed is not None else seed,
                        join=o.join, on=o.on, embedding=o.embedding, log=notes.append)
        final = out_o
        if a is not None:
            out_a = tmp / "arrivals.parquet"
            import_arrivals(a.path, out_a, preset=a.preset, time=a.time, time_unit=a.time_unit,
                            prompt_tokens=a.prompt_tokens, output_tokens=a.output_tokens, log=notes.append)
            profile_path = None
            if prof is not None:
                profile_path = prof.path if isinstance(prof.path, str) else list(prof.path)
            final = tmp / "trace.parquet"
            compose(out_o, out_a, final, time_scale=recipe.time_scale, assign=recipe.assign,
                    seed=recipe.seed if recipe.seed is not None else seed, rows=recipe.rows,
                    profile=profile_path, gpu=prof.gpu if prof is not None else None,
                    mapping=_map_text(prof.map) if prof is not None else None,
                    concurrency=prof.concurrency if prof is not None else 1.0, log=notes.append)
        elif recipe.time_scale != 1.0 or recipe.rows is not None:
            raise UserError("trace.recipe: time_scale and rows need 'arrivals' (without them requests arrive 1 per s)")
        trace = load_trace(final, objective=objective, drop=drop)
    trace.path = f"<recipe: {o.path}" + (f" + {a.path}" if a is not None else "") + ">"
    prov = dict(trace.provenance)
    prov["recipe"] = {"notes": notes, "temporary_files": "removed"}
    trace.provenance = _strip_tmp(prov, str(tmp))
    return trace


def _map_text(mapping: dict[str, str]) -> str | None:
    return ",".join(f"{k}={v}" for k, v in mapping.items()) or None


def _strip_tmp(node, tmp: str):
    """Provenance should not name the temporary directory (it no longer exists)."""
    if isinstance(node, dict):
        return {k: _strip_tmp(v, tmp) for k, v in node.items()}
    if isinstance(node, list):
        return [_strip_tmp(v, tmp) for v in node]
    if isinstance(node, str) and tmp in node:
        return node.replace(tmp + "/", "<recipe>/")
    return node
