"""Command line: ``python -m sim <command>``. Each command family lives in its own module and registers here.

Every :class:`~sim.errors.UserError` becomes one line on stderr and exit status 2; a violated guarantee
(:class:`~sim.errors.CheckFailed`) exits 1. Tracebacks are reserved for bugs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .errors import CheckFailed, UserError

# Each module exposes ``register(subparsers)`` and sets ``func`` on the parsers it adds.
COMMAND_MODULES = [
    "sim.commands.run",
    "sim.commands.trace",
    "sim.commands.profile",
    "sim.commands.sweep",
    "sim.commands.bench",
    "sim.commands.check",
    "sim.commands.report",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(prog="python -m sim", description="Offline laboratory for SLA-constrained LLM routing (MESS+).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP as an exception, so that temporary files are removed on the way out (exit 128 + signal)."""


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _install_signal_handlers() -> dict:
    """Turn SIGTERM/SIGHUP into :class:`Terminated` while a command runs; returns the handlers to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, _raise_terminated)
    return previous


def main(argv: list[str] | None = None) -> int:
    previous = _install_signal_handlers()
    try:  # building the parser imports every command (a second or so): Ctrl-C there is an interruption too
        args = build_parser().parse_args(argv)
        rc = args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except CheckFailed as e:
        print(f"check failed: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        print("interrupted: partial outputs were discarded, completed files are intact", file=sys.stderr)
        return 128 + int(e.args[0]) if isinstance(e, Terminated) else 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
    return int(rc or 0)
