"""``python -m sim report DIR [DIR ...]``: one self-contained HTML report over result or sweep folders."""

from __future__ import annotations

from pathlib import Path

from sim.errors import UserError
from sim.text import printable


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="render an offline HTML report (and PNGs) of result folders or sweeps",
        description="Render one self-contained HTML report (Vega scripts inlined; opens without network) over the "
                    "result folders of `python -m sim run` and/or sweep folders (with manifest.parquet).")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="result folder(s) or sweep folder(s)")
    p.add_argument("-o", "--out", type=Path, metavar="FILE.html",
                   help="output file (default: DIR/report.html for one folder, reports/report.html for several)")
    p.add_argument("--png", action="store_true",
                   help="also write one PNG per chart to <FILE>_png/ (rendered by vl-convert, no browser)")
    p.add_argument("--screenshot", type=Path, metavar="FILE.png",
                   help="also save the report's first screen as a PNG (needs headless Chromium)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")
    p.set_defaults(func=main)


def main(args) -> int:
    import polars as pl

    from sim.report import render_report

    for d in args.dirs:
        if not d.is_dir():
            raise UserError(f"{d}: not a folder")
    if args.out is not None and args.out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"{args.out}: the report is an HTML file (use a .html name)")
    try:
        files = render_report(args.dirs, args.out, png=args.png, screenshot=args.screenshot)
    except (ValueError, OSError, KeyError, TypeError, pl.exceptions.PolarsError) as e:  # a damaged result
        # file: JSON, Parquet (pyarrow's errors derive from these), a summary with missing or mistyped fields
        from sim.cli import signal_received

        if signal_received() or isinstance(e, OSError) and not _is_damage(e):
            raise
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{', '.join(map(str, args.dirs))}: damaged or incomplete result files "
                        f"({type(e).__name__}: {first})") from None
    if not args.quiet:
        size = files.html.stat().st_size
        print(f"report: {printable(files.html)}  ({files.charts} charts, {size / 1e6:.1f} MB, opens offline)")
        for what, why in files.skipped.items():
            print(f"  not shown: {printable(what)}: {printable(why)}")
        if files.pngs:
            print(f"png: {len(files.pngs)} files in {files.pngs[0].parent}/")
        if args.screenshot:
            print(f"screenshot: {args.screenshot}")
    return 0


def _is_damage(e: OSError) -> bool:
    """An OSError that reports a malformed file (pyarrow's ArrowInvalid is one) rather than disk trouble."""
    return e.errno is None
