"""Reading renderings: files, directories of ``*.k8s.yaml``, or a directory at a git revision."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ._model import Manifest

MANIFEST_SUFFIX = ".k8s.yaml"


class ManifestError(ValueError):
    """A rendering that cannot be reviewed: unreadable, not YAML, not Kubernetes objects."""


class NoRevisionError(LookupError):
    """The git revision does not exist (a first commit, a shallow clone, a typo), or two
    revisions have no merge base in this clone (a shallow clone)."""

    def __init__(self, rev: str, message: str | None = None) -> None:
        super().__init__(rev)
        self.rev = rev
        self.message = message or f"no previous revision: {rev!r} names no commit in this clone"


def parse(text: str, source: str) -> list[Manifest]:
    """The Kubernetes objects of one multi-document YAML text."""
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as error:
        raise ManifestError(f"{source}: not valid YAML: {error}") from error
    objects: list[Manifest] = []
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict) or not document.get("kind") or not _name(document):
            raise ManifestError(f"{source}: document {index + 1} is not a Kubernetes object with a kind and a name")
        objects.append(document)
    return objects


def _name(document: dict[str, Any]) -> str:
    meta = document.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, dict) else ""


def load_path(path: Path) -> list[Manifest]:
    """A file of manifests, or every ``*.k8s.yaml`` directly in a directory."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(MANIFEST_SUFFIX) and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise ManifestError(f"{path}: no such file or directory")
    return _concat((str(f), f.read_text(encoding="utf-8")) for f in files)


def _concat(texts: Iterable[tuple[str, str]]) -> list[Manifest]:
    objects: list[Manifest] = []
    for source, text in texts:
        objects += parse(text, source)
    return objects


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError as error:
        raise ManifestError("git is not installed") from error


def _repo_root(path: Path) -> Path | None:
    """The top of the git work tree holding ``path`` (which need not exist), or None."""
    anchor = path
    while not anchor.is_dir() and anchor != anchor.parent:
        anchor = anchor.parent
    top = _git(anchor, "rev-parse", "--show-toplevel")
    return Path(top.stdout.strip()).resolve() if top.returncode == 0 else None


def committed_files(rev: str, dist: Path, *, directory: bool) -> list[tuple[str, bytes]] | None:
    """The ``*.k8s.yaml`` files directly in ``dist`` (or the file ``dist``) as committed at
    ``rev``, as (path in the repository, content); ``dist`` may be missing from the work tree
    (the cdk8s CLI deletes its output directory before it runs the app).

    None when ``dist`` is not inside a git work tree or git is not installed; raises
    NoRevisionError when ``rev`` names no commit. A path that did not exist at ``rev`` gives [].
    """
    try:
        root = _repo_root(dist.resolve())
    except ManifestError:  # git is not installed
        return None
    if root is None:
        return None
    if _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        raise NoRevisionError(rev)
    relative = PurePosixPath(dist.resolve().relative_to(root).as_posix())
    listing = _git(root, "ls-tree", "-r", "--name-only", "-z", rev, "--", str(relative))
    if listing.returncode != 0:
        raise ManifestError(f"git ls-tree {rev} {relative}: {listing.stderr.strip()}")
    names = [n for n in listing.stdout.split("\0") if n]
    if directory:
        names = [n for n in names if PurePosixPath(n).parent == relative and n.endswith(MANIFEST_SUFFIX)]
    files = []
    for name in sorted(names):
        # Bytes, not text: the guard restores these files byte for byte.
        shown = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=root, capture_output=True, check=False, timeout=60)
        if shown.returncode != 0:
            raise ManifestError(f"git show {rev}:{name}: {shown.stderr.decode(errors='replace').strip()}")
        files.append((name, shown.stdout))
    return files


def merge_base(rev: str, dist: Path) -> str:
    """The commit where HEAD's history left ``rev`` (a pull request's base): ``git merge-base``
    in the repository holding ``dist``. NoRevisionError when ``rev`` names no commit, or when
    the clone lacks the history that joins them (shallow)."""
    root = _repo_root(dist.resolve())
    if root is None:
        raise ManifestError(f"{dist}: not inside a git work tree")
    if _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode != 0:
        raise NoRevisionError(rev)
    base = _git(root, "merge-base", rev, "HEAD")
    if base.returncode != 0:
        shallow = _git(root, "rev-parse", "--is-shallow-repository").stdout.strip() == "true"
        why = "this clone is shallow: `git fetch --unshallow`" if shallow else "unrelated histories"
        raise NoRevisionError(rev, f"no merge base of {rev!r} and HEAD ({why})")
    return base.stdout.strip()


def load_git(rev: str, dist: Path) -> list[Manifest]:
    """The manifests under ``dist`` (a directory or a file of the work tree) as committed at ``rev``.

    A path that did not exist at ``rev`` gives no objects (the commit that adds dist/); a
    revision that does not exist raises NoRevisionError.
    """
    anchor = dist if dist.is_dir() else dist.parent
    if not anchor.is_dir():
        raise ManifestError(f"{dist}: no such file or directory")
    if _repo_root(anchor) is None:
        top = _git(anchor, "rev-parse", "--show-toplevel")
        raise ManifestError(f"{dist}: not inside a git work tree ({top.stderr.strip()})")
    files = committed_files(rev, dist, directory=dist.is_dir()) or []
    return _concat((f"{rev}:{name}", content.decode("utf-8")) for name, content in files)
