"""Reports: self-contained HTML (Altair charts with the Vega scripts inlined) and PNGs, for runs and sweeps.

- :func:`write_report` -- ``DIR/report.html`` for one result folder (what ``python -m sim run`` calls);
- :func:`render_report` -- one page over several result folders and/or sweep folders, optionally with PNGs.

Charts of one run are in :mod:`sim.report.charts`, sweep views in :mod:`sim.report.sweep`, the page and the
browser helpers in :mod:`sim.report.html`.
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["write_report", "render_report", "ReportFiles", "run_section", "summary_table"]


@dataclass
class ReportFiles:
    html: Path
    pngs: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    charts: int = 0


def _fmt_cost(x: float | None, unit: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if unit == "J":
        for div, name in [(1e9, "GJ"), (1e6, "MJ"), (1e3, "kJ")]:
            if abs(x) >= div:
                return f"{x / div:.3f} {name}"
        return f"{x:.1f} J"
    return f"{x:.4g} {unit}"


def _fmt_span(seconds: float) -> str:
    from sim.report.charts import TimeAxis

    return TimeAxis.for_span(seconds).fmt(seconds)


def sla_cell(p: dict) -> str:
    """The SLA verdict of the policy's ``sla`` block in summary.json, as a table cell; ``n.a.`` when the block is
    absent (result folders written before it existed). The rule is the block's, never recomputed here."""
    esc = _html.escape
    sla = p.get("sla")
    if not isinstance(sla, dict) or sla.get("met") is None:
        return '<td class="l na">n.a.</td>'
    title = esc(str(sla.get("rule", "")))
    return (f'<td class="l ok" title="{title}">met</td>' if sla["met"]
            else f'<td class="l miss" title="{title}">missed ✗</td>')


def _cost_total(p: dict) -> float | None:
    """``cost_total`` (``cost`` in result folders written before the rename)."""
    v = p.get("cost_total", p.get("cost"))
    return None if v is None else float(v)


def summary_table(run) -> str:
    """The run's per-policy figures as an HTML table, with the SLA verdict of summary.json."""
    from sim.report.charts import MODEL_PALETTE, PALETTE_10, PALETTE_20

    esc = _html.escape
    s = run.summary
    unit = run.cost_unit
    alpha = run.alpha
    models = run.models
    palette = PALETTE_10 if len(run.policies) <= 10 else PALETTE_20
    des = run.engine != "sequential"
    head = ["policy", "SLA", "satisfaction", "Q_T/T", "cost" if unit != "J" else "energy", "per request",
            "explorations", "call ratio"]
    per_sat = any(p.get("cost_per_satisfied") is not None for p in s["policies"].values())
    if per_sat:  # results written before cost_per_satisfied existed have none
        head.append("per satisfied")
    constraint_kinds = next(([c["kind"] for c in p["constraints"]] for p in s["policies"].values()
                             if p.get("constraints")), [])
    head += [f"{k} constraint" for k in constraint_kinds]
    if des:
        head.append("p95 latency")
    has_g = any("guarantees" in p for p in s["policies"].values())
    if has_g:
        head.append("bounds hold")
    rows = ["<tr>" + "".join(f'<th class="{"l" if i in (0, 1, 7) else ""}">{esc(h)}</th>' for i, h in enumerate(head))
            + "</tr>"]
    for i, (label, p) in enumerate(s["policies"].items()):
        sat = p.get("satisfaction")
        sat_td = sla_cell(p) + (f"<td>{sat:.4f}</td>" if sat is not None else "<td>–</td>")
        ratio = p.get("call_ratio") or {}
        bar = "".join(f'<i style="width:{100 * float(ratio.get(m, 0)):.2f}%;background:{MODEL_PALETTE[j % 10]}" '
                      f'title="{esc(m)}: {float(ratio.get(m, 0)):.1%}"></i>' for j, m in enumerate(models))
        ratio_txt = " / ".join(f"{float(ratio.get(m, 0)):.2f}" for m in models)
        name = label if p.get("causal", True) else label + " †"
        cls = "" if p.get("causal", True) else ' class="bound"'
        n = p.get("requests") or 0
        kind = str(p.get("kind", "")) + (f", predictor {p['predictor']}" if p.get("predictor") else "")
        pred = f' <span class="pred">{esc(str(p["predictor"]))}</span>' if p.get("predictor") else ""
        cells = [
            f'<td class="l" title="{esc(kind)}"><span class="swatch" style="background:{palette[i % len(palette)]}">'
            f"</span>{esc(name)}{pred}</td>",
            sat_td,
            f'<td>{p.get("violation", float("nan")):.4f}</td>',
            f"<td>{esc(_fmt_cost(_cost_total(p), unit))}</td>",
            f"<td>{esc(_fmt_cost(_cost_total(p) / n, unit)) if n and _cost_total(p) is not None else '–'}</td>",
            f"<td>{p.get('explorations', 0):,}</td>",
            f'<td class="l"><span class="mix">{bar}</span>{esc(ratio_txt)}</td>',
        ]
        if per_sat:
            v = p.get("cost_per_satisfied")
            cells.append(f"<td>{'–' if v is None else esc(_fmt_cost(v, unit))}</td>")
        for c in p.get("constraints") or [None] * len(constraint_kinds):
            if c is None:
                cells.append("<td>–</td>")
                continue
            verdict = "n.a." if c["met"] is None else ("met" if c["met"] else "missed")
            cells.append(f'<td class="{"ok" if c["met"] else ("" if c["met"] is None else "miss")}" '
                         f'title="target {c["target"]:.4g}, tolerance {c["tolerance"]:.3g}">'
                         f'{c["value"]:.4g} {verdict}</td>')
        if des:
            lat = (p.get("latency_s") or {}).get("p95")
            cells.append(f"<td>{'–' if lat is None else f'{lat:.2f} s'}</td>")
        if has_g:
            g = p.get("guarantees")
            bl = g.get("bounds") if isinstance(g, dict) else g
            if isinstance(bl, list):
                app = [b for b in bl if isinstance(b, dict) and b.get("applicable")]
                ok = sum(1 for b in app if b.get("holds"))
                cells.append(f'<td class="{"ok" if ok == len(app) else "miss"}">{ok}/{len(app)}</td>')
            else:
                cells.append("<td>–</td>")
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    note = ('<p class="legend-note">† sees the future: a bound, not a router. SLA: the verdict in summary.json '
            f'(α = {alpha:g}; n.a. when the run carries none). '
            f'Call ratio: share of requests served by {esc(" / ".join(models))}. '
            + ("Costs include exploration (every model is called on an exploration step)."
               if any(p.get("explorations") for p in s["policies"].values()) else "") + "</p>")
    return '<div class="scroll"><table class="summary">' + "".join(rows) + "</table></div>" + note


