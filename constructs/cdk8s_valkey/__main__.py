"""``python -m cdk8s_valkey``: the library's tools, one subcommand each.

A subcommand is a function that adds its parser to ``commands`` and sets ``run`` (and
``parser``, for usage errors) as the parser's defaults; list it in ``SUBCOMMANDS``.
Node's end-of-life banner is silenced in the package's ``__init__`` (jsii starts Node on import,
before this module runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from . import runbook
from .review import ManifestError, NoRevisionError, load_git, load_path, merge_base, review

EXIT_NO_REVISION = 3
EXIT_USAGE = 64  # EX_USAGE: argparse's own 2 would read as "rejected"

_REVIEW_EPILOG = """\
exit status:
  0   safe: every change applies in place, Valkey keeps running
  1   restarts: Valkey's pod is replaced (a few seconds of downtime)
  2   client outage, rejected or data at risk: clients are refused until they change, the API
      server refuses an update, or data can be lost
  3   --git/--base REV names no commit, or has no merge base with HEAD in this clone (a first
      commit, a shallow clone): nothing to compare
  64  usage error: bad arguments, a missing path, a file that is not Kubernetes YAML

From a checkout of this repository: `make review` (BASE=origin/main, else main), or
`.venv/bin/python -m cdk8s_valkey review --base main`; a plain `python` has no cdk8s_valkey
unless it is the one of the virtualenv the library is installed in.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_review(commands: argparse._SubParsersAction[_Parser]) -> None:
    cmd = commands.add_parser(
        "review",
        help="review a change of rendered manifests",
        description=(
            "Compare two renderings (files, or directories of *.k8s.yaml) and print, as Markdown\n"
            "for a pull request, a verdict and its reasons for every added, removed or changed object.\n"
            "With --base REV: compare DIST (default: dist) at the merge base of REV and HEAD, where a\n"
            "pull request started, with DIST in the work tree: the whole pull request.\n"
            "With --git REV: compare DIST as committed at REV with DIST in the work tree."
        ),
        epilog=_REVIEW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("paths", nargs="*", metavar="PATH", help="OLD NEW, or with --git/--base: [DIST]")
    which = cmd.add_mutually_exclusive_group()
    which.add_argument("--base", metavar="REV", help="compare with DIST at the merge base of REV and HEAD (main)")
    which.add_argument("--git", metavar="REV", help="compare with DIST as committed at REV (e.g. HEAD~1)")
    cmd.set_defaults(run=_review, parser=cmd)


def _review(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    against = None
    try:
        rev = args.base if args.base is not None else args.git
        if rev is not None:
            if len(args.paths) > 1:
                parser.error("with --git or --base, give at most one path (DIST)")
            dist = Path(args.paths[0] if args.paths else "dist")
            if args.base is not None:
                commit = merge_base(rev, dist)
                against = f"`{dist.name}/` at `{commit[:12]}`, the merge base of `{rev}` and `HEAD`"
            else:
                commit = rev
            old, new = load_git(commit, dist), load_path(dist)
        else:
            if len(args.paths) != 2:
                parser.error("give OLD and NEW, or --base REV [DIST], or --git REV [DIST]")
            old, new = load_path(Path(args.paths[0])), load_path(Path(args.paths[1]))
        report = review(old, new)
    except NoRevisionError as error:
        print(f"review: {error.message}", file=sys.stderr)
        return EXIT_NO_REVISION
    except ManifestError as error:
        print(f"review: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(report.markdown(against))
    return report.exit_code


def _add_runbook(commands: argparse._SubParsersAction[_Parser]) -> None:
    cmd = commands.add_parser(
        "runbook",
        help="print a runbook's commands with the names of a rendered manifest",
        description="Print the commands of a runbook of docs/operations.md for the Valkey of MANIFEST.",
    )
    cmd.add_argument("runbook", choices=runbook.RUNBOOKS)
    cmd.add_argument("manifest", metavar="MANIFEST", help="a rendered file, e.g. dist/valkey.k8s.yaml")
    cmd.add_argument("--name", help="the Valkey (StatefulSet) when the file holds several")
    cmd.set_defaults(run=_runbook, parser=cmd)


def _runbook(args: argparse.Namespace) -> int:
    try:
        objects = [o for o in load_path(Path(args.manifest)) if o]
        sys.stdout.write(runbook.text(args.runbook, objects, args.name))
    except (ManifestError, ValueError) as error:
        print(f"runbook: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


# Each adds one subcommand; add yours here.
SUBCOMMANDS: list[Callable[[Any], None]] = [_add_review, _add_runbook]


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m cdk8s_valkey", description="Tools of the cdk8s_valkey library.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(commands)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
