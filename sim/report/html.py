"""Self-contained HTML pages of Altair charts, PNG export, and headless-Chromium helpers.

The page inlines the Vega, Vega-Lite and Vega-Embed scripts (the bundle shipped inside ``vl-convert-python``), so a
report opens and renders with no network. Each chart's Vega-Lite spec sits in a ``<script type="application/json">``
block and is embedded by a small loader that records, in the page itself, which charts rendered and every console
error or warning: ``#report-status`` gets ``data-done="1"`` and ``data-errors=N`` when all charts have settled, and
``#report-errors`` lists the messages (also shown to the reader). The tests read these with ``chromium --dump-dom``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import altair as alt

from sim.errors import UserError

#: PNG export scale (1 = the chart's own pixel size).
PNG_SCALE = 1.0
#: Embedding options: no links to the online Vega editor, only local export.
EMBED_OPTIONS = {"renderer": "svg", "actions": {"export": True, "source": False, "compiled": False, "editor": False}}


# --------------------------------------------------------------------------------------------------
# Vega scripts (offline)
# --------------------------------------------------------------------------------------------------


def _vl_convert():
    try:
        import vl_convert
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise UserError("reports need vl-convert-python (it ships the Vega scripts for offline pages and renders "
                        "PNGs), a dependency of messplus-sim: pip install -e . (or pip install vl-convert-python)") from e
    return vl_convert


def vegalite_version() -> str | None:
    """The Vega-Lite version matching Altair's schema, if vl-convert ships it (else vl-convert's latest)."""
    vlc = _vl_convert()
    want = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return want if want in vlc.get_vegalite_versions() else None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "messplus-sim"


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """The Vega + Vega-Lite + Vega-Embed JavaScript bundle (defines window.vegaEmbed), cached on disk.

    Building it takes a few seconds; the result is cached per vl-convert and Vega-Lite version under
    ``$XDG_CACHE_HOME/messplus-sim`` (any failure to cache is ignored).
    """
    vlc = _vl_convert()
    vl = vegalite_version()
    cache = _cache_dir() / f"vega-bundle-{getattr(vlc, '__version__', 'x')}-{vl or 'latest'}.js"
    try:
        text = cache.read_text(encoding="utf-8")
        if "vegaEmbed" in text:
            return text
    except OSError:
        pass
    text = vlc.javascript_bundle(vl_version=vl) if vl else vlc.javascript_bundle()
    # Never let the bundle close its own <script> element.
    text = re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)
    try:
        from sim.atomic import write_text

        write_text(cache, text)
    except OSError:
        pass
    return text


# --------------------------------------------------------------------------------------------------
# Page model
# --------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One chart in a page: ``name`` (used for ids and PNG names) and the Altair chart."""

    name: str
    chart: alt.TopLevelMixin

    @property
    def spec(self) -> dict:
        """The full Vega-Lite spec (title and caption included: what PNGs show)."""
        return self.chart.to_dict()

    @property
    def page_spec(self) -> dict:
        """The spec for the HTML page, where the title and caption are HTML text above the chart."""
        spec = self.spec
        if isinstance(spec.get("usermeta"), dict) and spec["usermeta"].get("caption"):
            spec.pop("title", None)
        return spec

    @property
    def meta(self) -> dict:
        m = getattr(self.chart, "usermeta", alt.Undefined)
        return m if isinstance(m, dict) else {}

    @property
    def heading(self) -> str:
        if self.meta.get("title"):
            return str(self.meta["title"])
        t = getattr(self.chart, "title", alt.Undefined)
        text = getattr(t, "text", alt.Undefined)
        return self.name if text is alt.Undefined else str(text)

    @property
    def caption(self) -> str:
        from sim.report.charts import caption_of

        return self.meta.get("caption") or caption_of(self.chart)

    @property
    def aggregation(self) -> str:
        return self.meta.get("aggregation") or ""


@dataclass
class Section:
    """A part of the page: a heading, an HTML intro, figures and raw HTML blocks in order, and notes."""

    id: str
    heading: str
    intro: str = ""
    blocks: list = field(default_factory=list)  # Figure or str (raw HTML)
    notes: list[str] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