def run_section(run, index: int):
    """The page section of one run: facts, the summary table and every chart that applies."""
    from sim.report import charts as C
    from sim.report.html import Figure, Section

    esc = _html.escape
    s = run.summary
    tr = s.get("trace") or {}
    facts = [f"α = {run.alpha:g}", f"{tr.get('requests', 0):,} requests"]
    if tr.get("span_s"):
        facts.append(f"over {_fmt_span(float(tr['span_s']))}")
    facts += [f"{run.engine} engine", f"seed {s.get('seed')}", f"models: {', '.join(run.models)}",
              f"trace: {tr.get('path') or 'synthetic'}", f"results: {run.path}"]
    intro = f'<p class="meta">{esc(" · ".join(facts))}</p>' + summary_table(run)
    sec = Section(id=f"run-{index}", heading=f"Run: {run.name}", intro=intro)
    charts, skipped = C.run_charts(run)
    sec.blocks = [Figure(name, chart) for name, chart in charts]
    sec.notes = [f"Not shown: {name.replace('_', ' ')} — {why}." for name, why in skipped.items()]
    return sec, skipped


def _comparison_table(runs) -> str:
    esc = _html.escape
    rows = ["<tr><th class='l'>run</th><th class='l'>policy</th><th>α</th><th class='l'>SLA</th><th>satisfaction</th>"
            "<th>Q_T/T</th><th>cost</th><th>explorations</th></tr>"]
    for run in runs:
        for label, p in run.summary["policies"].items():
            sat = p.get("satisfaction", float("nan"))
            rows.append(
                f"<tr><td class='l'>{esc(run.name)}</td><td class='l'>{esc(run.display(label))}</td>"
                f"<td>{run.alpha:g}</td>{sla_cell(p)}<td>{sat:.4f}</td>"
                f"<td>{p.get('violation', float('nan')):.4f}</td>"
                f"<td>{esc(_fmt_cost(_cost_total(p), run.cost_unit))}</td>"
                f"<td>{p.get('explorations', 0):,}</td></tr>")
    return '<table class="summary">' + "".join(rows) + "</table>"


