"""``python -m bench [name ...] [--quick] [--out DIR]``: run benchmarks, print their tables.

Without a name, every benchmark runs in order; a full run (no ``--quick``) into the default
output directory also rewrites the tables section of bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from . import BENCHMARKS
from ._common import BENCH_DIR, DEFAULT_OUT, Options, Result

README = BENCH_DIR / "README.md"
BEGIN = "<!-- bench:tables -->"
END = "<!-- /bench:tables -->"


def rewrite_readme(results: list[Result], readme: Path = README) -> None:
    """Replace what lies between the README's table markers with the tables of this run."""
    text = readme.read_text(encoding="utf-8")
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise RuntimeError(f"{readme} lacks the markers {BEGIN} ... {END}")
    body = "\n".join(result.markdown(level=3) for result in results)
    readme.write_text(f"{head}{BEGIN}\n\n{body}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[[], *BENCHMARKS], metavar="name", help=", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="short mode (tiny sizes, few runs): the CI smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory for <name>.md/.json (bench/out)")
    parser.add_argument(
        "--no-suite", action="store_true", help="synth, full mode: leave out the timing of the whole test suite"
    )
    args = parser.parse_args(argv)
    names: list[str] = args.names or list(BENCHMARKS)
    opts = Options(quick=args.quick, out=args.out.resolve(), suite=not args.no_suite)

    results: list[Result] = []
    failed: list[str] = []
    for name in names:
        print(f"\n== bench {name}{' (quick)' if opts.quick else ''} ==", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(BENCHMARKS[name])
            result: Result = module.bench(opts)
        except Exception:  # report, keep going with the others, fail the command at the end
            traceback.print_exc()
            failed.append(name)
            continue
        result.seconds = time.perf_counter() - started
        result.write(opts.out)
        results.append(result)
        print(result.markdown(), flush=True)
        print(f"(written to {opts.out / name}.md and .json)", flush=True)

    if not args.names and not opts.quick and not failed and opts.out == DEFAULT_OUT.resolve():
        rewrite_readme(results)
        print(f"tables of {README} rewritten")
    if failed:
        print(f"benchmarks that crashed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
