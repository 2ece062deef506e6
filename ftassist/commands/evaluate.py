"""`ftassist eval`: arena models measured on held-out chat examples (ROUGE-L, BLEU, exact match,
loss and perplexity, forgetting), through the `evaluate_models` use case."""

from __future__ import annotations

import json
from pathlib import Path

from ftassist.cli import CLIError

from . import gateway

MEASURES = ("rouge_l", "bleu", "exact_match", "loss", "perplexity")


def evaluate(args) -> int:
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names:
        raise CLIError("give --models A,B (arena model ids or names; `ftassist arena models` lists them)")
    result = gateway.call("evaluate_models", models=names, data=str(Path(args.data).expanduser().resolve()),
                          max_examples=args.max_examples, temperature=args.temperature,
                          max_new_tokens=args.max_new_tokens)
    if args.json:  # one JSON object per model, every measure in it
        for row in result["models"]:
            print(json.dumps(dict(row, data=result["data"], n_scored=result["n_scored"], labels=result["labels"],
                                  sampling=result["sampling"]), ensure_ascii=False))
        return 0
    print(f"{result['n_scored']} of {result['n_examples']} examples scored from {result['data']}"
          + (" (the references read as labels: read exact match)" if result["labels"] else ""))
    print(f"{'model':<30} " + " ".join(f"{m:>11}" for m in MEASURES))
    for row in result["models"]:
        cells = ["-" if row[m] is None else f"{row[m]:.4g}" for m in MEASURES]
        print(f"{row['display_name'][:30]:<30} " + " ".join(f"{c:>11}" for c in cells))
        if row["n_generation_errors"]:
            print(f"  {row['n_generation_errors']} answer(s) failed, the first: {row['first_error']}")
        if row["forgetting"]:
            f = row["forgetting"]
            print(f"  general-text perplexity {f['base_perplexity']:.4g} -> {f['tuned_perplexity']:.4g} "
                  f"(x{f['ratio']:.3f}){': it forgot general language' if f['forgot'] else ''}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="measure arena models on held-out chat examples (ROUGE-L, BLEU, exact "
                                    "match, loss, perplexity)")
    p.add_argument("--models", required=True, help="comma-separated model ids or names, the base model first")
    p.add_argument("--data", required=True, help="held-out chat JSONL (each example's last assistant turn is "
                                                 "the reference)")
    p.add_argument("--max-examples", dest="max_examples", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=256)
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.set_defaults(func=evaluate)
