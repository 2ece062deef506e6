"""`ftassist estimate`, `ftassist guide` and `ftassist providers`: the Estimate and Decide steps in the terminal,
and where a fine-tune can run today."""

from __future__ import annotations

import json
import sys

from ftassist.cli import CLIError
from ftassist.commands import gateway


# --------------------------------------------------------------------------- estimate


def _parse_pairs(items: list[str] | None, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"{what} must look like NAME=VALUE, not {item!r}")
        key, value = item.rsplit("=", 1)
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise CLIError(f"{what}: {value!r} is not a number") from None
    return out


def _token_arguments(args) -> dict:
    """Which counts to estimate, from the flags: a dataset PATH, one example from a file, or quick mode."""
    quick = args.examples is not None or args.avg_tokens is not None or args.example_file
    if args.path and quick:
        raise CLIError("give either a dataset PATH or --examples/--avg-tokens, not both")
    if args.path:
        return {"path": args.path}
    if args.example_file:
        if args.examples is None:
            raise CLIError("--example-file needs --examples N (how many examples like it)")
        try:
            with open(args.example_file, encoding="utf-8") as f:
                lines = f.read().strip().splitlines()
        except OSError as exc:
            raise CLIError(f"{args.example_file}: {exc.strerror or exc}") from None
        if not lines:
            raise CLIError(f"{args.example_file} is empty: put one example (a JSON line) in it")
        return {"example": lines[0], "n_examples": args.examples}
    if args.examples is None or args.avg_tokens is None:
        raise CLIError("give a dataset PATH, or both --examples N and --avg-tokens T (quick mode)")
    return {"n_examples": args.examples, "avg_tokens": args.avg_tokens, "output_tokens": args.output_tokens}


def build_options(args) -> dict:
    """The estimate's options (EstimateOptions fields) from the flags. --model alone shows only OpenAI
    options, --base-model/--method/--gpu alone only self-hosted ones."""
    openai_filter = bool(args.model)
    self_filter = bool(args.base_model or args.method or args.gpu)
    return {
        "openai_models": args.model or None,
        "epochs": args.epochs,
        "training_price": args.training_price,
        "prices": _parse_pairs(args.price, "--price"),
        "base_models": args.base_model or None,
        "methods": args.method or None,
        "gpus": args.gpu or None,
        "gpu_prices": _parse_pairs(args.gpu_price, "--gpu-price"),
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
        "lora_rank": args.lora_rank,
        "mfu": args.mfu,
        "requests_per_month": args.requests_per_month,
        "include_openai": not args.no_openai and (openai_filter or not self_filter),
        "include_self_hosted": not args.no_self_hosted and (self_filter or not openai_filter),
        "include_hf_jobs": not args.no_hf_jobs and (self_filter or not openai_filter),
        "include_together": not args.no_together and (self_filter or not openai_filter),
        "flavors": args.flavor or None,
        "together_rate": args.together_rate,
        "objective": args.objective,
        "precompute_reference": args.precompute_reference,
    }


def estimate_json(table: dict) -> dict:
    """The JSON of `--json`: the whole table (`options`: every row, each with backend, hardware, fits, hours, cost_usd,
    available and why), plus the single option's keys at the top when only one is shown."""
    out = {"epochs": table["inputs"]["epochs"], **table, "options": table["rows"]}
    del out["rows"]
    openai_rows = [r for r in table["rows"] if r["kind"] == "openai"]
    self_rows = [r for r in table["rows"] if r["kind"] == "self_hosted"]
    if len(openai_rows) == 1:
        r = openai_rows[0]
        out.update({k: r[k] for k in ("billing_tokens", "trained_tokens", "training_cost_usd")})
    if len(self_rows) == 1:
        r = self_rows[0]
        out.update({k: r[k] for k in ("memory_gb", "fits", "hours", "cost_usd")})
        if not openai_rows:
            out.update({k: r[k] for k in ("billing_tokens", "trained_tokens", "training_cost_usd")})
    return out


