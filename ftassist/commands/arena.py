"""`ftassist arena ...`: register models, pre-generate battles, import/export votes, ratings.

Each command calls one use case (`ftassist.usecases.arena`) through `gateway.call`, so it runs
in the app when one is up (the app owns the database) and here otherwise; this module only
reads arguments and prints the results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ftassist.cli import CLIError

from . import gateway

MODEL_KINDS = ("hf", "hf_adapter", "openai", "openai_compatible")


def _absolute(path: str) -> str:
    """Paths as this shell means them: the app that may run the use case has another working dir."""
    return str(Path(path).expanduser().resolve())


def _model_config(args) -> dict:
    config: dict = {}
    if args.config:
        try:
            config = json.loads(args.config)
        except ValueError as exc:
            raise CLIError(f"--config is not valid JSON ({exc.msg}); give an object like "
                           "'{\"model\": \"gpt-4o-mini\"}'") from None
        if not isinstance(config, dict):
            raise CLIError("--config must be a JSON object")
    for key in ("model", "base_model", "adapter_dir", "base_url", "api_key_env", "system_prompt"):
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    for key in ("model", "base_model", "adapter_dir"):  # a local folder, named from this shell's folder
        if isinstance(config.get(key), str) and Path(config[key]).expanduser().exists():
            config[key] = _absolute(config[key])
    return config


def add_model(args) -> int:
    if args.from_run:
        model = gateway.call("register_run_model", run_id=args.from_run, display_name=args.name)
    else:
        if not args.kind or not args.name:
            raise CLIError("give --kind and --name (or --from-run RUN_ID)")
        model = gateway.call("register_model", kind=args.kind, display_name=args.name,
                             config=_model_config(args))
    print(model["id"])
    return 0


def list_models(args) -> int:
    rows = gateway.call("list_models", include_removed=args.all)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No models yet: `ftassist arena add-model --kind ... --name ...` registers one.")
    else:
        for row in rows:
            print(f"{row['id']}\t{row['kind']}\t{row['display_name']}" + ("\t(removed)" if row["removed_at"] else ""))
    return 0


def rename_model(args) -> int:
    model = gateway.call("rename_model", model=args.model, new_name=args.name)
    print(f"{model['id']} is now named {model['display_name']!r}")
    return 0


def remove_model(args) -> int:
    removed = gateway.call("remove_model", model=args.model)
    print(f"{removed['id']} removed; its {removed['votes_kept']} vote(s) are kept, shown as "
          f"'{removed['display_name']} (removed)' on the leaderboard")
    return 0


def generate(args) -> int:
    result = gateway.call("generate_battles", models=args.models, prompts_path=_absolute(args.prompts), n=args.n,
                          seed=args.seed, temperature=args.temperature, max_new_tokens=args.max_new_tokens)
    print(f"{result['battles']} battles stored ({result['flagged']} flagged), {len(result['errors'])} answers failed")
    for err in result["errors"][:10]:
        print(f"  prompt {err['prompt'] + 1}, {err['model']}: {err['error']}", file=sys.stderr)
    return 0 if result["battles"] else 1


def import_votes(args) -> int:
    result = gateway.call("import_votes", path=_absolute(args.file), skip_bad=args.skip_bad)
    for message in result["errors"]:
        print(f"{args.file}: {message}", file=sys.stderr)
    if result["errors"] and not args.skip_bad:
        print(f"Nothing imported: {len(result['errors'])} bad row(s). Fix them, or pass --skip-bad to import the "
              f"{result['rows'] - len(result['errors'])} good row(s).", file=sys.stderr)
        return 1
    print(f"{result['imported']} votes imported")
    return 1 if result["errors"] else 0


def leaderboard(args) -> int:
    board = gateway.call("leaderboard", rounds=args.rounds)
    if args.json:
        print(json.dumps(board["rows"], indent=2))
    elif not board["rows"]:
        print("No votes yet.")
    else:
        _print_board(board["rows"])
        _print_style(board["rows"])
        _print_beside(board)
    return 0


MEASURES = (("rouge_l", "ROUGE-L"), ("bleu", "BLEU"), ("exact_match", "exact match"), ("perplexity", "perplexity"))


def figure(value: float | None, interval: list[float] | None = None) -> str:
    """A stored measure with its 95% interval when it has one ('-' when it does not apply)."""
    if value is None:
        return "-"
    return f"{value:.3g}" + (f" ({interval[0]:.3g} to {interval[1]:.3g})" if interval else "")


def measures_sentence(evaluation: dict) -> str:
    """A model's newest stored automatic measures, the data they were measured on, and its general answers."""
    parts = []
    for key, name in MEASURES:
        if evaluation.get(key) is not None:
            label = "task accuracy" if key == "exact_match" and evaluation["labels"] else name
            parts.append(f"{label} {figure(evaluation[key], evaluation['intervals'].get(key))}")
    forgetting = evaluation.get("forgetting")
    if forgetting and forgetting.get("accuracy_change") is not None:
        parts.append(f"general answers {forgetting['accuracy_change'] * 100:+.0f} points vs the base"
                     + (" (it forgot)" if forgetting.get("forgot") else ""))
    return (", ".join(parts) + f"; on {evaluation['data']} (sha256 {evaluation['data_hash_short']}, "
            f"{evaluation['n_scored']} examples, {evaluation['evaluated_at'][:16]})")


