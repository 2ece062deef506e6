"""`ftassist export`: take a fine-tuned model home (merged weights, Ollama, vLLM, GGUF) or push it to the Hub,
through the `export_model` and `push_model` use cases."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ftassist.cli import CLIError

from . import gateway
from .app_paths import brought, out_for_app

TARGETS = ("merged", "ollama", "vllm", "gguf")


def run_export(args) -> int:
    if args.push_to:
        if args.to not in (None, "merged"):
            raise CLIError("--push-to uploads the adapter, or the merged model with --to merged; not --to "
                           f"{args.to}")
        result = gateway.call("push_model", model=args.model, repo_id=args.push_to, private=not args.public,
                              merged=args.to == "merged")
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            what = "merged model" if result["merged"] else "model"
            print(f"Pushed the {what} {result['model']} to {result['url']} "
                  f"({'private' if result['private'] else 'public'})")
        return 0
    if not args.to:
        raise CLIError(f"say where the model goes: --to {{{','.join(TARGETS)}}} (or --push-to OWNER/NAME)")
    out, bring_to = out_for_app(args.out)
    result = gateway.call("export_model", model=args.model, to=args.to, out=out or "")
    if bring_to is not None:  # the running app wrote under its data dir: the files go where the person said
        result = brought(result, Path(result["out_dir"]), bring_to, "the export is", move=True)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    for path in result["files"][:20]:
        print(path)
    if len(result["files"]) > 20:
        print(f"... and {len(result['files']) - 20} more files in {result['out_dir']}")
    if args.to == "vllm":
        print(shlex.join(result["command"]))
    print(result["message"])
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="take a fine-tuned model home: merged weights, an Ollama Modelfile, a "
                                      "vLLM command, GGUF, or the Hub")
    p.add_argument("model", help="an arena model's id or name, or a run id (`ftassist jobs`)")
    p.add_argument("--to", choices=TARGETS, help="merged: adapter merged into its base; ollama: a Modelfile; "
                                                 "vllm: serve.sh with the `vllm serve` command; gguf: for llama.cpp")
    p.add_argument("--out", help="folder to write to (default: a new folder under the data dir's exports/)")
    p.add_argument("--push-to", dest="push_to", metavar="OWNER/NAME",
                   help="upload to this Hub repo instead (needs HF_TOKEN; the adapter, or the merged model "
                        "with --to merged)")
    p.add_argument("--public", action="store_true", help="with --push-to: make the repo public (default private)")
    p.add_argument("--json", action="store_true", help="one JSON object: the files written (and the command)")
    p.set_defaults(func=run_export)
