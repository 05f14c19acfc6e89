"""The claim guard where the team runs it: `make synth` and a bare `npx cdk8s synth`.

The cdk8s CLI deletes dist/ before it runs main.py, so a guard that only read the previous
dist/ never ran under the CLI. Each test copies the app (main.py, cdk8s.yaml, the Makefile,
dist/) into a temporary directory, with this checkout's .venv and node_modules, edits main.py
as a user would, runs the real command and checks its exit status, its message and dist/ byte
for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.review import app_copy as _app
from harness.review import commit as _commit
from harness.review import run as _run
from harness.review import tree as _tree

PRODUCTION_SIZES = "    cdk8s.Size.gibibytes(1),\n    cdk8s.Size.gibibytes(10),\n"
# make, the cdk8s CLI, git and Python subprocesses.
pytestmark = pytest.mark.real

BARE = ("npx", "--no-install", "cdk8s", "synth", "--no-check-upgrade")
MAKE = ("make", "synth")


def _edit(app: Path, old: str, new: str) -> None:
    main = app / "main.py"
    text = main.read_text()
    assert text.count(old) == 1, f"main.py no longer holds {old!r}: update this test"
    main.write_text(text.replace(old, new))


SHRINK = (PRODUCTION_SIZES, PRODUCTION_SIZES.replace("(10)", "(8)"))
CLASS = ('STORAGE_CLASS = "longhorn"', 'STORAGE_CLASS = "fast"')
SHRINK_MESSAGE = (
    "synth refused: storage_size: the claim apps/data-valkey-0 would shrink from 10Gi to 8Gi ({source} has 10Gi); "
    "keep storage_size at 10Gi or more; claims can only grow"
)
CLASS_MESSAGE = (
    "synth refused: storage_class: the claim apps-staging/data-valkey-0 has storage class 'longhorn' in {source}"
)


@pytest.mark.parametrize("command", [MAKE, BARE], ids=["make-synth", "bare-cli"])
@pytest.mark.parametrize(
    ("change", "message"), [(SHRINK, SHRINK_MESSAGE), (CLASS, CLASS_MESSAGE)], ids=["shrink", "class"]
)
def test_the_cli_refuses_and_leaves_dist_as_it_was(
    tmp_path: Path, command: tuple[str, ...], change: tuple[str, str], message: str
) -> None:
    app = _app(tmp_path, git_repo=True)
    before = _tree(app / "dist")
    _edit(app, *change)
    result = _run(app, *command)
    assert result.returncode != 0, result.stdout + result.stderr
    # make: the guard reads dist/, which the CLI never touched; bare CLI: dist/ is gone, so the
    # guard reads it at HEAD and writes it back.
    source = "the previous dist/" if command == MAKE else "dist/ as committed at HEAD"
    assert message.format(source=source) in result.stderr
    if command == BARE:
        assert "(dist/ restored from HEAD)" in result.stderr
    assert _tree(app / "dist") == before


def test_make_synth_refuses_without_git_and_keeps_uncommitted_files(tmp_path: Path) -> None:
    # A tarball of the app, no .git: the Makefile still hands the guard the previous dist/, and
    # never touches dist/ on failure, a file of the user's own included.
    app = _app(tmp_path, git_repo=False)
    (app / "dist" / "notes.txt").write_text("mine\n")
    before = _tree(app / "dist")
    _edit(app, *SHRINK)
    result = _run(app, *MAKE)
    assert result.returncode != 0
    assert SHRINK_MESSAGE.format(source="the previous dist/") in result.stderr
    assert _tree(app / "dist") == before


def test_lowering_memory_is_refused_with_the_size_to_set(tmp_path: Path) -> None:
    # storage_size left out follows memory_limit (3 x, at least 5Gi): 4Gi gives a 12Gi claim,
    # which grows in place and is synthesized; back to 3Gi would shrink it to 9Gi.
    app = _app(tmp_path, git_repo=True)
    _edit(app, PRODUCTION_SIZES, "    cdk8s.Size.gibibytes(4),\n    None,  # type: ignore[arg-type]\n")
    grown = _run(app, *MAKE)
    assert grown.returncode == 0, grown.stderr
    claim = (app / "dist" / "valkey.k8s.yaml").read_text()
    assert "storage: 12Gi" in claim and "storage: 10Gi" not in claim
    _commit(app, "4Gi")
    before = _tree(app / "dist")
    _edit(app, "cdk8s.Size.gibibytes(4),", "cdk8s.Size.gibibytes(3),")
    for command in (MAKE, BARE):
        result = _run(app, *command)
        assert result.returncode != 0
        assert "the claim apps/data-valkey-0 would shrink from 12Gi to 9Gi" in result.stderr
        assert (
            "storage_size follows memory_limit when it is left out (3 x 3Gi, at least 5Gi): "
            "set storage_size explicitly to 12Gi; claims can only grow"
        ) in result.stderr
        assert _tree(app / "dist") == before