def agreement_words(record: dict | None) -> str:
    """How often the judge's verdict matched the human majority, with its interval when the sample allows."""
    if not record:
        return "no battle with both its verdict and human votes"
    text = f"agrees with the human majority on {record['agree']} of {record['battles']} battles ({record['rate']:.0%}"
    if record["interval"]:
        text += f", 95% CI {record['interval'][0]:.0%} to {record['interval'][1]:.0%}"
    return text + ")"


def _print_beside(board: dict) -> None:
    """Beside the human ratings: each model's newest stored automatic measures and the LLM judge's figures."""
    print("\nAutomatic measures (the newest stored evaluation of each model):")
    for r in board["rows"]:
        print(f"  {r['model']}: " + (measures_sentence(r["evaluation"]) if r["evaluation"] else r["evaluation_note"]))
    judge = board.get("judge")
    if judge:
        print(f"\nLLM judge {judge['judge']}: {agreement_words(judge['agreement'])}; its ratings, from its verdicts "
              "alone:")
        for r in board["rows"]:
            mine = r.get("judge")
            print(f"  {r['model']}: " + ("no verdict" if not mine else
                                        f"rating {mine['rating']:.0f} ({mine['ci_low']:.0f} to {mine['ci_high']:.0f}, "
                                        f"{mine['verdicts']} verdicts), {agreement_words(mine['agreement'])}"))


def _print_board(rows: list[dict]) -> None:
    styled = any(r.get("style_rating") is not None for r in rows)
    print(f"{'rank':>4}  {'model':<30} {'rating':>8} {'95% CI':>17} {'W':>5} {'L':>5} {'T':>5} {'win rate':>9}"
          + (f" {'style-ctl':>9} {'95% CI':>17}" if styled else ""))
    for r in rows:
        ci = f"{r['ci_low']:.0f}..{r['ci_high']:.0f}"
        line = (f"{r['rank']:>4}  {r['model'][:30]:<30} {r['rating']:>8.1f} {ci:>17} {r['wins']:>5} {r['losses']:>5} "
                f"{r['ties']:>5} {r['win_rate']:>8.1%}")
        if styled and r.get("style_rating") is not None:
            style_ci = f"{r['style_ci_low']:.0f}..{r['style_ci_high']:.0f}"
            line += f" {r['style_rating']:>9.1f} {style_ci:>17}"
        print(line)


def _print_style(rows: list[dict]) -> None:
    """How much of each model's standing its answers' style (length, markdown) earned."""
    styled = [r for r in rows if r.get("style_rating") is not None]
    if not styled:
        return
    print("\nStyle control (FastChat's method: length and markdown of the answers held equal):")
    for r in styled:
        print(f"  {style_sentence(r)}")


