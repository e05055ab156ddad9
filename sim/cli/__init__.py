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

from sim.errors import CheckFailed, UserError
from sim.text import printable

# Each module exposes ``register(subparsers)`` and sets ``func`` on the parsers it adds.
COMMAND_MODULES = [
    "sim.cli.run",
    "sim.cli.trace",
    "sim.cli.profile",
    "sim.cli.sweep",
    "sim.cli.bench",
    "sim.cli.check",
    "sim.cli.report",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def program_name() -> str:
    """``sim`` when run as the console script, ``python -m sim`` otherwise (what the user typed, for usage lines)."""
    return "sim" if os.path.basename(sys.argv[0] or "") == "sim" else "python -m sim"


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(prog=program_name(), description="Offline laboratory for SLA-constrained LLM routing (MESS+).")
    from sim import __version__

    parser.add_argument("--version", action="version", version=f"messplus-sim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP as an exception, so that temporary files are removed on the way out (exit 128 + signal)."""


# Signals received while the current command runs. The handler records the signal, then raises. An exception
# raised inside a finaliser (``__del__``, e.g. pyarrow's ParquetWriter) is swallowed by Python, and a library
# may turn it into its own error (a Rust panic from polars). The record lets main() still report the run as
# interrupted, with one line and exit 128 + signal, instead of going on or printing a traceback.
_received: list[int] = []


def _on_signal(signum, frame):
    _received.append(int(signum))
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated(int(signum))


def signal_received() -> bool:
    """Whether SIGINT/SIGTERM/SIGHUP arrived during the current command (for code that catches ``Exception``)."""
    return bool(_received)


def _install_signal_handlers() -> dict:
    """Route SIGINT/SIGTERM/SIGHUP through :func:`_on_signal` while a command runs; returns what to restore."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _received.clear()
    previous: dict = {}
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and (sig != signal.SIGINT or signal.getsignal(sig) is signal.default_int_handler):
            previous[sig] = signal.signal(sig, _on_signal)
    default_hook = sys.unraisablehook

    def hide_swallowed_interrupts(unraisable):  # already in _received; honoured when the command returns
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default_hook(unraisable)

    previous["unraisablehook"] = default_hook
    sys.unraisablehook = hide_swallowed_interrupts
    return previous


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        if sig == "unraisablehook":
            sys.unraisablehook = handler
        elif handler is not None:
            signal.signal(sig, handler)


def interrupted_exit() -> int:
    print("interrupted: partial outputs were discarded, completed files are intact", file=sys.stderr)
    sig = _received[0] if _received else int(signal.SIGINT)
    return 130 if sig == signal.SIGINT else 128 + sig


def main(argv: list[str] | None = None) -> int:
    from sim.process import prepare

    prepare()  # a no-op if ``python -m sim`` did it first (sim/process.py)
    previous = _install_signal_handlers()
    try:  # building the parser imports every command (a second or so): Ctrl-C there is an interruption too
        args = build_parser().parse_args(argv)
        rc = args.func(args)
        if _received:  # the interrupt was swallowed on the way (see _received): the user still asked to stop
            return interrupted_exit()
    except UserError as e:
        if _received:
            return interrupted_exit()
        print(f"error: {printable(e)}", file=sys.stderr)
        return e.exit_code
    except CheckFailed as e:
        print(f"check failed: {printable(e)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return interrupted_exit()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # disk full, permission lost mid-run: say so in one line; atomic writes kept files whole
        if _received:
            return interrupted_exit()
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {printable(e.strerror or e)}{printable(where)}; completed files are intact", file=sys.stderr)
        return 1
    except BaseException:
        if _received:  # an interrupt surfaced as another exception inside a library
            return interrupted_exit()
        raise
    finally:
        _restore(previous)
    return int(rc or 0)
