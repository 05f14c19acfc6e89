"""``python -m cdk8s_valkey review``: the review of a dist/ change, for people and CI.
``python -m cdk8s_valkey runbook restore MANIFEST``: a runbook's commands for that manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from . import runbook
from .review import ManifestError, NoRevisionError, load_git, load_path, review

EXIT_NO_REVISION = 3
EXIT_USAGE = 64  # EX_USAGE: argparse's own 2 would read as "rejected"

_EPILOG = """\
exit status:
  0   safe: every change applies in place, Valkey keeps running
  1   restarts: Valkey's single pod is replaced (a few seconds of downtime)
  2   rejected or data at risk: the API server refuses an update, or data can be lost
  3   --git REV names no commit (a first commit, or a shallow clone): nothing to compare
  64  usage error: bad arguments, a missing path, a file that is not Kubernetes YAML
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = _Parser(prog="python -m cdk8s_valkey", description="Tools of the cdk8s_valkey library.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    review_cmd = commands.add_parser(
        "review",
        help="review a change of rendered manifests",
        description=(
            "Compare two renderings (files, or directories of *.k8s.yaml) and print, as Markdown\n"
            "for a pull request, a verdict and its reasons for every added, removed or changed object.\n"
            "With --git REV: compare DIST (default: dist) as committed at REV with DIST in the work tree."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    review_cmd.add_argument("paths", nargs="*", metavar="PATH", help="OLD NEW, or with --git: [DIST]")
    review_cmd.add_argument("--git", metavar="REV", help="compare with DIST as committed at REV (e.g. HEAD~1)")
    runbook_cmd = commands.add_parser(
        "runbook",
        help="print a runbook's commands with the names of a rendered manifest",
        description="Print the commands of a runbook of docs/operations.md for the Valkey of MANIFEST.",
    )
    runbook_cmd.add_argument("runbook", choices=runbook.RUNBOOKS)
    runbook_cmd.add_argument("manifest", metavar="MANIFEST", help="a rendered file, e.g. dist/valkey.k8s.yaml")
    runbook_cmd.add_argument("--name", help="the Valkey (StatefulSet) when the file holds several")
    return parser, review_cmd


def _runbook(args: argparse.Namespace) -> int:
    try:
        objects = [o for o in load_path(Path(args.manifest)) if o]
        sys.stdout.write(runbook.text(args.runbook, objects, args.name))
    except (ManifestError, ValueError) as error:
        print(f"runbook: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: list[str] | None = None) -> int:
    parser, review_cmd = _parser()
    args = parser.parse_args(argv)
    if args.command == "runbook":
        return _runbook(args)
    try:
        if args.git is not None:
            if len(args.paths) > 1:
                review_cmd.error("with --git, give at most one path (DIST)")
            dist = Path(args.paths[0] if args.paths else "dist")
            old, new = load_git(args.git, dist), load_path(dist)
        else:
            if len(args.paths) != 2:
                review_cmd.error("give OLD and NEW, or --git REV [DIST]")
            old, new = load_path(Path(args.paths[0])), load_path(Path(args.paths[1]))
        report = review(old, new)
    except NoRevisionError as error:
        print(f"review: no previous revision: {error.args[0]!r} names no commit in this clone", file=sys.stderr)
        return EXIT_NO_REVISION
    except ManifestError as error:
        print(f"review: {error}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(report.markdown())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
