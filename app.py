"""Entry point for `python app.py` and for a Hugging Face Space (app_file: app.py)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from ftassist.commands.serve import add_serve_arguments, serve

    parser = argparse.ArgumentParser(description="ftassist web app")
    add_serve_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
