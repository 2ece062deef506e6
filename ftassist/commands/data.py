"""`ftassist check` and `ftassist clean`: the Data step headless.

Exit codes are a contract later checks rely on: 0 no errors (warnings allowed),
1 the dataset has errors, 2 the file cannot be read at all (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ftassist.cli import CLIError

MAX_LISTED = 20


def context_limit_for(model: str | None) -> int | None:
    """The per-example token limit of a target model, from the pricing data (None when unknown)."""
    if not model:
        return None
    from ftassist.plan.pricing import get_price

    try:
        return get_price(model).example_limit
    except (KeyError, ValueError):  # a model the price file does not know: no limit to check against
        return None


def resolve_input(path_or_id: str) -> Path:
    """A local file, or a Hugging Face dataset id (`hf:org/name` or an id that is not a local path)."""
    from ftassist.data.load import LoadError, load_hub_dataset

    if path_or_id.startswith("hf:"):
        name = path_or_id[3:]
    else:
        path = Path(path_or_id)
        if path.exists() or "/" not in path_or_id or path.suffix:
            if not path.exists():
                raise CLIError(f"{path_or_id}: no such file")
            return path
        name = path_or_id
    try:
        return load_hub_dataset(name)
    except LoadError as exc:
        raise CLIError(str(exc)) from None


def run_check(args) -> int:
    from ftassist.data.check import check_path
    from ftassist.data.load import LoadError

    path = resolve_input(args.path)
    limit = args.context_limit or context_limit_for(args.model)
    progress = None
    if not args.json and sys.stderr.isatty():
        def progress(fraction: float, desc: str) -> None:
            print(f"\r{fraction:6.1%} {desc}", end="", file=sys.stderr, flush=True)
    try:
        report = check_path(path, model=args.model, encoding=args.encoding, context_limit=limit, progress=progress)
    except LoadError as exc:
        raise CLIError(f"{path}: {exc}") from None
    if progress:
        print(file=sys.stderr)
    if args.json:  # orjson writes the dataclasses directly: the same JSON as to_dict(), 100x faster
        import orjson

        sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
        sys.stdout.flush()
    else:
        print(render_text(report))
    return 1 if report.errors else 0


def render_text(report) -> str:
    out = [
        f"{report.path}: {report.n_records:,} records, {report.n_examples:,} valid examples, "
        f"format {report.format or 'unknown'}, {len(report.errors):,} errors, {len(report.warnings):,} warnings"
    ]
    if report.tokens and report.tokens.per_example:
        st = report.tokens.stats["total"]
        out.append(
            f"tokens ({report.tokens.encoding}): total {report.tokens.total:,}, per example min {st['min']:,} / "
            f"median {st['median']:,.0f} / p95 {st['p95']:,.0f} / max {st['max']:,}"
        )
    if report.error_counts:
        out.append("errors by code: " + ", ".join(f"{k} {v}" for k, v in report.error_counts.items()))
    for issue in report.errors[:MAX_LISTED]:
        where = f"line {issue.line}" if issue.line else "file"
        col = f", column {issue.column}" if issue.column else ""
        out.append(f"  error {where}{col}: [{issue.code}] {issue.message}" + (f" (fix: {issue.hint})" if issue.hint else ""))
    if len(report.errors) > MAX_LISTED:
        out.append(f"  ... and {len(report.errors) - MAX_LISTED:,} more errors (use --json for all)")
    for issue in report.warnings[:MAX_LISTED]:
        where = f"line {issue.line}" if issue.line else "file"
        out.append(f"  warning {where}: [{issue.code}] {issue.message}")
    out.append("checklist:")
    for item in report.checklist:
        out.append(f"  [{item.status.upper():4}] {item.title}: {item.summary}")
    return "\n".join(out)


def run_clean(args) -> int:
    from ftassist.data.clean import clean_file
    from ftassist.data.load import LoadError

    if not 0 <= args.valid_fraction < 1:
        raise CLIError(f"--valid-fraction must be at least 0 and below 1 (got {args.valid_fraction})")
    path = resolve_input(args.path)
    try:
        result = clean_file(path, args.out, valid_fraction=args.valid_fraction, seed=args.seed)
    except LoadError as exc:
        raise CLIError(f"{path}: {exc}") from None
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(
            f"{result.n_in:,} records in: {result.n_train:,} train, {result.n_valid:,} validation; dropped "
            f"{result.n_dropped_invalid:,} invalid, {result.n_dropped_duplicates:,} duplicates and "
            f"{result.n_dropped_empty:,} empty answers"
        )
        print(f"  train: {result.train_path}\n  valid: {result.valid_path}\n  dropped: {result.dropped_path}")
    return 0


def register(sub) -> None:
    check = sub.add_parser("check", help="validate a dataset, score it against the checklist, count tokens")
    check.add_argument("path", help="a .jsonl/.json/.csv/.parquet file, or a Hugging Face dataset id (hf:org/name)")
    check.add_argument("--model", help="target model (sets the tokenizer and the per-example limit)")
    check.add_argument("--encoding", help="tiktoken encoding (overrides the one derived from --model)")
    check.add_argument("--context-limit", type=int, help="per-example token limit (default: the model's)")
    check.add_argument("--json", action="store_true", help="print the DataReport as JSON")
    check.set_defaults(func=run_check)

    clean = sub.add_parser("clean", help="drop invalid records and duplicates, trim, split train/validation")
    clean.add_argument("path")
    clean.add_argument("--out", required=True, help="output folder")
    clean.add_argument("--valid-fraction", type=float, default=0.1)
    clean.add_argument("--seed", type=int, default=42)
    clean.add_argument("--json", action="store_true")
    clean.set_defaults(func=run_clean)
