"""docs/extending.md runs: every Python block of it, as SimPy's documentation runs its examples.

Plain blocks run here, in order, one namespace per ``##`` section, from the repository root. A block marked
``<!-- doc-test: insert into FILE before "TEXT" -->`` or ``<!-- doc-test: append to FILE -->`` is applied to a
scratch copy of ``sim/``; the blocks marked ``<!-- doc-test: run in the patched copy -->`` then run, in order,
in one fresh process on that copy. So a recipe that stops matching the code fails here.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

DOC = REPO / "docs" / "extending.md"
MARK = re.compile(r'<!-- doc-test: (?:(insert) into (\S+) before "((?:[^"\\]|\\.)*)"|(append) to (\S+)|(run) in the patched copy) -->')


def sections() -> dict[str, list[tuple[str | None, tuple, str]]]:
    """``## `` heading -> its Python blocks, each (marker kind or None, marker arguments, code)."""
    out: dict[str, list] = {}
    heading, pending = "(top)", None
    lines = DOC.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            heading = line[3:].strip()
            out.setdefault(heading, [])
        elif (m := MARK.fullmatch(line.strip())) is not None:
            if m.group(1):
                pending = ("insert", (m.group(2), m.group(3).replace('\\"', '"')))
            elif m.group(4):
                pending = ("append", (m.group(5),))
            else:
                pending = ("run", ())
        elif line.startswith("```python"):
            j = lines.index("```", i + 1)
            kind, args = pending or (None, ())
            out.setdefault(heading, []).append((kind, args, "\n".join(lines[i + 1:j]) + "\n"))
            pending, i = None, j
        elif line.strip() and pending is not None and not line.startswith("<!--"):
            raise AssertionError(f"docs/extending.md: a doc-test marker is not followed by a code block: {line!r}")
        i += 1
    return {h: blocks for h, blocks in out.items() if blocks}


SECTIONS = sections()


def test_the_page_has_every_recipe():
    assert [h.split(". ", 1)[-1] for h in SECTIONS] == [
        "A new policy", "A new predictor", "A new importer format", "A new chart", "A new engine event"]
    for blocks in SECTIONS.values():
        for _, _, code in blocks:
            ast.parse(textwrap.dedent(code))  # every block is valid Python on its own (an inserted branch dedented)


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_recipe_runs(heading, tmp_path, monkeypatch):
    from sim.report import charts

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(charts, "CHARTS", list(charts.CHARTS))  # a recipe may add a chart: not for other tests
    blocks = SECTIONS[heading]
    namespace: dict = {"__name__": "extending_recipe"}
    for kind, _, code in blocks:
        if kind is None:
            exec(compile(code, f"docs/extending.md ({heading})", "exec"), namespace)
    edits = [(kind, args, code) for kind, args, code in blocks if kind in ("insert", "append")]
    runs = [code for kind, _, code in blocks if kind == "run"]
    assert bool(edits) == bool(runs), "package edits need a block that runs them, and the other way round"
    if not edits:
        return
    shutil.copytree(REPO / "sim", tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    for kind, args, code in edits:
        target = tmp_path / args[0]
        text = target.read_text(encoding="utf-8")
        if kind == "append":
            text = text.rstrip("\n") + "\n\n\n" + code
        else:
            anchor = args[1]
            assert text.count("\n" + anchor) == 1, f"{args[0]}: the anchor {anchor!r} is not there exactly once"
            at = text.index("\n" + anchor) + 1
            text = text[:at] + code + "\n\n" + text[at:]
        target.write_text(text, encoding="utf-8")
    script = "\n".join(textwrap.dedent(code) for code in runs)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "from sim.process import prepare; prepare()\n" + script],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
