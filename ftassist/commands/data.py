"""`ftassist check`, `ftassist clean`, `ftassist pairs` and `ftassist datasets`: the Data step headless.

While an app serves the data dir the command runs in the app, which reads only files under its data
dir and uploads: a file named here that lies elsewhere goes up as a copy under the data dir's uploads
folder (this command runs as the person who named it), and a `--out` folder elsewhere gets the files
the app wrote.

Exit codes are a contract later checks rely on: 0 no errors (warnings allowed),
1 the dataset has errors, 2 the file cannot be read at all (one line on stderr).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ftassist.cli import CLIError
from ftassist.commands import gateway
from ftassist.commands.app_paths import brought, data_dir, for_app, out_for_app
from ftassist.data.mapping import MappingError, parse_mapping

MAX_LISTED = 20
MAP_HELP = ("which keys hold the example when the records are in no known format, e.g. "
            "prompt=instruction,input=instances[].input,answer=instances[].output (roles: prompt, input, answer, "
            "system, messages; list[].key makes one example per item; chosen and rejected instead of answer make "
            "preference pairs)")
# preferences.PAIR_EXPORT_FORMATS, written out so that every command does not import the pairs module to start
# (a test keeps the two equal)
PAIR_EXPORT_FORMATS = ("trl", "openai_dpo", "sharegpt", "trl_standard", "trl_implicit")
STATUS_LABEL = {"not_checked": "N/A "}  # nothing to judge: never shown as a PASS


def _progress_printer():
    """Progress on a terminal's stderr, when the check runs in this process (a callback cannot
    travel to the running app)."""
    if not sys.stderr.isatty() or gateway.through_app():
        return None

    def progress(fraction: float, desc: str) -> None:
        print(f"\r{fraction:6.1%} {desc}", end="", file=sys.stderr, flush=True)

    return progress


def _mapping(args) -> dict | None:
    """`--map prompt=question,answer=answer` as the use cases take it; a bad one is a one-line error."""
    if not getattr(args, "map", None):
        return None
    try:
        return parse_mapping(args.map).to_dict()
    except MappingError as exc:
        raise CLIError(f"--map: {exc}") from None


def run_check(args) -> int:
    mapping = _mapping(args)
    progress = None if args.json else _progress_printer()
    extra = {"progress": progress} if progress else {}
    paths = [for_app(path) for path in args.paths]
    if len(paths) > 1:  # several sources, one dataset; a single one is asked exactly as before
        extra["paths"] = paths[1:]
    result = gateway.call("check_dataset", path=paths[0], model=args.model, context_limit=args.context_limit,
                          encoding=args.encoding, mapping=mapping, **extra)
    if progress:
        print(file=sys.stderr)
    report = result["report"]
    if args.json:  # orjson: the report of a large file is long lists of numbers
        import orjson

        sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
        sys.stdout.flush()
    else:
        print(render_text(report))
    if result.get("note"):
        print(f"ftassist: {result['note']}", file=sys.stderr)
    return 1 if report["errors"] else 0


def _where(group: dict) -> str:
    """Where a group of issues is: "line 3" / "lines 1-4,130", or `file:3` / `file:1-4,130` when the check read
    several files, and "file" (`file: file`) for the file as a whole."""
    source = group.get("source")
    if source:
        return f"{source}: the file" if group["lines"] == "file" else f"{source}:{group['lines']}"
    return "file" if group["lines"] == "file" else f"line{'s' if group['count'] > 1 else ''} {group['lines']}"


def _grouped(groups: list[dict] | None, issues: list[dict], kind: str) -> list[str]:
    """One row per group of identical issues ("lines 1-4,130: ..."); a report without groups lists its issues."""
    if groups is None:
        groups = [{"lines": str(i["line"]) if i.get("line") else "file", "count": 1, **i} for i in issues]
    out = []
    for group in groups[:MAX_LISTED]:
        where = _where(group)
        hint = f" (fix: {group['hint']})" if kind == "error" and group.get("hint") else ""
        out.append(f"  {kind} {where}: [{group['code']}] {group['message']}{hint}")
    if len(groups) > MAX_LISTED:
        out.append(f"  ... and {len(groups) - MAX_LISTED:,} more kinds of {kind}s (use --json for all)")
    return out


def render_text(report: dict) -> str:
    errors, warnings = report["errors"], report["warnings"]
    preference = report.get("preference")
    if preference:
        out = [f"{report['path']}: {report['n_records']:,} records, {report['n_examples']:,} valid preference pairs, "
               f"format {preference['title']}, {len(errors):,} errors, {len(warnings):,} warnings"]
        length = preference.get("length") or {}
        if length.get("compared"):
            out.append(f"pairs: chosen longer in {length['chosen_longer_share']:.0%} of {length['compared']:,} "
                       f"compared; chosen/rejected length median x{length['median_ratio']:.2f}, "
                       f"mean x{length['mean_ratio']:.2f}")
    else:
        out = [
            f"{report['path']}: {report['n_records']:,} records, {report['n_examples']:,} valid examples, "
            f"format {report.get('format') or 'unknown'}, {len(errors):,} errors, {len(warnings):,} warnings"
        ]
    sources = report.get("sources") or []
    if sources:  # several files as one dataset: what each gave, in its own format
        out[0] = (f"{len(sources)} sources: {report['n_records']:,} records, {report['n_examples']:,} valid "
                  f"{'preference pairs' if preference else 'examples'}, format {report.get('format') or 'unknown'}, "
                  f"{len(errors):,} errors, {len(warnings):,} warnings")
        for source in sources:
            out.append(f"  {source['name']}: {source['n_records']:,} records, {source['n_examples']:,} valid, "
                       f"format {source.get('format') or 'unknown'} ({source['path']})")
    if report.get("mapping"):
        out.append("mapped: " + ", ".join(f"{role} = {path}" for role, path in report["mapping"].items()))
    tokens = report.get("tokens") or {}
    if tokens.get("per_example"):
        st = tokens["stats"]["total"]
        about = "" if tokens.get("exact", True) else "~"  # every figure marked when approximate
        unit = "pair (prompt+chosen and prompt+rejected)" if preference else "example"
        out.append(
            f"tokens ({tokens['encoding']}{'' if about == '' else ', approximate'}): total {about}{tokens['total']:,}, "
            f"per {unit} min {about}{st['min']:,} / median {about}{st['median']:,.0f} / p95 {about}{st['p95']:,.0f} / "
            f"max {about}{st['max']:,}"
        )
        if about:
            from ftassist.data.tokens import approximate_note

            out.append("  " + approximate_note(tokens, report.get("model")))
    for cause in report.get("diagnosis") or []:  # said once, before the rows it explains
        where = "the whole file" if cause["lines"] == "file" else f"lines {cause['lines']}"
        if cause.get("source"):
            where = f"{cause['source']}: the whole file" if cause["lines"] == "file" else f"{cause['source']}:{cause['lines']}"
        out.append(f"FILE PROBLEM [{cause['code']}] {where} ({cause['count']:,} records): {cause['message']}. "
                   f"Fix: {cause['hint']}" + ("" if cause.get("fixable") or "--map" in cause["hint"]
                                               else " (by hand: `ftassist clean` cannot)"))
    if report.get("error_counts"):
        out.append("errors by code: " + ", ".join(f"{k} {v}" for k, v in report["error_counts"].items()))
    out.extend(_grouped(report.get("error_groups"), errors, "error"))
    out.extend(_grouped(report.get("warning_groups"), warnings, "warning"))
    out.append("checklist:")
    for item in report.get("checklist") or []:
        out.append(f"  [{STATUS_LABEL.get(item['status'], item['status'].upper()):4}] {item['title']}: {item['summary']}")
    return "\n".join(out)


def run_clean(args) -> int:
    fill = {}
    for item in args.fill:
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise CLIError(f"--fill takes NAME=VALUE (e.g. --fill name=Ada), not {item!r}")
        fill[name.strip()] = value
    out, copy_to = out_for_app(args.out)
    paths = [for_app(path) for path in args.paths]
    several = {"paths": paths[1:]} if len(paths) > 1 else {}
    result = gateway.call("clean_dataset", path=paths[0], valid_fraction=args.valid_fraction,
                          seed=args.seed, out=out, fill=fill or None, mapping=_mapping(args),
                          test_fraction=args.test_fraction, **several)
    if copy_to is not None:
        result = brought(result, Path(result["folder"]), copy_to, "the split is")
    if args.json:
        print(json.dumps(result))
    elif result.get("kind") == "preference":
        print(
            f"{result['n_in']:,} records in: {result['n_train']:,} train, {result['n_valid']:,} validation"
            f"{_test_count(result)} pairs (no prompt on both sides); dropped {result['n_dropped_invalid']:,} invalid, "
            f"{result['n_dropped_identical']:,} with chosen = rejected, {result['n_dropped_empty']:,} with an empty "
            f"answer and {result['n_dropped_duplicates']:,} repeated pairs"
        )
        print(_split_files(result))
        for fmt, path in (result.get("exports") or {}).items():
            print(f"  {fmt}: {path}")
    else:
        if result.get("n_recovered"):
            print(f"recovered {result['n_recovered']:,} records: {result['repaired']}")
        print(
            f"{result['n_in']:,} records in: {result['n_train']:,} train, {result['n_valid']:,} validation"
            f"{_test_count(result)}; dropped "
            f"{result['n_dropped_invalid']:,} invalid, {result['n_dropped_duplicates']:,} duplicates and "
            f"{result['n_dropped_empty']:,} empty answers"
        )
        print(_split_files(result))
    return 0


def _test_count(result: dict) -> str:
    return f", {result['n_test']:,} test" if result.get("n_test") else ""


def _split_files(result: dict) -> str:
    """Where the split went, one file a line (the test split only when there is one)."""
    test = f"\n  test: {result['test_path']} (for `ftassist eval`: never trained on)" if result.get("n_test") else ""
    return f"  train: {result['train_path']}\n  valid: {result['valid_path']}{test}\n  dropped: {result['dropped_path']}"


def run_pairs_convert(args) -> int:
    target = Path(args.out).expanduser().resolve() if args.out else None
    through_app = gateway.through_app()
    ask_out = str(target) if target and not (through_app and not target.is_relative_to(data_dir().resolve())) \
        else None
    result = gateway.call("convert_pairs", path=for_app(args.path), to=args.to, out=ask_out)
    if target is not None and ask_out is None:  # the app wrote under its data dir: the copy goes where asked
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result["path"], target)
        except OSError as exc:
            raise CLIError(f"the pairs are in {result['path']}, but copying them to {target} failed: "
                           f"{exc.strerror or exc}") from None
        result = {**result, "path": str(target)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['n_written']:,} of {result['n_pairs']:,} valid pairs written as {result['format']}: {result['path']}")
    if result["n_skipped"]:
        print(f"  {result['n_skipped']:,} pairs left out: {result['format']} cannot hold them (tool calls, several "
              "prompt turns in plain text...)")
    if result["n_invalid"]:
        print(f"  {result['n_invalid']:,} invalid records left out (`ftassist check {args.path}` lists each):")
        for problem in result["problems"]:
            print(f"    {problem}")
    return 0


def run_datasets(args) -> int:
    rows = gateway.call("list_datasets", limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No dataset checked yet: `ftassist check FILE` checks one (the app's Data step too).")
        return 0
    headers = ["checked at", "examples", "errors", "format", "name", "path"]
    table = [[(r["checked_at"] or "")[:19].replace("T", " "), f"{r['n_examples']:,}", f"{r['n_errors']:,}",
              r["format"] or "?", r["name"], r["path"] + ("" if r["exists"] else " (gone)")] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in table:
        print("  ".join(c.rjust(w) if i in (1, 2) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return 0


def register(sub) -> None:
    check = sub.add_parser("check", help="validate a dataset, score it against the checklist, count tokens")
    check.add_argument("paths", nargs="+", metavar="PATH",
                       help="a .jsonl/.json/.csv/.parquet file, or a Hugging Face dataset id (hf:org/name, "
                            "hf:org/name:subset@split); several are checked as one dataset, each issue as file:line")
    check.add_argument("--model", help="target model (sets the tokenizer and the per-example limit)")
    check.add_argument("--encoding", help="tiktoken encoding (overrides the one derived from --model)")
    check.add_argument("--context-limit", type=int, help="per-example token limit (default: the model's)")
    check.add_argument("--map", metavar="ROLE=KEY,...", help=MAP_HELP)
    check.add_argument("--json", action="store_true", help="print the DataReport as JSON")
    check.set_defaults(func=run_check)

    clean = sub.add_parser("clean", help="drop invalid records and duplicates, trim, split train/validation")
    clean.add_argument("paths", nargs="+", metavar="PATH",
                       help="the dataset file(s) or Hugging Face id(s); several make one split, duplicates dropped "
                            "across them")
    clean.add_argument("--out", required=True, help="output folder")
    clean.add_argument("--valid-fraction", type=float, default=0.1)
    clean.add_argument("--test-fraction", type=float, default=None,
                       help="share held out as a test split for `ftassist eval`, never trained on (default: 0.1 when "
                            "at least 200 examples are kept, none below; 0: no test split)")
    clean.add_argument("--seed", type=int, default=42)
    clean.add_argument("--fill", action="append", default=[], metavar="NAME=VALUE",
                       help="fill the placeholder {{NAME}} with VALUE in every text (repeatable)")
    clean.add_argument("--map", metavar="ROLE=KEY,...", help=MAP_HELP)
    clean.add_argument("--json", action="store_true")
    clean.set_defaults(func=run_clean)

    pairs = sub.add_parser("pairs", help="preference pairs (DPO data): convert between formats")
    pairs_sub = pairs.add_subparsers(dest="pairs_command", required=True)
    convert = pairs_sub.add_parser("convert", help="write a file of preference pairs in another format")
    convert.add_argument("path", help="OpenAI DPO, TRL (prompt/chosen/rejected) or ShareGPT pairs")
    convert.add_argument("--to", default="trl", choices=PAIR_EXPORT_FORMATS,
                         help="trl: conversational with an explicit prompt (what ftassist trains on; default); "
                              "openai_dpo; sharegpt (LLaMA-Factory); trl_standard (plain text); trl_implicit")
    convert.add_argument("--out", help="the file to write (default: under the data dir's exports folder)")
    convert.add_argument("--json", action="store_true")
    convert.set_defaults(func=run_pairs_convert)

    listing = sub.add_parser("datasets", help="list the datasets checked so far, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many to list (default 20)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_datasets)
