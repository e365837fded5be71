"""fykectl: the command line."""

from __future__ import annotations

import argparse
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
    except (ValidationError, RuntimeError) as e:  # the lab raises RuntimeError for the user
        print(f"error: {e}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
