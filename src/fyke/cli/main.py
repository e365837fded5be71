"""fykectl: the command line."""

from __future__ import annotations

import argparse
import os
import select
import sys
from collections.abc import Sequence

from fyke.api.errors import ValidationError
from fyke.cli import lab, policy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fykectl", description="fyke: network policy tools and the lab"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    policy.register(sub)
    lab.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except (ValidationError, RuntimeError) as e:  # the lab raises RuntimeError for the user
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # some other pipe (a subprocess, a socket): a real error
        # `fykectl ... | head -1`: the reader has what it wanted. Output still buffered
        # would fail again at exit, so it goes to /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    return code


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


if __name__ == "__main__":
    sys.exit(main())