def _format_table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) >= 1 or v == 0 else f"{v:.4f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in text:
        lines.append("  ".join(c.rjust(w) if i >= 2 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def run_estimate(args) -> int:
    from ftassist.plan import estimate as est

    result = gateway.call("estimate_options", **_token_arguments(args), options=build_options(args))
    for warning in result["warnings"]:
        print(f"ftassist: {warning} (see `ftassist check`)", file=sys.stderr)
    table = result["table"]
    if args.json:
        print(json.dumps(estimate_json(table), indent=2))
        return 0
    inp = table["inputs"]
    what = "preference pairs (prompt + chosen + prompt + rejected)" if inp.get("pairs") else "examples"
    print(f"{inp['n_examples']:,} {what}, {inp['total_tokens']:,} tokens "
          f"({'exact' if inp['exact'] else 'estimated'}, {inp['encoding']}); {inp['epochs_how']}")
    for note in table["notes"]:
        print(f"  - {note}")
    print()
    print(_format_table(est.DISPLAY_HEADERS, est.display_rows(table)))
    print()
    print(table["recommendation"])
    if args.how:
        print()
        print(est.how_markdown(table))
    else:
        print("(add --how to see how every figure was computed, --json for all of it)")
    return 0


def add_estimate_parser(sub) -> None:
    p = sub.add_parser(
        "estimate",
        help="cost, memory and time of every way to fine-tune a dataset",
        description="Compare this machine's GPU, Hugging Face Jobs, Together AI and OpenAI fine-tuning, with "
        "self-hosted full/LoRA/QLoRA on each catalogue GPU. Give a dataset PATH "
        "(its exact token counts are used) or quick mode: --examples N --avg-tokens T. --model alone shows only "
        "OpenAI options; --base-model/--method/--gpu alone show only self-hosted ones.",
    )
    p.add_argument("path", nargs="?", help="dataset file (JSONL, JSON, CSV, Parquet)")
    p.add_argument("--examples", type=int, help="quick mode: number of examples")
    p.add_argument("--avg-tokens", type=float, help="quick mode: average tokens per example")
    p.add_argument("--output-tokens", type=float, help="quick mode: average reply tokens (default 25%% of the example)")
    p.add_argument("--example-file", help="quick mode: a file whose first line is one example to count exactly")
    p.add_argument("--model", action="append", help="OpenAI model (repeatable); default: all current ones")
    p.add_argument("--epochs", default="auto", help="N or auto (OpenAI's rule; default)")
    p.add_argument("--training-price", type=float, metavar="USD_PER_1M", help="override the training price per 1M tokens")
    p.add_argument("--price", action="append", metavar="FIELD=USD_PER_1M",
                   help="override another price: input, cached_input, output, training (repeatable)")
    p.add_argument("--requests-per-month", type=int, default=10_000, help="projected traffic for the inference cost")
    p.add_argument("--base-model", action="append", help="open base model: catalogue id, local folder, or Hub id (repeatable)")
    p.add_argument("--method", action="append", choices=("full", "lora", "qlora"), help="self-hosted method (repeatable)")
    p.add_argument("--gpu", action="append", help="GPU name, e.g. 'A100 80GB', L4 (repeatable)")
    p.add_argument("--gpu-price", action="append", metavar="NAME=USD_PER_HOUR", help="override a GPU's hourly price")
    p.add_argument("--seq-len", type=int, help="training sequence length (default: the longest example, up to 8192)")
    p.add_argument("--batch-size", type=int, default=1, help="per-device batch size (default 1)")
    p.add_argument("--no-gradient-checkpointing", action="store_true", help="estimate without gradient checkpointing")
    p.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (default 16, all linear layers)")
    p.add_argument("--mfu", type=float, default=0.35, help="model FLOPs utilisation for the time estimate (default 0.35)")
    p.add_argument("--no-openai", action="store_true", help="leave out OpenAI options")
    p.add_argument("--no-self-hosted", action="store_true", help="leave out this machine's and the catalogue GPUs")
    p.add_argument("--no-hf-jobs", action="store_true", help="leave out Hugging Face Jobs flavors")
    p.add_argument("--no-together", action="store_true", help="leave out Together AI")
    p.add_argument("--flavor", action="append", help="Hugging Face Jobs flavor (repeatable); default: the single-GPU ones")
    p.add_argument("--together-rate", type=float, metavar="USD_PER_1M", help="Together AI's rate per 1M tokens")
    p.add_argument("--objective", choices=("sft", "dpo"), default="sft",
                   help="sft: chats (default); dpo: preference pairs (prompt, chosen, rejected), each counted as "
                        "prompt + chosen + prompt + rejected; quick mode's --examples is then the pairs and "
                        "--avg-tokens a pair's tokens")
    p.add_argument("--precompute-reference", action="store_true",
                   help="full DPO: the reference log-probs are computed before training (no second model copy)")
    p.add_argument("--how", action="store_true", help="print how every figure was computed")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_estimate)


# --------------------------------------------------------------------------- guide


def _ask(question, default, stdin, stdout) -> object:
    from ftassist.plan.guide import parse_answer

    if question.kind == "choice":
        options = ", ".join(f"{i}) {c}" for i, c in enumerate(question.choices, 1))
        prompt = f"{question.text} [{options}] (default {default}): "
    elif question.kind == "bool":
        prompt = f"{question.text} [y/n] (default {'y' if default else 'n'}): "
    else:
        prompt = f"{question.text} (Enter if you don't know): "
    for _ in range(3):
        stdout.write(prompt)
        stdout.flush()
        line = stdin.readline()
        if line == "":  # end of input: keep the default for this and the remaining questions
            stdout.write("\n")
            raise EOFError
        if not line.strip() and question.kind != "int":
            return default
        try:
            return parse_answer(question, line)
        except ValueError as exc:
            stdout.write(f"  {exc}\n")
    raise CLIError(f"no valid answer to: {question.text}")


def run_guide(args, stdin=None, stdout=None) -> int:
    from ftassist.plan.guide import QUESTIONS, Answers

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    report = None
    if args.path:  # what the advice needs of the report is its counts and checklist, not its token lists
        checked = gateway.call("check_dataset", path=args.path)
        report = {key: value for key, value in checked["report"].items() if key != "tokens"}
    defaults = Answers()
    values: dict = {}
    if args.answers:
        try:
            values = json.loads(args.answers)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise CLIError("--answers must be a JSON object, e.g. '{\"style_or_format\": true}'")
    else:
        if not args.json:
            stdout.write("A few questions (press Enter to keep the default).\n")
        for q in QUESTIONS:
            if q.key == "n_examples" and report:
                stdout.write(f"{q.text} {report['n_examples']:,} (from {args.path})\n")
                continue
            try:
                values[q.key] = _ask(q, getattr(defaults, q.key), stdin, stdout)
            except EOFError:
                break
    advice = gateway.call("recommend_approach", answers=values, report=report)
    if args.json:
        stdout.write(json.dumps(advice["decision"]["recommendation"], indent=2) + "\n")
    else:
        stdout.write("\n" + advice["markdown"].replace("### ", "").replace("**", "") + "\n")
    return 0


def add_guide_parser(sub) -> None:
    p = sub.add_parser("guide", help="should I fine-tune, and how? (a short questionnaire)",
                       description="Answer a few questions (from stdin) and get a recommendation with reasons and pitfalls.")
    p.add_argument("path", nargs="?", help="a dataset to check first: its size and quality feed in")
    p.add_argument("--answers", help="the answers as a JSON object instead of asking (keys: see --help of the app)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_guide)


# --------------------------------------------------------------------------- providers


def _provider_lines(report: dict) -> list[str]:
    customer = {True: "an active OpenAI fine-tuning customer", False: "not an OpenAI fine-tuning customer",
                None: "OpenAI customer: unknown (treated as no; --openai-customer if you are one)"}
    lines = [f"Fine-tuning providers on {report['today']} ({customer[report['openai_customer']]}):", ""]
    for p in report["providers"]:
        mark = "open" if p["available"] else "CLOSED"
        lines.append(f"{p['name']} [{p['id']}]: {mark}" + (f" until {p['deadline']}" if p["deadline"] else ""))
        lines.append(f"  {p['why']}")
        lines.append(f"  needs: {p['needs']}")
        if p["dates"]:
            lines.append("  dates: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in p["dates"].items()))
        trains = p["trains"]
        methods = ", ".join(trains["methods"]) or "the provider's own"
        lines.append(f"  trains: {', '.join(trains['objectives']).upper()}; methods: {methods}")
        lines.append(f"  billing: {p['billing']}")
        flavors = (p["prices"] or {}).get("flavors")
        if flavors:
            lines.append("  $/hour: " + ", ".join(f"{name} {price:.2f}" for name, price in flavors.items()))
        if (p["prices"] or {}).get("note") and p["id"] == "together":
            lines.append(f"  rates: {p['prices']['note']}")
        for url, read_on in dict.fromkeys((source["url"], source["read_on"]) for source in p["sources"]):
            lines.append(f"  source: {url} (read {read_on})")
        lines.append("")
    if report["shutting_down"]:
        lines.append("OpenAI models shut down or shutting down within 90 days (fine-tunes go with them):")
        for m in report["shutting_down"]:
            when = "shut down" if m["shut_down"] else f"shuts down in {m['days_left']} days"
            lines.append(f"  {m['model']}: {m['shutdown_date']} ({when})")
    return lines


def run_providers(args) -> int:
    report = gateway.call("provider_status", openai_customer=args.openai_customer, today=args.date)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_provider_lines(report)).rstrip())
    return 0


def add_providers_parser(sub) -> None:
    p = sub.add_parser("providers", help="where you can fine-tune today: availability, dates, prices, sources",
                       description="Each provider (your own GPU, Hugging Face Jobs, Together AI, OpenAI): whether "
                       "you can use it today and until when, what it trains, what it costs, and where each fact "
                       "was read.")
    customer = p.add_mutually_exclusive_group()
    customer.add_argument("--openai-customer", dest="openai_customer", action="store_true", default=None,
                          help="your organisation is an active OpenAI fine-tuning customer")
    customer.add_argument("--not-openai-customer", dest="openai_customer", action="store_false",
                          help="your organisation is not an active OpenAI fine-tuning customer")
    p.add_argument("--date", help="judge availability on this day (YYYY-MM-DD) instead of today")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_providers)


def register(sub) -> None:
    """Add this station's subcommands to the `ftassist` parser."""
    add_estimate_parser(sub)
    add_guide_parser(sub)
    add_providers_parser(sub)
