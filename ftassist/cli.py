"""The `ftassist` command: the same core as the app, headless.

Each station registers its own subcommands (`ftassist/commands/*.py`), so this file
only dispatches and turns failures into one clear line on stderr (exit 2), never a
traceback: a person at a terminal should be told what to do, not where we crashed.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

# Each module exposes `register(subparsers)` and sets `func(args) -> int` on its parsers.
COMMAND_MODULES = ("data", "plan", "train", "arena", "evaluate", "serve", "export")


class CLIError(Exception):
    """A failure to report as one line with exit code 2 (the input cannot be used at all)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftassist",
        description="Fine-tuning assistant: check data, estimate cost, train, and evaluate LLMs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = import_module(f"ftassist.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `ftassist ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ftassist: interrupted", file=sys.stderr)
        return 130
    except CLIError as exc:
        print(f"ftassist: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("FTASSIST_DEBUG"):
            raise
        print(f"ftassist: {type(exc).__name__}: {exc} (set FTASSIST_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
