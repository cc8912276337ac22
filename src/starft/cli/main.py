"""``starft`` command line: a thin layer mapping flags and YAML onto the library's configs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from starft import __version__
from starft.cli import (
    ablate,
    bench,
    concepts,
    demo,
    discover,
    discover_bench,
    evaluate,
    explain,
    ls,
    masks,
    mitigate_bench,
    pools,
    report,
    sandbox,
    train,
    wise_ft,
)
from starft.errors import StarftError

COMMANDS = (
    train,
    evaluate,
    wise_ft,
    explain,
    ls,
    bench,
    sandbox,
    demo,
    ablate,
    report,
    pools,
    concepts,
    masks,
    discover,
    discover_bench,
    mitigate_bench,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starft",
        description="Robust fine-tuning of zero-shot vision-language models "
        "(StarFT and baselines).",
    )
    parser.add_argument("--version", action="version", version=f"starft {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come anywhere, also after options; argparse only takes the ones
    # before the first option as positionals, so the rest are collected here.
    unknown = [a for a in extra if a.startswith("-") or "=" not in a]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # open_clip warns about every randomly initialised model; tiny configs are meant to be.
        logging.getLogger().setLevel(logging.ERROR)
    try:
        return int(args.run(args) or 0)
    except StarftError as err:
        _print_error(err)
        return 2
    except KeyboardInterrupt:
        print("starft: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `starft ls models | head`: the reader went away, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _print_error(err: StarftError) -> None:
    """``starft: error: MESSAGE`` on its own line, once per job.

    Under torchrun an error every rank raised together (``all_ranks``) is printed by rank 0 only;
    an error of one rank alone names its rank.
    """
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if getattr(err, "all_ranks", False) and rank != 0:
        return
    where = f"rank {rank}: " if world_size > 1 and not getattr(err, "all_ranks", False) else ""
    sys.stdout.flush()
    print(f"starft: error: {where}{err}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