def style_sentence(row: dict) -> str:
    """One model's plain vs style-controlled standing, in words: how much of its lead over the average
    (1000) is style, and how much length alone."""
    lead = row["style_rating"] + row["style_points"] - 1000  # the plain rating on the same votes, as a lead
    text = (f"{row['model']}: {row['style_rating']:.0f} with style controlled ({row['style_ci_low']:.0f} to "
            f"{row['style_ci_high']:.0f}), {row['style_points']:+.0f} points from style, "
            f"{row['length_points']:+.0f} from length alone")
    if lead > 1 and row["style_points"] > 0:
        share = min(1.0, row["style_points"] / lead)
        text += f": {share:.0%} of its {lead:.0f}-point lead is style"
    return text + "."


def train_on_votes(args) -> int:
    result = gateway.call("train_on_votes", model=args.model, min_votes=args.min_votes, dpo_beta=args.beta,
                          num_epochs=args.epochs, max_steps=args.max_steps)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["started"] else 1
    print(result["message"], file=sys.stdout if result["started"] else sys.stderr)
    if result["started"]:
        print(f"Follow it with `ftassist jobs show {result['run_id']}`; `ftassist arena loops` says how the new "
              "model does against its parent.")
    return 0 if result["started"] else 1


def loops(args) -> int:
    found = gateway.call("preference_loops")
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print("No run has trained on arena votes yet: `ftassist arena train-on-votes --from MODEL` starts one.")
    for loop in found:
        print(loop_sentence(loop))
    return 0


def loop_sentence(loop: dict) -> str:
    """One preference loop in words: the run, the new model, and how it does against its parent."""
    text = (f"{loop['parent_name']} trained on {loop['pairs']} pairs from its votes: run {loop['run_id']}, "
            f"{loop['status']}")
    if loop.get("child_name"):
        text += f"; new model {loop['child_name']}"
    if loop.get("message"):
        text += f" ({loop['message']})"
    head = loop.get("head_to_head")
    if head:
        text += (f". Against its parent it wins {head['win_rate']:.0%} (95% interval {head['win_rate_low']:.0%} to "
                 f"{head['win_rate_high']:.0%}) over {head['votes']} votes: {head['verdict']}")
    return text + "."


def judge(args) -> int:
    out = gateway.call("judge_battles", judge=args.judge, model=args.model, base_url=args.base_url,
                       api_key_env=args.api_key_env, battle_ids=args.battles, redo=args.redo,
                       use_reference=args.reference, rounds=args.rounds)
    name, agreement, board = out["judge"], out["agreement"], out["leaderboard"]
    all_failed = out["failed"] and not out["judged"]
    if args.json:
        print(json.dumps(out, indent=2))
        return 1 if all_failed else 0
    if not out["judged"] and not out["failed"]:
        print(f"Nothing new to judge: {name} has a verdict on every battle (--redo judges them again).")
    else:
        print(f"{out['judged']} battles judged by {name}, both orders each; {out['failed']} failed "
              "(not stored: a later run retries them)")
    for r in out["errors"][:10]:
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
    return 1 if all_failed else 0


def export_votes(args) -> int:
    out = gateway.call("export_votes", out=_absolute(args.out), format=args.format)
    print(f"{out['count']} votes written to {out['path']}")
    return 0


def export_dpo(args) -> int:
    out = gateway.call("export_dpo", out=_absolute(args.out), plain=args.plain)
    print(f"{out['count']} preference pairs written to {out['path']}")
    return 0


def flag_voters(args) -> int:
    flagged = gateway.call("flag_voters", alpha=args.alpha, min_votes=args.min_votes)["voters"]
    if args.json:
        print(json.dumps(flagged, indent=2))
    else:
        for f in flagged:
            print(f"{f['voter']}\t{f['reason']}\tp={f['p_value']:.2g}")
        print(f"{len(flagged)} voter(s) flagged for review")
    return 0


def prompts(args) -> int:
    found = gateway.call("voter_prompts", review=args.review)["prompts"]
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print(f"No voters' questions {args.review}.")
        return 0
    for item in found:
        print(f"{item['battle_id']}\t{item['asked_at']}\t{item['votes']} vote(s)\t{_one_line(item['prompt'])}")
    if args.review == "pending":
        print(f"{len(found)} question(s) awaiting review: `ftassist arena review PROMPT_ID --approve` (or --reject)")
    return 0


