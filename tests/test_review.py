"""The review tool end to end: golden cases through the real CLI (a subprocess each), --git
mode against a real repository, usage errors, and the Python entry point the day-2 matrix
uses. The tests after the goldens call the CLI's main() in-process: a subprocess each would
cost a library import (~0.6 s of CPU) for nothing they check.

Each case is data under tests/review_cases/<case>/: old/ and new/ renderings, expected.md
(the Markdown the CLI prints) and exit_code. UPDATE_GOLDEN=1 rewrites expected.md and
exit_code from the current tool; read the diff before committing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cdk8s_valkey.__main__ import main
from cdk8s_valkey.review import Verdict, load_path, review
from harness.paths import require_binary
from harness.review import CASES, cli

CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "old").is_dir())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
# The verdict a case's name promises, so a golden file cannot drift to another verdict unseen.
PREFIX_EXIT = {"no-change": 0, "safe": 0, "restarts": 1, "rejected": 2, "data-at-risk": 2}


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess[str]]:
    # Each run starts a Python that imports the library (~0.6 s): two at a time on 2 cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda c: cli(str(CASES / c / "old"), str(CASES / c / "new")), CASE_NAMES)
        return dict(zip(CASE_NAMES, results, strict=True))


def test_there_is_a_case_for_each_verdict() -> None:
    prefixes = {next(p for p in PREFIX_EXIT if name.startswith(p)) for name in CASE_NAMES}
    assert prefixes == set(PREFIX_EXIT)


@pytest.mark.parametrize("case", CASE_NAMES)
def test_golden(case: str, runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = runs[case]
    assert result.stderr == "", result.stderr
    expected_md, expected_code = CASES / case / "expected.md", CASES / case / "exit_code"
    if UPDATE:
        expected_md.write_text(result.stdout)
        expected_code.write_text(f"{result.returncode}\n")
    assert result.stdout == expected_md.read_text()
    assert result.returncode == int(expected_code.read_text())
    prefix = next(p for p in PREFIX_EXIT if case.startswith(p))
    assert result.returncode == PREFIX_EXIT[prefix], f"{case}: the name promises exit {PREFIX_EXIT[prefix]}"


def test_python_entry_point_matches_the_cli(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    case = "restarts-memory-2gi-to-4gi"
    report = review(load_path(CASES / case / "old"), load_path(CASES / case / "new"))
    assert report.verdict is Verdict.RESTARTS
    assert report.exit_code == 1
    assert report.markdown() == runs[case].stdout


# --- --git mode -------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [require_binary("git"), "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env=dict(
            os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t"
        ),
    )


def _repo_with(tmp_path: Path, committed: Path | None, work_tree: Path) -> Path:
    """A git repository whose last commit holds ``committed`` as dist/ (or only a README) and
    whose work tree holds ``work_tree`` as dist/."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "README.md").write_text("app\n")
    if committed is not None:
        shutil.copytree(committed, repo / "dist")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "previous")
    shutil.rmtree(repo / "dist", ignore_errors=True)
    shutil.copytree(work_tree, repo / "dist")
    return repo


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["review", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_git_mode_compares_the_work_tree_with_a_revision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES / "restarts-memory-2gi-to-4gi"
    repo = _repo_with(tmp_path, case / "old", case / "new")
    from_elsewhere = _main(capsys, "--git", "HEAD", str(repo / "dist"))
    monkeypatch.chdir(repo)
    default_dist = _main(capsys, "--git", "HEAD")
    for result in (default_dist, from_elsewhere):
        assert result == (1, (case / "expected.md").read_text(), "")


def test_git_mode_without_a_previous_commit_exits_3_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "no-change"
    repo = _repo_with(tmp_path, case / "old", case / "new")
    assert _main(capsys, "--git", "HEAD~1", str(repo / "dist")) == (
        3,
        "",
        "review: no previous revision: 'HEAD~1' names no commit in this clone\n",
    )


def test_git_mode_when_the_revision_had_no_dist_everything_is_added(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = _repo_with(tmp_path, None, CASES / "safe-network-policy-on" / "new")
    code, out, _ = _main(capsys, "--git", "HEAD", str(repo / "dist"))
    assert code == 0
    assert "| StatefulSet `apps/valkey` | added | safe |" in out


def test_git_mode_outside_a_repository_exits_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(CASES / "no-change" / "new", tmp_path / "dist")
    code, out, err = _main(capsys, "--git", "HEAD", str(tmp_path / "dist"))
    assert (code, out) == (64, "")
    assert err.startswith(f"review: {tmp_path / 'dist'}: not inside a git work tree")


# --- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give OLD and NEW, or --git REV [DIST]"),
        (("a",), "give OLD and NEW, or --git REV [DIST]"),
        (("--git", "HEAD", "a", "b"), "with --git, give at most one path (DIST)"),
        (("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_64(args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["review", *args])
    assert exited.value.code == 64
    assert message in capsys.readouterr().err


def test_unreadable_inputs_exit_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.k8s.yaml"
    bad.write_text("kind: [unclosed\n")
    good = str(CASES / "no-change" / "new")
    assert _main(capsys, str(tmp_path / "nope"), good) == (
        64,
        "",
        f"review: {tmp_path / 'nope'}: no such file or directory\n",
    )
    code, _, err = _main(capsys, str(bad), good)
    assert code == 64
    assert err.startswith(f"review: {bad}: not valid YAML")
    twice = tmp_path / "twice.k8s.yaml"
    twice.write_text("kind: ConfigMap\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: a}\n")
    assert _main(capsys, str(twice), good) == (64, "", "review: old: ConfigMap `a` appears twice\n")


def test_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["review", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for line in (
        "0   safe",
        "1   restarts",
        "2   rejected or data at risk",
        "3   --git REV names no commit",
        "64  usage",
    ):
        assert line in out