def _unique_names(runs) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.name] = seen.get(run.name, 0) + 1
    if all(v == 1 for v in seen.values()):
        return
    for run in runs:
        if seen[run.name] > 1:
            run.name = f"{run.name} ({run.path.name})"


def _run_folders(d: Path) -> list[Path]:
    """A result folder, or for ``split_by: group`` runs its per-group folders (``DIR/groups/<group>``)."""
    import json

    f = d / "summary.json"
    if f.exists():
        try:
            s = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            return [d]
        if s.get("split_by") == "group" and isinstance(s.get("groups"), dict):
            from sim.running.paths import encode_name  # the folder a group's name was written to

            return [d / "groups" / encode_name(g, "group name") for g in s["groups"]]
    return [d]


def build_sections(dirs: list[Path]):
    """Sections for the given folders: one per run, sweep views per sweep folder, and (for several runs) a
    comparison table plus sweep views over the runs when they differ in α or V."""
    from sim.report import sweep
    from sim.report.charts import load_run
    from sim.report.html import Section

    runs, sweeps = [], []
    for d in dirs:
        d = Path(d)
        if sweep.is_sweep_dir(d):
            sweeps.append(d)
        else:
            runs.extend(load_run(x) for x in _run_folders(d))
    _unique_names(runs)
    sections, skipped = [], {}
    if len(runs) > 1:
        sections.append(Section(id="runs", heading=f"{len(runs)} runs compared", intro=_comparison_table(runs)))
    for i, run in enumerate(runs, 1):
        sec, sk = run_section(run, i)
        sections.append(sec)
        skipped.update({f"{run.name}: {k}": v for k, v in sk.items()})
    for i, d in enumerate(sweeps, 1):
        sections.append(sweep.sweep_section(sweep.load_manifest(d), f"sweep-{i}", f"Sweep: {d.name}", source=d))
    if len(runs) > 1:
        m = sweep.manifest_from_runs(runs)
        if sweep.varies(m):
            sections.append(sweep.sweep_section(m, "across-runs", "Across the runs: frontier and tables",
                                                source=None))
    return runs, sweeps, sections, skipped


def render_report(dirs, out: str | Path | None = None, png: bool = False, screenshot: str | Path | None = None,
                  title: str | None = None) -> ReportFiles:
    """Write one HTML report over ``dirs`` (result folders of ``sim run`` or sweep folders) to ``out``.

    ``out`` defaults to ``DIR/report.html`` for one folder and ``./report.html`` for several. With ``png``, one PNG
    per chart goes to ``<out stem>_png/`` next to the page. With ``screenshot``, headless Chromium saves the first
    screen of the page there.
    """
    from sim.atomic import write_text
    from sim.report.html import render_page, screenshot as shoot, write_pngs

    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise ValueError("no result folders given")
    out = Path(out) if out is not None else (dirs[0] / "report.html" if len(dirs) == 1 else Path("reports") / "report.html")
    runs, sweeps, sections, skipped = build_sections(dirs)
    if title is None:
        if len(runs) == 1 and not sweeps:
            title = f"MESS+ simulation: {runs[0].name}"
        elif sweeps and not runs:
            title = "MESS+ sweep: " + ", ".join(d.name for d in sweeps)
        else:
            title = f"MESS+ simulation: {len(runs) + len(sweeps)} result folders"
    subtitle = ("Made by python -m sim report from " + ", ".join(str(d) for d in dirs)
                + ". Hover a chart for values; the ⋯ menu saves it as SVG or PNG.")
    page = render_page(title, subtitle, sections)
    write_text(out, page)
    files = ReportFiles(out, skipped=skipped, charts=sum(len(s.figures) for s in sections))
    if png:
        folder = out.with_name(out.stem + "_png")
        if folder.exists():
            for old in folder.glob("*.png"):
                old.unlink()
        figs = []
        many = len(sections) > 1
        for sec in sections:
            for i, f in enumerate(sec.figures, 1):
                figs.append(((f"{sec.id}-" if many else "") + f"{i:02d}-{f.name}", f))
        files.pngs = write_pngs(figs, folder)
    if screenshot is not None:
        shoot(out, Path(screenshot))
    return files


def write_report(out_dir: str | Path, png: bool = False) -> Path:
    """``out_dir/report.html`` for one result folder; returns its path."""
    return render_report([Path(out_dir)], Path(out_dir) / "report.html", png=png).html