CSS = """
:root { --fg: #1d2330; --muted: #5a6270; --line: #e3e6eb; --bad: #c62828; --good: #2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: #f6f7f9; }
header.top { background: #1d2330; color: #fff; padding: 14px 28px; }
header.top h1 { margin: 0; font-size: 20px; font-weight: 600; }
header.top p { margin: 4px 0 0; color: #c9ced8; font-size: 13px; }
main { max-width: 1260px; margin: 0 auto; padding: 8px 20px 40px; }
section.part { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 20px 8px;
               margin: 18px 0; }
section.part > h2 { margin: 2px 0 6px; font-size: 18px; }
p.meta { color: var(--muted); margin: 0 0 10px; }
nav.toc { font-size: 13px; margin: 6px 0 10px; color: var(--muted); }
nav.toc a { color: #2f5d9b; text-decoration: none; margin-right: 12px; white-space: nowrap; }
table.summary { border-collapse: collapse; width: 100%; font-size: 12.5px; margin: 6px 0 12px; }
table.summary th, table.summary td { padding: 4px 7px; border-bottom: 1px solid var(--line); text-align: right;
                                     white-space: nowrap; }
table.summary th { color: var(--muted); font-weight: 600; background: #fafbfc; position: sticky; top: 0; }
table.summary td.l, table.summary th.l { text-align: left; }
span.pred { color: var(--muted); font-size: 11.5px; margin-left: 4px; }
div.scroll { overflow-x: auto; }
table.summary tr.bound td { color: #666; font-style: italic; }
td.miss { color: var(--bad); font-weight: 600; }
td.ok { color: var(--good); }
span.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px;
              vertical-align: -1px; }
span.mix { display: inline-flex; width: 90px; height: 10px; border-radius: 2px; overflow: hidden;
           vertical-align: -1px; margin-right: 6px; background: #eee; }
span.mix > i { display: block; height: 100%; }
figure.chart { margin: 16px 0 22px; padding-top: 8px; border-top: 1px solid var(--line); overflow-x: auto; }
figure.chart h3 { margin: 0 0 2px; font-size: 16px; }
figure.chart figcaption { color: #333; font-size: 13px; margin: 0 0 6px; max-width: 900px; }
figure.chart p.agg { color: var(--muted); font-size: 12px; margin: 2px 0 0; max-width: 900px; }
section.part h3 { font-size: 16px; }
ul.notes { color: var(--muted); font-size: 12.5px; }
#report-errors { display: none; background: #fff3f3; color: var(--bad); border: 1px solid #f3c2c2; padding: 8px 12px;
                 white-space: pre-wrap; margin: 12px 0; }
#report-errors.shown { display: block; }
.legend-note { color: var(--muted); font-size: 12px; }
"""

ERROR_HOOK = """
window.__reportErrors = [];
(function () {
  function text(a) {
    try { return (a && (a.stack || a.message)) || (typeof a === "string" ? a : JSON.stringify(a)); }
    catch (e) { return String(a); }
  }
  function record(kind, args) {
    try { window.__reportErrors.push(kind + ": " + Array.prototype.map.call(args, text).join(" ")); } catch (e) {}
  }
  var ce = console.error, cw = console.warn;
  console.error = function () { record("error", arguments); return ce.apply(console, arguments); };
  console.warn = function () { record("warning", arguments); return cw.apply(console, arguments); };
  window.addEventListener("error", function (e) {
    record("uncaught", [e.message + " (" + (e.filename || "inline") + ":" + e.lineno + ")"]);
  });
  window.addEventListener("unhandledrejection", function (e) { record("unhandled rejection", [e.reason]); });
})();
"""

LOADER = """
(function () {
  var status = document.getElementById("report-status");
  var box = document.getElementById("report-errors");
  function finish() {
    var errs = window.__reportErrors || [];
    status.setAttribute("data-errors", String(errs.length));
    status.setAttribute("data-done", "1");
    if (errs.length) {
      box.textContent = "Problems while drawing this report:\\n" + errs.join("\\n");
      box.className = "shown";
    }
  }
  if (typeof vegaEmbed !== "function") {
    console.error("vegaEmbed is not defined: the inlined Vega scripts did not load");
    finish();
    return;
  }
  var opts = __OPTIONS__;
  var jobs = [];
  document.querySelectorAll("div.vis[data-spec]").forEach(function (el) {
    var job;
    try {
      var spec = JSON.parse(document.getElementById(el.getAttribute("data-spec")).textContent);
      job = vegaEmbed(el, spec, opts).then(function (res) {
        el.setAttribute("data-rendered", "ok");
      });
    } catch (e) { job = Promise.reject(e); }
    jobs.push(job.catch(function (err) {
      el.setAttribute("data-rendered", "error");
      el.textContent = "This chart could not be drawn: " + err;
      console.error(err);
    }));
  });
  Promise.all(jobs).then(finish, finish);
})();
"""


def _json_for_script(obj) -> str:
    # "<" only occurs inside JSON strings, where \\u003c is the same character: no "</script>" can appear.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def _slug(s: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "-", s).strip("-").lower() or "x"


