"""`ftassist eval`: arena models measured on held-out chat examples (ROUGE-L, BLEU, exact match and the
per-class table, loss and perplexity, forgetting, overfitting, each with its interval), set beside the human
votes and the LLM judge, with one verdict per fine-tuned model, through the `evaluate_models` use case."""

from __future__ import annotations

import json
from pathlib import Path

from ftassist.cli import CLIError

from . import gateway

MEASURES = ("rouge_l", "bleu", "exact_match", "loss", "perplexity")
_ROW_KEYS = ("model", "display_name", "kind", "base", *MEASURES, "intervals", "n_generated", "n_generation_errors",
             "first_error", "note", "n_tokens", "per_class", "forgetting", "overfitting", "human", "judge", "verdict",
             "predictions")


def _cell(value, interval) -> str:
    if value is None:
        return "-"
    text = f"{value:.4g}"
    if interval:
        text += f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return text


def evaluate(args) -> int:
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names:
        raise CLIError("give --models A,B (arena model ids or names, the base first; `ftassist arena models` "
                       "lists them)")
    data = str(Path(args.data).expanduser().resolve()) if args.data else None
    result = gateway.call("evaluate_models", models=names, data=data, max_examples=args.max_examples,
                          temperature=args.temperature, max_new_tokens=args.max_new_tokens, rounds=args.rounds)
    if args.json:  # one JSON object per model, every measure and its interval in it
        for row in result["models"]:
            print(json.dumps(dict({k: row.get(k) for k in _ROW_KEYS}, data=result["data"],
                                  data_hash=result["data_hash"], data_source=result["data_source"],
                                  evaluation_id=result["id"], n_scored=result["n_scored"], labels=result["labels"],
                                  sampling=result["sampling"], judge_agreement=result["judge_agreement"]),
                             ensure_ascii=False))
        return 0
    print(f"{result['n_scored']} of {result['n_examples']} examples scored from {result['data']}"
          + (f" ({result['data_source']})" if result["data_source"] else "")
          + (" (the references read as labels: exact match is the task accuracy)" if result["labels"] else ""))
    print("95% bootstrap intervals in brackets, where there are enough examples.")
    print(f"{'model':<24} " + " ".join(f"{m:>22}" for m in MEASURES))
    for row in result["models"]:
        intervals = row.get("intervals") or {}
        print(f"{row['display_name'][:24]:<24} " + " ".join(f"{_cell(row[m], intervals.get(m)):>22}" for m in MEASURES))
        if row["n_generation_errors"]:
            print(f"  {row['n_generation_errors']} answer(s) failed, the first: {row['first_error']}")
        if result["labels"] and row.get("per_class"):
            print("  per class: " + ", ".join(
                f"{c['label']} {c['correct']}/{c['n']}" + (f" (F1 {c['f1']:.2f})" if c["f1"] is not None else "")
                for c in row["per_class"]))
        overfit = row.get("overfitting") or {}
        if overfit.get("note") and overfit.get("overfitting"):
            print(f"  overfitting: {overfit['note']}")
        if row.get("verdict"):
            print(f"  verdict: {row['verdict']}")
    if result.get("judge_agreement"):
        agreement = result["judge_agreement"]
        print(f"LLM judge agrees with the human votes {agreement['agreement']:.0%} of the time "
              f"({agreement['n_pairs']} votes).")
    print(f"Stored as evaluation {result['id']} (data sha256 {result['data_hash'][:12]}).")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="measure arena models on held-out chat examples (ROUGE-L, BLEU, exact "
                                    "match, loss, perplexity, forgetting) with intervals and a verdict")
    p.add_argument("--models", required=True, help="comma-separated model ids or names, the base model first")
    p.add_argument("--data", help="held-out chat JSONL (each example's last assistant turn is the reference); "
                                  "default: the newest test split, else validation split, under the data dir")
    p.add_argument("--max-examples", dest="max_examples", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=256)
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap resamples for the intervals")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.set_defaults(func=evaluate)
