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


# An interrupt that lands while a finaliser (``__del__``, e.g. pyarrow's ParquetWriter) runs is swallowed by
# Python, which prints "Exception ignored ... Traceback". We note it instead and honour it when the command ends.
_swallowed: list[int] = []


def _install_signal_handlers() -> dict:
    """Turn SIGTERM/SIGHUP into :class:`Terminated` while a command runs; returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            previous[sig] = signal.signal(sig, _raise_terminated)
    default_hook = sys.unraisablehook

    def note_swallowed(unraisable):
        exc = unraisable.exc_value
        if isinstance(exc, KeyboardInterrupt):
            _swallowed.append(int(exc.args[0]) if isinstance(exc, Terminated) else int(signal.SIGINT))
        else:
            default_hook(unraisable)

    previous["unraisablehook"] = default_hook
    sys.unraisablehook = note_swallowed
    _swallowed.clear()
    return previous


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        if sig == "unraisablehook":
            sys.unraisablehook = handler
        elif handler is not None:
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    previous = _install_signal_handlers()
    try:  # building the parser imports every command (a second or so): Ctrl-C there is an interruption too
        args = build_parser().parse_args(argv)
        rc = args.func(args)
        if _swallowed:  # interrupted inside a finaliser: the work went on, but the user asked to stop
            raise Terminated(_swallowed[0]) if _swallowed[0] != signal.SIGINT else KeyboardInterrupt()
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
        _restore(previous)
    return int(rc or 0)
