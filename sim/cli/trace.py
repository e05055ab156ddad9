"""``python -m sim trace ...``: make, import, compose and inspect traces."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("trace", help="make, import, compose and inspect request traces")
    tsub = p.add_subparsers(dest="trace_command", metavar="TRACE_COMMAND", parser_class=type(p))
    tsub.required = True
    from sim.cli import synth

    synth.register(tsub)
    # importers (issue 3) register `import`, `compose` and `info` here
    from sim.cli import trace_import

    trace_import.register(tsub)
