"""Where results go: safe folder names, default result folders, and one writer per output folder.

Rules (docs/invariants.md, "Security"):

- A name that becomes a folder (a scenario's ``name``, a group's name) is *encoded*, never trusted: every
  character outside ``A-Z a-z 0-9 _ + - .`` and a leading ``.`` become ``%XX`` (their UTF-8 bytes, as in a
  URL), so ``..``, ``/``, ``\\``, an absolute path or a hidden name cannot leave, or land on, the folder they
  are written into. The encoding is reversible (:func:`decode_name`) and one-to-one; the real name stays in
  the files (``summary.json``). Two names whose folders would still coincide on a case-insensitive file
  system are an error, as is an encoded name longer than :data:`MAX_NAME_BYTES`.
- Without ``--out``, ``sim run`` writes to ``results/<safe name>-<8 hex of the resolved config's SHA-256>``:
  a different configuration never lands on another's results.
- One writer per output folder: :func:`output_lock` takes ``fcntl.flock`` on ``<out>/.sim.lock``; a second
  writer refuses at once with one line (it does not wait: a sweep can hold a folder for hours). The lock file
  is removed when the writer is done (see :func:`output_lock` for why that is safe).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from sim.errors import UserError

#: Longest folder name an encoded name may give (file systems allow 255 bytes; room for suffixes like -sweep).
MAX_NAME_BYTES = 120
LOCK_FILE = ".sim.lock"
_SAFE = re.compile(r"[A-Za-z0-9_+\-.]")


def encode_name(name: str, what: str = "name") -> str:
    """A folder name for ``name`` that stays inside the folder it is joined to; reversible, one-to-one."""
    if not isinstance(name, str) or name == "":
        raise UserError(f"{what} {name!r}: must be a non-empty text")
    parts = []
    for i, ch in enumerate(name):
        if _SAFE.fullmatch(ch) and not (i == 0 and ch == "."):
            parts.append(ch)
        else:
            parts.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
    safe = "".join(parts)
    if len(safe.encode()) > MAX_NAME_BYTES:
        raise UserError(f"{what} {name[:40]!r}…: too long for a folder name ({len(safe)} characters once encoded, "
                        f"at most {MAX_NAME_BYTES})")
    return safe


def decode_name(safe: str) -> str:
    """The name :func:`encode_name` encoded."""
    from urllib.parse import unquote

    return unquote(safe, encoding="utf-8", errors="strict")


def folder_names(names: Iterable[str], what: str) -> dict[str, str]:
    """Name -> safe folder name for each of ``names``; folders that would coincide (ignoring case) are an error."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in names:
        safe = encode_name(name, what)
        key = safe.casefold()
        if key in seen and seen[key] != name:
            raise UserError(f"{what}s {seen[key]!r} and {name!r} would share the folder {safe!r} "
                            f"(names that differ only in case); rename one")
        seen[key] = name
        out[name] = safe
    return out


def default_run_folder(name: str, resolved: str) -> Path:
    """``results/<safe name>-<hash>``: named after the scenario and a short hash of its resolved config."""
    digest = hashlib.sha256(resolved.encode("utf-8")).hexdigest()[:8]
    return Path("results") / f"{encode_name(name, 'scenario name')}-{digest}"


def default_sweep_folder(name: str) -> Path:
    """``results/<safe name>-sweep``: the same folder for every rerun (cells are keyed by their config)."""
    return Path("results") / f"{encode_name(name, 'scenario name')}-sweep"


def check_output_path(out: Path) -> None:
    """Refuse, before anything runs, an output path that cannot be a folder: a dangling or looping symlink, a
    device, FIFO or socket, a regular file, or a path under one."""
    out = Path(out)
    probe = out
    while True:
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            if os.path.islink(probe):
                raise UserError(f"output {out}: {probe} is a symbolic link to nothing") from None
            if probe == probe.parent:
                return
            probe = probe.parent
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UserError(f"output {out}: {probe} is a symbolic link loop") from None
            if e.errno == errno.ENOTDIR:
                raise UserError(f"output {out}: cannot write there (a part of the path is not a directory)") from None
            raise UserError(f"output {out}: cannot use it ({e.strerror})") from None
        if not stat.S_ISDIR(st.st_mode):
            kind = "a regular file" if stat.S_ISREG(st.st_mode) else "not a regular file or folder"
            if probe == out:
                raise UserError(f"output {out}: exists and is not a directory ({kind})")
            raise UserError(f"output {out}: cannot write there ({probe} is not a directory)")
        return


def check_regular_target(path: Path, what: str = "output") -> None:
    """Refuse to replace an existing target that is not a regular file (a device, FIFO, socket, folder)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UserError(f"{what} {path}: is a symbolic link to nothing") from None
        return
    except OSError as e:
        raise UserError(f"{what} {path}: cannot use it ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a device, FIFO or socket"
        raise UserError(f"{what} {path}: exists and is {kind}, not a regular file; refusing to replace it")


def check_regular_input(path: Path, what: str) -> None:
    """Refuse an input that is not a regular file: a FIFO or character device would block or never end."""
    try:
        st = os.stat(path)
    except OSError:
        return  # the reader says what is wrong (missing, unreadable) in its own words
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise UserError(f"{what} {path}: is a device, FIFO or socket, not a regular file")


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the output folder's lock while writing into it. Creates ``out`` (and its missing parents); when the
    body fails, removes what it created, so a failed run leaves nothing behind. A folder locked by another
    process is a :class:`UserError` (one line), raised before anything is written.

    The lock file is removed on the way out, while it is still locked, so a result folder holds only results.
    That is safe because a writer that gets the lock checks that the file it locked is still the one at
    ``<out>/.sim.lock`` (same inode) and otherwise tries again: a writer that opened the file just before it was
    removed can never share the folder with one that made a new lock file."""
    import fcntl

    out = Path(out)
    check_output_path(out)
    created: list[Path] = []
    d = out
    while not d.exists():
        created.append(d)
        d = d.parent
    lock_path = out / LOCK_FILE
    fd = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        while fd is None:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                fd = None
                raise UserError(f"output {out}: another sim process is writing there (it holds {lock_path}); "
                                "wait for it or use another --out") from None
            try:
                same = os.stat(lock_path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed by the writer that held it, after we opened it: lock the current one
                os.close(fd)
                fd = None
        yield
    except BaseException:
        for folder in created:  # innermost first; stops at the first one that is not empty
            if folder == out and fd is not None:
                lock_path.unlink(missing_ok=True)
                os.close(fd)
                fd = None
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    finally:
        if fd is not None:
            lock_path.unlink(missing_ok=True)  # still locked: see the docstring
            os.close(fd)


def lock_is_held(out: Path) -> bool:
    """Whether another process holds ``out``'s lock (a probe that creates nothing)."""
    import fcntl

    lock_path = Path(out) / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
