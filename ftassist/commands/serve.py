"""`ftassist serve`: the same as `python app.py`."""

from __future__ import annotations


def add_serve_arguments(parser) -> None:
    parser.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1; 0.0.0.0 on a Space)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or $GRADIO_SERVER_PORT)")
    parser.add_argument("--arena-only", action="store_true", help="serve only the blind voting page")
    parser.add_argument("--share", action="store_true", help="create a public Gradio share link")


def serve(args) -> int:
    from ftassist.ui.layout import launch

    launch(host=args.host, port=args.port, arena_only=args.arena_only, share=args.share)
    return 0


def register(sub) -> None:
    parser = sub.add_parser("serve", help="start the web app")
    add_serve_arguments(parser)
    parser.set_defaults(func=serve)
