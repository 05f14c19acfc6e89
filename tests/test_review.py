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
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cdk8s_valkey.__main__ import main
from cdk8s_valkey.review import Verdict, load_path, review
from harness.paths import REPO, require_binary
from harness.review import CASES, cli

pytestmark = pytest.mark.real

CASE_NAMES = sorted(p.name for p in CASES.iterdir() if (p / "old").is_dir())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
# The verdict a case's name promises, so a golden file cannot drift to another verdict unseen.
PREFIX_EXIT = {"no-change": 0, "safe": 0, "restarts": 1, "client-outage": 2, "rejected": 2, "data-at-risk": 2}


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
    assert "- StatefulSet `apps/valkey` added: new StatefulSet" in out


# --- --base mode: the whole pull request -------------------------------------------------


def _pull_request(tmp_path: Path) -> tuple[Path, Path]:
    """main: dist/ = the memory case's old side; a branch that changes dist/ to its new side, then
    commits something else; main moves on with another dist/. Returns (repo, case)."""
    case = CASES / "restarts-memory-2gi-to-4gi"
    repo = _repo_with(tmp_path, case / "old", case / "old")
    _git(repo, "branch", "-M", "main")
    _git(repo, "checkout", "-q", "-b", "feature")
    shutil.rmtree(repo / "dist")
    # Fresh mtimes: the two sides have the same sizes, and git would take equal stat data for no change.
    shutil.copytree(case / "new", repo / "dist", copy_function=shutil.copy)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "memory 2Gi -> 4Gi")
    (repo / "README.md").write_text("app, documented\n")
    _git(repo, "commit", "-q", "-am", "docs")
    _git(repo, "checkout", "-q", "main")
    shutil.rmtree(repo / "dist")
    shutil.copytree(CASES / "safe-network-policy-on" / "new", repo / "dist", copy_function=shutil.copy)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "main moves on")
    _git(repo, "checkout", "-q", "feature")
    return repo, case


def test_base_mode_reviews_the_whole_pull_request_against_its_merge_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, case = _pull_request(tmp_path)
    base = subprocess.run(
        ["git", "-C", str(repo), "merge-base", "main", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    code, out, err = _main(capsys, "--base", "main", str(repo / "dist"))
    heading, rest = (case / "expected.md").read_text().split("\n", 1)
    compared = f"Compared with `dist/` at `{base[:12]}`, the merge base of `main` and `HEAD`."
    assert (code, out, err) == (1, f"{heading}\n\n{compared}\n{rest}", "")
    # The last commit alone changed no manifest: what CI used to review.
    assert _main(capsys, "--git", "HEAD~1", str(repo / "dist"))[:2] == (
        0,
        "## dist/ review: safe\n\nNo object changed.\n",
    )


def test_base_mode_without_the_base_or_its_history_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, _ = _pull_request(tmp_path)
    assert _main(capsys, "--base", "nope", str(repo / "dist")) == (
        3,
        "",
        "review: no previous revision: 'nope' names no commit in this clone\n",
    )
    shallow = tmp_path / "shallow"
    _git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", f"file://{repo}", str(shallow))
    _git(shallow, "fetch", "-q", "--depth", "1", "origin", "main:main")
    assert _main(capsys, "--base", "main", str(shallow / "dist")) == (
        3,
        "",
        "review: no merge base of 'main' and HEAD (this clone is shallow: `git fetch --unshallow`)\n",
    )


def test_git_mode_outside_a_repository_exits_64(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(CASES / "no-change" / "new", tmp_path / "dist")
    code, out, err = _main(capsys, "--git", "HEAD", str(tmp_path / "dist"))
    assert (code, out) == (64, "")
    assert err.startswith(f"review: {tmp_path / 'dist'}: not inside a git work tree")


# --- usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give OLD and NEW, or --base REV [DIST], or --git REV [DIST]"),
        (("a",), "give OLD and NEW, or --base REV [DIST], or --git REV [DIST]"),
        (("--git", "HEAD", "a", "b"), "with --git or --base, give at most one path (DIST)"),
        (("--base", "main", "a", "b"), "with --git or --base, give at most one path (DIST)"),
        (("--base", "main", "--git", "HEAD"), "argument --git: not allowed with argument --base"),
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
        "2   client outage, rejected or data at risk",
        "3   --git/--base REV names no commit",
        "make review",
        "64  usage",
    ):
        assert line in out


# --- docs/review.md ---------------------------------------------------------------------


def test_the_examples_of_docs_review_are_golden_outputs() -> None:
    # Each ```markdown block of the guide is a verbatim part of the golden case it names.
    text = (REPO / "docs" / "review.md").read_text()
    examples = re.findall(r"`tests/review_cases/([\w.-]+)`\)?:\n\n```markdown\n(.*?)```\n", text, re.S)
    assert len(examples) == 3
    for case, block in examples:
        assert block in (CASES / case / "expected.md").read_text(), f"docs/review.md: the example of {case} is stale"