def _one_line(text: str, width: int = 100) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def review(args) -> int:
    reviewed = gateway.call("review_voter_prompt", battle_id=args.prompt_id, approve=args.approve)
    print(f"{reviewed['review'].capitalize()}: {_one_line(reviewed['prompt'], 60)} "
          f"({reviewed['votes_counted']} vote(s) on it count)")
    return 0


def register(sub) -> None:
    """Add this station's subcommands to the `ftassist` parser."""
    arena = sub.add_parser("arena", help="blind A/B arena: models, battles, votes, leaderboard")
    asub = arena.add_subparsers(dest="arena_command", metavar="ARENA_COMMAND")
    arena.set_defaults(func=lambda args: (arena.print_help(), 2)[1])

    p = asub.add_parser("add-model", help="register a model to compare (it must load or answer first)")
    p.add_argument("--kind", choices=MODEL_KINDS)
    p.add_argument("--name", help="display name (what the leaderboard shows)")
    p.add_argument("--model", help="Hub id / local folder (hf), model name (openai, openai_compatible)")
    p.add_argument("--base-model", dest="base_model", help="base model of a LoRA adapter (hf_adapter)")
    p.add_argument("--adapter", dest="adapter_dir", help="LoRA adapter folder (hf_adapter)")
    p.add_argument("--base-url", dest="base_url", help="server URL, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", dest="api_key_env", help="NAME of the env variable holding the key")
    p.add_argument("--system-prompt", dest="system_prompt")
    p.add_argument("--config", help="more settings as a JSON object")
    p.add_argument("--from-run", dest="from_run", metavar="RUN_ID",
                   help="register the model a succeeded training run produced (`ftassist jobs` lists runs)")
    p.set_defaults(func=add_model)

    p = asub.add_parser("models", help="list the registered models")
    p.add_argument("--all", action="store_true", help="also the removed models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=list_models)

    p = asub.add_parser("rename-model", help="give a model a new display name (its votes follow it)")
    p.add_argument("model", help="the model's id or current name")
    p.add_argument("name", help="the new display name")
    p.set_defaults(func=rename_model)

    p = asub.add_parser("remove-model", help="take a model out of the arena (its votes are kept, marked removed)")
    p.add_argument("model", help="the model's id or name")
    p.set_defaults(func=remove_model)

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

    p = asub.add_parser("train-on-votes", help="train the next version of a fine-tuned model on its votes (DPO)")
    p.add_argument("--from", dest="model", required=True, metavar="MODEL",
                   help="the fine-tuned arena model voted on (id or name), registered from a local run")
    p.add_argument("--min-votes", dest="min_votes", type=int, default=20,
                   help="start only with at least this many usable preference pairs (default 20)")
    p.add_argument("--beta", type=float, default=None, help="DPO's beta (default 0.1)")
    p.add_argument("--epochs", type=float, default=None, help="passes over the pairs (default: the preset's)")
    p.add_argument("--max-steps", dest="max_steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=train_on_votes)

    p = asub.add_parser("loops", help="the runs trained on votes, and how each new model does against its parent")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=loops)

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

    p = asub.add_parser("prompts", help="voters' own questions awaiting review (or approved, rejected)")
    p.add_argument("--review", choices=("pending", "approved", "rejected"), default="pending",
                   help="which ones (default: pending)")
    p.add_argument("--json", action="store_true", help="print a JSON list of objects (with both answers)")
    p.set_defaults(func=prompts)

    p = asub.add_parser("review", help="approve a voter's question (others may get it, its votes count) or reject it")
    p.add_argument("prompt_id", metavar="PROMPT_ID", help="its battle id, from `ftassist arena prompts`")
    decision = p.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", dest="approve", action="store_true", default=None,
                          help="share it with other voters and count its votes")
    decision.add_argument("--reject", dest="approve", action="store_false",
                          help="never serve it again; its votes stay left out")
    p.set_defaults(func=review)

    p = asub.add_parser("flag-voters", help="flag voters whose votes are unlikely given the others'")
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--min-votes", dest="min_votes", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=flag_voters)
