"""Provenance: the git commit read from a checkout's files (null outside one), and the same block in summary.json
and in the Parquet metadata (tests/test_config.py::test_run_writes_results_and_resolved_scenario checks a real run)."""

from __future__ import annotations

from sim.provenance import git_commit, provenance

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_git_commit_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) is None


def test_git_commit_from_loose_and_packed_refs_and_worktrees(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text(SHA + "\n")
    (repo / "pkg").mkdir()
    assert git_commit(repo / "pkg") == SHA
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    (repo / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/main\n")
    assert git_commit(repo) == SHA
    # A worktree: .git is a file naming its gitdir, whose commondir holds the shared refs.
    wt = tmp_path / "wt"
    (repo / ".git" / "worktrees" / "wt").mkdir(parents=True)
    (repo / ".git" / "worktrees" / "wt" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "worktrees" / "wt" / "commondir").write_text("../..\n")
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {repo / '.git' / 'worktrees' / 'wt'}\n")
    assert git_commit(wt) == SHA
    # A detached HEAD holds the commit itself; garbage gives null, not an error.
    (repo / ".git" / "HEAD").write_text(SHA[::-1] + "\n")
    assert git_commit(repo) == SHA[::-1]
    (repo / ".git" / "HEAD").write_text("nonsense")
    assert git_commit(repo) is None


def test_provenance_is_deterministic():
    a, b = provenance("name: x\n"), provenance("name: x\n")
    assert a == b and a["scenario_sha256"] != provenance("name: y\n")["scenario_sha256"]