def render_page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole HTML document (self-contained)."""
    esc = html.escape
    body: list[str] = []
    specs: list[str] = []
    n = 0
    for sec in sections:
        body.append(f'<section class="part" id="{esc(sec.id)}">')
        body.append(f"<h2>{esc(sec.heading)}</h2>")
        if sec.intro:
            body.append(sec.intro)
        figs = sec.figures
        if len(figs) > 1:
            links = " ".join(f'<a href="#{esc(sec.id)}-{esc(f.name)}">{esc(f.heading)}</a>' for f in figs)
            body.append(f'<nav class="toc">Charts: {links}</nav>')
        for block in sec.blocks:
            if isinstance(block, Figure):
                n += 1
                sid = f"spec-{n}"
                specs.append(f'<script type="application/json" id="{sid}">{_json_for_script(block.page_spec)}</script>')
                agg = f'<p class="agg">Aggregation: {esc(block.aggregation)}</p>' if block.aggregation else ""
                fid = f"{esc(sec.id)}-{esc(block.name)}"
                body.append(f'<figure class="chart" id="{fid}" data-chart="{esc(block.name)}">'
                            f"<h3>{esc(block.heading)}</h3><figcaption>{esc(block.caption)}</figcaption>"
                            f'<div class="vis" data-spec="{sid}"></div>{agg}</figure>')
            else:
                body.append(str(block))
        if sec.notes:
            body.append('<ul class="notes">' + "".join(f"<li>{esc(x)}</li>" for x in sec.notes) + "</ul>")
        body.append("</section>")
    loader = LOADER.replace("__OPTIONS__", json.dumps(EMBED_OPTIONS))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        f"<script>{ERROR_HOOK}</script>",
        f"<script>{vega_bundle()}</script>",
        "</head><body>",
        f'<header class="top"><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>',
        "<main>",
        f'<div id="report-status" data-done="0" data-charts="{n}" hidden></div>',
        '<div id="report-errors"></div>',
        *body,
        "</main>",
        *specs,
        f"<script>{loader}</script>",
        "</body></html>",
    ])


def write_pngs(figures: Iterable[tuple[str, Figure]], folder: Path, scale: float = PNG_SCALE) -> list[Path]:
    """One PNG per chart, rendered by vl-convert (no browser). ``figures`` yields (file stem, figure)."""
    from sim.atomic import atomic_path

    vlc = _vl_convert()
    vl = vegalite_version()
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for stem, fig in figures:
        kwargs = {"scale": scale}
        if vl:
            kwargs["vl_version"] = vl
        png = vlc.vegalite_to_png(fig.spec, **kwargs)
        path = folder / f"{_slug(stem)}.png"
        with atomic_path(path) as tmp:
            tmp.write_bytes(png)
        out.append(path)
    return out


# --------------------------------------------------------------------------------------------------
# Headless Chromium (tests and the README screenshot)
# --------------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """Path of a Chromium binary: $SIM_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    env = os.environ.get("SIM_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium_command(binary: str, user_data_dir: str, budget_ms: int = 20000) -> list[str]:
    """Headless Chromium with networking disabled (every host unresolvable, a dead proxy) and no background I/O."""
    return [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
        f"--user-data-dir={user_data_dir}", "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--virtual-time-budget={budget_ms}", "--enable-logging=stderr", "--v=0",
    ]


@dataclass
class BrowserResult:
    dom: str
    stderr: str
    returncode: int


def _run_chromium(extra: list[str], page: Path, timeout: float, budget_ms: int) -> BrowserResult:
    binary = find_chromium()
    if binary is None:
        raise UserError("headless Chromium not found (apt-get install chromium, or set SIM_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="sim-chromium-") as prof:
        cmd = chromium_command(binary, prof, budget_ms) + extra + [Path(page).resolve().as_uri()]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=prof,
                           env={**os.environ, "HOME": prof})
    return BrowserResult(p.stdout, p.stderr, p.returncode)


def dump_dom(page: Path, timeout: float = 120.0, budget_ms: int = 20000) -> BrowserResult:
    """Load ``page`` offline, let it run for ``budget_ms`` of virtual time, return the serialized DOM and the log."""
    return _run_chromium(["--dump-dom"], page, timeout, budget_ms)


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 900, timeout: float = 120.0) -> Path:
    """A PNG of the first screen of ``page`` (headless Chromium, offline)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    r = _run_chromium([f"--window-size={width},{height}", f"--screenshot={png}"], page, timeout, 20000)
    if r.returncode != 0 or not png.exists():
        raise UserError(f"chromium could not take the screenshot (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    return png


def console_errors(stderr: str) -> list[str]:
    """Console messages that Chromium logged at error level or as uncaught exceptions (``--enable-logging``)."""
    out = []
    for line in stderr.splitlines():
        if ":CONSOLE" in line and (":ERROR:" in line or "Uncaught" in line):
            out.append(line.strip())
    return out
