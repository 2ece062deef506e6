"""`ftassist arena ...`: register models, pre-generate battles, import/export votes, ratings."""

from __future__ import annotations

import json
import sys


def _cli_error(message: str):
    from ftassist.cli import CLIError

    return CLIError(message)


def _model_config(args) -> dict:
    config: dict = {}
    if args.config:
        try:
            config = json.loads(args.config)
        except ValueError as exc:
            raise _cli_error(f"--config is not valid JSON ({exc.msg}); give an object like '{{\"model\": \"gpt-4o-mini\"}}'")
        if not isinstance(config, dict):
            raise _cli_error("--config must be a JSON object")
    for key in ("model", "base_model", "adapter_dir", "base_url", "api_key_env", "system_prompt"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    return config


def add_model(args) -> int:
    from ftassist.arena import battles, models

    try:
        if args.from_run:
            model_id = models.add_model_from_run(args.from_run, args.name)
        else:
            if not args.kind or not args.name:
                raise _cli_error("give --kind and --name (or --from-run RUN_DIR)")
            model_id = models.add_model(args.kind, args.name, _model_config(args))
    except models.ModelError as exc:
        raise _cli_error(str(exc))
    battles.reflag_battles()
    print(model_id)
    return 0


def list_models(args) -> int:
    from ftassist.arena import models

    rows = models.list_models()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif not rows:
        print("No models yet: `ftassist arena add-model --kind ... --name ...` registers one.")
    else:
        for row in rows:
            print(f"{row['id']}\t{row['kind']}\t{row['display_name']}")
    return 0


def generate(args) -> int:
    from ftassist.arena import battles, models

    ids = []
    for name in args.models:
        found = models.find_model(name)
        if found is None:
            raise _cli_error(f"no model {name!r} in the arena (`ftassist arena models` lists them)")
        ids.append(found["id"])
    try:
        prompts = battles.load_prompts(args.prompts, n=args.n, seed=args.seed)
    except ValueError as exc:
        raise _cli_error(str(exc))
    sampling = {k: v for k, v in (("temperature", args.temperature), ("max_new_tokens", args.max_new_tokens))
                if v is not None}

    def progress(done, total, message):
        print(f"[{done}/{total}] {message}", file=sys.stderr)

    try:
        result = battles.pregenerate(prompts, ids, sampling=sampling or None, progress=progress)
    except (ValueError, models.ModelError) as exc:
        raise _cli_error(str(exc))
    print(f"{result['battles']} battles stored ({result['flagged']} flagged), {len(result['errors'])} answers failed")
    for err in result["errors"][:10]:
        print(f"  prompt {err['prompt'] + 1}, {err['model']}: {err['error']}", file=sys.stderr)
    return 0 if result["battles"] else 1


def import_votes(args) -> int:
    from ftassist.arena import export

    try:
        result = export.import_votes(args.file, skip_bad=args.skip_bad)
    except ValueError as exc:
        raise _cli_error(str(exc))
    for message in result.error_lines():
        print(f"{args.file}: {message}", file=sys.stderr)
    if result.errors and not args.skip_bad:
        print(f"Nothing imported: {len(result.errors)} bad row(s). Fix them, or pass --skip-bad to import the "
              f"{result.rows - len(result.errors)} good row(s).", file=sys.stderr)
        return 1
    print(f"{result.imported} votes imported")
    return 1 if result.errors else 0


def leaderboard(args) -> int:
    from ftassist.arena import ratings

    rows = ratings.leaderboard(rounds=args.rounds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No votes yet.")
        return 0
    _print_board(rows)
    return 0


def _print_board(rows: list[dict]) -> None:
    print(f"{'rank':>4}  {'model':<30} {'rating':>8} {'95% CI':>17} {'W':>5} {'L':>5} {'T':>5} {'win rate':>9}")
    for r in rows:
        ci = f"{r['ci_low']:.0f}..{r['ci_high']:.0f}"
        print(f"{r['rank']:>4}  {r['model'][:30]:<30} {r['rating']:>8.1f} {ci:>17} {r['wins']:>5} {r['losses']:>5} "
              f"{r['ties']:>5} {r['win_rate']:>8.1%}")


def _judge_spec(args) -> str | dict:
    """A registered API model (--judge) or an endpoint given inline (--base-url + --model)."""
    from ftassist.arena import models

    if args.judge:
        found = models.find_model(args.judge)
        if found is None:
            raise _cli_error(f"no model {args.judge!r} in the arena (`ftassist arena models` lists them)")
        if found["kind"] not in models.API_KINDS:
            raise _cli_error(f"{args.judge!r} is a {found['kind']} model: the judge must be an API model "
                             "(openai or openai_compatible)")
        return found["id"]
    if not args.model:
        raise _cli_error("give --judge MODEL (a registered API model) or --model NAME [--base-url URL]")
    config: dict = {"kind": "openai_compatible" if args.base_url else "openai", "model": args.model}
    for key in ("base_url", "api_key_env"):
        if getattr(args, key):
            config[key] = getattr(args, key)
    return config


def judge(args) -> int:
    from ftassist.arena import judge as judging
    from ftassist.arena import models

    spec = _judge_spec(args)
    try:
        results = judging.judge_battles(spec, args.battles, redo=args.redo, use_reference=args.reference)
    except models.ModelError as exc:
        raise _cli_error(str(exc))
    name = judging.judge_name(spec)
    failed = [r for r in results if r["error"]]
    agreement = judging.human_judge_agreement(judge_model=name)
    board = judging.judge_leaderboard(name, rounds=args.rounds)
    if args.json:
        print(json.dumps({"judge": name, "judged": len(results) - len(failed), "failed": len(failed),
                          "errors": [{"battle_id": r["battle_id"], "error": r["error"]} for r in failed],
                          "agreement": agreement, "leaderboard": board}, indent=2, default=str))
        return 1 if failed and len(failed) == len(results) else 0
    if not results:
        print(f"Nothing new to judge: {name} has a verdict on every battle (--redo judges them again).")
    else:
        print(f"{len(results) - len(failed)} battles judged by {name}, both orders each; {len(failed)} failed "
              "(not stored: a later run retries them)")
    for r in failed[:10]:
        print(f"  battle {r['battle_id']}: {r['error']}", file=sys.stderr)
    if agreement["n_pairs"]:
        kappa = agreement["kappa"]
        print(f"Agreement with human votes: {agreement['agreement']:.1%} over {agreement['n_pairs']} votes on "
              f"{agreement['n_battles']} battles" + (f", Cohen's kappa {kappa:.2f}" if kappa is not None else ""))
    else:
        print("No battle has both a human vote and a verdict yet: no agreement figure.")
    if board:
        print(f"Ratings from {name}'s verdicts (kept apart from the human leaderboard):")
        _print_board(board)
    return 1 if failed and len(failed) == len(results) else 0


def export_votes(args) -> int:
    from ftassist.arena import export

    try:
        n = export.export_votes(args.out, fmt=args.format)
    except ValueError as exc:
        raise _cli_error(str(exc))
    print(f"{n} votes written to {args.out}")
    return 0


def export_dpo(args) -> int:
    from ftassist.arena import export

    n = export.export_dpo(args.out, conversational=not args.plain)
    print(f"{n} preference pairs written to {args.out}")
    return 0


def flag_voters(args) -> int:
    from ftassist.arena import battles

    flagged = battles.flag_suspicious_voters(alpha=args.alpha, min_votes=args.min_votes)
    if args.json:
        print(json.dumps(flagged, indent=2))
    else:
        for f in flagged:
            print(f"{f['voter']}\t{f['reason']}\tp={f['p_value']:.2g}")
        print(f"{len(flagged)} voter(s) flagged for review")
    return 0


def register(sub) -> None:
    """Add this station's subcommands to the `ftassist` parser."""
    arena = sub.add_parser("arena", help="blind A/B arena: models, battles, votes, leaderboard")
    asub = arena.add_subparsers(dest="arena_command", metavar="ARENA_COMMAND")
    arena.set_defaults(func=lambda args: (arena.print_help(), 2)[1])

    p = asub.add_parser("add-model", help="register a model to compare")
    p.add_argument("--kind", choices=("hf", "hf_adapter", "openai", "openai_compatible"))
    p.add_argument("--name", help="display name (what the leaderboard shows)")
    p.add_argument("--model", help="Hub id / local folder (hf), model name (openai, openai_compatible)")
    p.add_argument("--base-model", dest="base_model", help="base model of a LoRA adapter (hf_adapter)")
    p.add_argument("--adapter", dest="adapter_dir", help="LoRA adapter folder (hf_adapter)")
    p.add_argument("--base-url", dest="base_url", help="server URL, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", dest="api_key_env", help="NAME of the env variable holding the key")
    p.add_argument("--system-prompt", dest="system_prompt")
    p.add_argument("--config", help="more settings as a JSON object")
    p.add_argument("--from-run", dest="from_run", help="register the model a finished training run produced")
    p.set_defaults(func=add_model)

    p = asub.add_parser("models", help="list the registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_models)

    p = asub.add_parser("generate", help="pre-generate battles between models on held-out prompts")
    p.add_argument("--models", nargs="+", required=True, help="two or more model ids or names")
    p.add_argument("--prompts", required=True, help="prompt file: .txt (one a line), .jsonl (chat or prompt)")
    p.add_argument("-n", type=int, default=None, help="use a random sample of N prompts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=None)
    p.set_defaults(func=generate)

    p = asub.add_parser("import-votes", help="import votes from a CSV (model_a, model_b, winner[, voter, timestamp])")
    p.add_argument("file")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows even if some are bad")
    p.set_defaults(func=import_votes)

    p = asub.add_parser("leaderboard", help="Bradley-Terry ratings with 95%% intervals, Elo, win rates")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (default 1000)")
    p.set_defaults(func=leaderboard)

    p = asub.add_parser("judge", help="an LLM judge on the battles (both orders), kept apart from human votes")
    p.add_argument("--judge", help="a registered API model (id or name) to judge with")
    p.add_argument("--model", help="or: the judge's model name at an endpoint (with --base-url) or on OpenAI")
    p.add_argument("--base-url", dest="base_url", help="an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", dest="api_key_env", help="NAME of the env variable holding the judge's key")
    p.add_argument("--battles", nargs="+", default=None, help="only these battle ids (default: all)")
    p.add_argument("--redo", action="store_true", help="judge again battles this judge already has a verdict on")
    p.add_argument("--reference", action="store_true", help="show the judge the reference answer when there is one")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds for the judge's ratings")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=judge)

    p = asub.add_parser("export-votes", help="write the votes as CSV or Parquet")
    p.add_argument("--format", choices=("csv", "parquet"), default=None, help="default: from --out's suffix")
    p.add_argument("--out", required=True)
    p.set_defaults(func=export_votes)

    p = asub.add_parser("export-dpo", help="write a DPO preference dataset (prompt, chosen, rejected) as JSONL")
    p.add_argument("--out", required=True)
    p.add_argument("--plain", action="store_true", help="plain strings instead of chat messages")
    p.set_defaults(func=export_dpo)

    p = asub.add_parser("flag-voters", help="flag voters whose votes are unlikely given the others'")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--min-votes", dest="min_votes", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=flag_voters)
