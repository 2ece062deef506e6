"""`ftassist train` and `ftassist jobs`: the Train step headless.

Every request goes through the training use cases (`ftassist.usecases.training`) by way of
`gateway.call`: while the app runs it owns the database, so the app prepares the data, creates
and starts the run (it shows in the app at once) and answers `jobs`, `show`, `cancel` and `resume`; with
no app the same use cases run in this process. `train` follows the run's events file itself
(files are not the database) with a progress line on stderr, asks `show_run` for the status,
or returns at once with `--detach`. With `--json` the last stdout line is one JSON object:
status, job_id, run_dir, output_dir, output_model, first_loss, final_loss, best_eval_loss,
error, hint, backend, remote_id (the provider's job id: OpenAI, Together, Hugging Face Jobs); a DPO
run (`--method dpo`, or `--objective dpo`) adds objective and its last rewards/margins and
rewards/accuracies (and eval_rewards/... with a validation set). Exit codes: 0 succeeded, 1 the run
did not succeed, 2 it could not start.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ftassist.cli import CLIError
from ftassist.commands import gateway
from ftassist.formatting import format_duration

FINAL = ("succeeded", "failed", "cancelled", "interrupted")
# A DPO run's result adds its last reward margin and preference accuracy (and their validation values, if any).
PREFERENCE_KEYS = ("rewards/margins", "rewards/accuracies", "eval_rewards/margins", "eval_rewards/accuracies")
RESULT_KEYS = ("status", "job_id", "run_dir", "output_dir", "output_model", "first_loss", "final_loss",
               "best_eval_loss", "error", "hint")
STATUS_EVERY_S = 1.0  # how often `train` asks for the run's status while it follows the events file


def _absolute(path: str | None) -> str | None:
    """A path as the app can read it (its working folder is not this command's)."""
    return None if path is None else str(Path(path).expanduser().resolve())


# -- the spec from arguments --------------------------------------------------------------------
def objective_and_method(args) -> tuple[str, str]:
    """`--method dpo` is DPO with LoRA (the usual choice); `--objective dpo` with any method says the same."""
    method = getattr(args, "method", "lora")
    objective = getattr(args, "objective", None)
    if method == "dpo":
        if objective == "sft":
            raise CLIError("--method dpo trains on preference pairs: drop --objective sft, or pick --method lora, "
                           "qlora or full.")
        return "dpo", "lora"
    return objective or "sft", method


def spec_from_args(args, train_file: str, valid_file: str | None) -> dict:
    """The run's settings from the flags (what is not given is left to the presets)."""
    objective, method = objective_and_method(args)
    spec: dict = dict(backend=args.backend, method=method, train_file=train_file, valid_file=valid_file,
                      seed=args.seed, objective=objective)
    if getattr(args, "beta", None) is not None:
        spec["dpo_beta"] = args.beta
    if getattr(args, "report_to", None):
        spec["report_to"] = [name.strip() for name in args.report_to.split(",") if name.strip()]
    start = getattr(args, "start_from", None)
    if start:  # a run id, a run folder or a model folder (the app resolves it)
        spec["start_from"] = _absolute(start) if Path(start).expanduser().exists() else start
    if args.backend in ("local", "hf-jobs"):  # hf-jobs: the same recipe, on a rented GPU
        base = args.base_model or "tiny-random"
        spec["base_model"] = _absolute(base) if Path(base).expanduser().exists() else base
        if args.out:
            spec["output_dir"] = _absolute(args.out)
        for name, attr in (("num_epochs", "epochs"), ("learning_rate", "lr"), ("per_device_batch_size", "batch_size"),
                           ("gradient_accumulation_steps", "grad_accum"), ("lora_r", "lora_r"),
                           ("lora_alpha", "lora_alpha"), ("lora_dropout", "lora_dropout"),
                           ("max_seq_length", "max_seq_length"), ("max_steps", "max_steps"),
                           ("eval_steps", "eval_steps"), ("logging_steps", "logging_steps")):
            value = getattr(args, attr)
            if value is not None:
                spec[name] = value
        if args.target_modules:
            modules = args.target_modules.strip()
            spec["target_modules"] = modules if modules == "all-linear" else [
                m.strip() for m in modules.split(",") if m.strip()]
        if args.merge:
            spec["merge_adapter"] = True
        if args.backend == "hf-jobs":
            spec["hf_jobs"] = {"flavor": args.flavor, "namespace": args.namespace}
        return spec
    if args.backend == "together":
        return _together_spec(args, spec)
    if method == "qlora":
        raise CLIError("the OpenAI backend trains its own way: leave --method as lora.")
    openai: dict = {}
    if args.base_model:
        openai["model"] = args.base_model
    if args.epochs is not None:
        openai["n_epochs"] = int(args.epochs)
    if args.batch_size is not None:
        openai["batch_size"] = args.batch_size
    if args.lr_multiplier is not None:
        openai["learning_rate_multiplier"] = args.lr_multiplier
    for name in ("suffix", "provider", "base_url", "azure_endpoint", "api_version"):
        if getattr(args, name, None):
            openai[name] = getattr(args, name)
    if args.poll_interval is not None:
        openai["poll_interval"] = args.poll_interval
    spec["openai"] = openai
    if args.base_model:
        spec["base_model"] = args.base_model
    return spec


def _together_spec(args, spec: dict) -> dict:
    """A Together run: the base model is a Together model id; epochs, learning rate, LoRA r/alpha as given."""
    if not args.base_model:
        raise CLIError("--base-model is required with --backend together: a model Together fine-tunes, e.g. "
                       "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference.")
    spec["base_model"] = args.base_model
    for name, attr in (("num_epochs", "epochs"), ("learning_rate", "lr"), ("lora_r", "lora_r"),
                       ("lora_alpha", "lora_alpha"), ("lora_dropout", "lora_dropout"),
                       ("max_seq_length", "max_seq_length")):
        if getattr(args, attr) is not None:
            spec[name] = getattr(args, attr)
    together = {name: getattr(args, name) for name in ("suffix", "base_url", "poll_interval")
                if getattr(args, name, None) is not None}
    if args.batch_size is not None:
        together["batch_size"] = args.batch_size
    spec["together"] = together
    return spec


def _api_key(args) -> str | None:
    """This shell's key for a remote run: a worker the app starts has the app's environment, not ours."""
    if args.backend == "together":
        from ftassist.train.together_ft import resolve_api_key as together_key

        return together_key()
    if args.backend == "hf-jobs":
        from ftassist.train.hf_jobs import resolve_token

        return resolve_token()
    if args.backend != "openai":
        return None
    from ftassist.train.openai_ft import resolve_api_key

    return resolve_api_key(args.provider or "openai")


# -- following a run ----------------------------------------------------------------------------
class _Progress:
    """A one-line progress bar on a terminal, a few plain lines otherwise (stderr only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0
        self.open_line = False

    def event(self, e: dict) -> None:
        if not self.enabled:
            return
        t = e.get("type")
        if t == "log":
            step, total = e.get("step") or 0, e.get("total_steps")
            frac = step / total if total else 0.0
            bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
            loss = e.get("loss")
            tps = e.get("tokens_per_s")
            margin, accuracy = e.get("rewards/margins"), e.get("rewards/accuracies")
            text = (f"[{bar}] step {step}/{total or '?'}"
                    + (f" loss {loss:.4f}" if isinstance(loss, (int, float)) else "")
                    + (f" margin {margin:.3f} acc {accuracy:.0%}" if isinstance(margin, (int, float))
                       and isinstance(accuracy, (int, float)) else "")
                    + f" eta {format_duration(e.get('eta_s'))}"
                    + (f" {tps:,.0f} tok/s" if isinstance(tps, (int, float)) else ""))
            if self.tty:
                print("\r" + text.ljust(90), end="", file=sys.stderr, flush=True)
                self.open_line = True
            elif time.monotonic() - self.last_print > 5 or (total and step >= total):
                print(text, file=sys.stderr, flush=True)
                self.last_print = time.monotonic()
        elif t == "eval":
            self._line(f"eval step {e.get('step')}: valid loss {e.get('eval_loss'):.4f}"
                       if isinstance(e.get("eval_loss"), (int, float)) else f"eval step {e.get('step')}")
        elif t == "message" and e.get("level") in ("warning", "error"):
            self._line(f"{e.get('level')}: {e.get('text')}")
        elif t == "started":
            dpo = e.get("objective") == "dpo"
            self._line(f"started on {e.get('device')}: {e.get('base_model')} ({e.get('method')}"
                       f"{', DPO beta ' + format(e.get('dpo_beta'), 'g') if dpo and e.get('dpo_beta') else ''}), "
                       f"{e.get('num_examples')} {'pairs' if dpo else 'examples'}"
                       + (f", resumed at step {e['resumed_from_step']}" if e.get("resumed_from_step") else ""))
        elif t in ("finished", "failed", "cancelled"):
            self.close()

    def close(self) -> None:
        if self.open_line:
            print(file=sys.stderr)
            self.open_line = False

    def _line(self, text: str) -> None:
        self.close()
        print(text, file=sys.stderr, flush=True)


def _follow(run_id: str, run_dir: Path, progress: _Progress, cancel_timeout: float) -> dict:
    """Print the run's events as they come until it ends; returns `show_run`'s final answer."""
    from ftassist.train.events import read_events

    offset = 0
    announced_queue = False
    interrupted = False
    next_status = 0.0
    while True:
        try:
            events, offset = read_events(run_dir, offset)
            for event in events:
                progress.event(event)
            if time.monotonic() >= next_status:
                run = gateway.call("show_run", run_id=run_id, log_lines=0)
                next_status = time.monotonic() + STATUS_EVERY_S
                if run["status"] in FINAL:
                    for event in read_events(run_dir, offset)[0]:
                        progress.event(event)
                    progress.close()
                    return run
                if run["status"] == "queued" and not announced_queue:
                    print("queued: another local run is running; waiting for it to end", file=sys.stderr)
                    announced_queue = True
            time.sleep(0.2)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            print("\nstopping: the worker saves what it has (Ctrl-C again to leave it running)", file=sys.stderr)
            try:
                gateway.call("cancel_run", run_id=run_id, timeout=cancel_timeout)
            except CLIError:  # it ended meanwhile: the next status says how
                pass
            next_status = 0.0


def run_train(args) -> int:
    data = gateway.call("prepare_training_data", path=_absolute(args.path), valid=_absolute(args.valid),
                        valid_fraction=args.valid_fraction, seed=args.seed)
    if data["cleaned"] and not args.json:
        print(f"data: {data['n_train']} train / {data['n_valid']} valid "
              + ("pairs" if data.get("kind") == "pairs" else "examples")
              + (f", {data['n_dropped']} dropped (see {data['dropped_path']})" if data["n_dropped"] else ""),
              file=sys.stderr)
    spec = spec_from_args(args, data["train_file"], data["valid_file"])
    started = gateway.call("start_run", spec=spec, api_key=_api_key(args))
    return _report_started(started, args)


def _report_started(started: dict, args) -> int:
    """Return at once with --detach, else follow the run to its end and print its result."""
    run_id, run_dir = started["run_id"], Path(started["run_dir"])

    if args.detach:
        out = {"status": started["status"], "job_id": run_id, "run_dir": str(run_dir),
               "output_dir": started["output_dir"], "pid": started["pid"]}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"job {run_id} {started['status']}: follow it with `ftassist jobs show {run_id}` "
                  "or in the app's Train tab")
            print(f"run folder: {run_dir}")
        return 0

    if not args.json:
        print(f"job {run_id}: run folder {run_dir}", file=sys.stderr)
    run = _follow(run_id, run_dir, _Progress(enabled=not getattr(args, "quiet", False)),
                  getattr(args, "cancel_timeout", 10.0))
    result = {key: run.get(key) for key in RESULT_KEYS}
    result["job_id"] = run_id
    result.update(backend=run.get("backend"), remote_id=run.get("external_id"))
    if run.get("objective") == "dpo":  # what DPO users read first: reward margin and preference accuracy
        result["objective"] = "dpo"
        preference = run.get("preference") or {}
        for key in PREFERENCE_KEYS:
            if key in preference or not key.startswith("eval_"):
                result[key] = preference.get(key)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(render_result(result))
    return 0 if result["status"] == "succeeded" else 1


def render_result(r: dict) -> str:
    lines = [f"{r['status']}: job {r['job_id']}"]
    if r.get("output_model") and r.get("output_model") != r.get("output_dir"):
        lines.append(f"model: {r['output_model']}")
    if r.get("output_dir"):
        lines.append(f"output: {r['output_dir']}")
    if r.get("first_loss") is not None and r.get("final_loss") is not None:
        lines.append(f"loss: {r['first_loss']:.4f} -> {r['final_loss']:.4f}"
                     + (f" (best valid {r['best_eval_loss']:.4f})" if r.get("best_eval_loss") is not None else ""))
    if isinstance(r.get("rewards/margins"), (int, float)) and isinstance(r.get("rewards/accuracies"), (int, float)):
        lines.append(f"reward margin: {r['rewards/margins']:.3f}, preference accuracy: {r['rewards/accuracies']:.0%}"
                     + (f" (valid {r['eval_rewards/margins']:.3f}, {r['eval_rewards/accuracies']:.0%})"
                        if isinstance(r.get("eval_rewards/margins"), (int, float))
                        and isinstance(r.get("eval_rewards/accuracies"), (int, float)) else ""))
    if r.get("error"):
        lines.append(f"reason: {r['error']}")
    if r.get("hint"):
        lines.append(f"what to do: {r['hint']}")
    return "\n".join(lines)


# -- ftassist jobs ---------------------------------------------------------------------------------
def _without_spec(run: dict) -> dict:
    return {key: value for key, value in run.items() if key != "spec"}


def run_jobs_list(args) -> int:
    rows = [_without_spec(r) for r in gateway.call("list_runs")]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no jobs yet: start one with `ftassist train FILE`")
        return 0
    print(f"{'id':24} {'status':11} {'backend':7} {'method':6} {'obj':4} {'step':>11}  base model")
    for r in rows:
        step = f"{r.get('last_step') or 0}/{r.get('total_steps') or '?'}"
        print(f"{r['id']:24} {r['status']:11} {r['backend']:7} {r['method']:6} {r.get('objective') or 'sft':4} "
              f"{step:>11}  {r['base_model']}")
    return 0


def run_jobs_show(args) -> int:
    job = _without_spec(gateway.call("show_run", run_id=args.id, log_lines=args.lines))
    if args.json:
        print(json.dumps(job, ensure_ascii=False))
        return 0
    for key in ("id", "status", "backend", "base_model", "method", "objective", "run_dir", "external_id",
                "output_model", "output_dir", "first_loss", "final_loss", "best_eval_loss", "error", "hint"):
        if job.get(key) not in (None, ""):
            print(f"{key:15} {job[key]}")
    for key, value in (job.get("preference") or {}).items():
        print(f"{key:15} {value:.4f}" if len(key) < 16 else f"{key} {value:.4f}")
    prog = job.get("progress") or {}
    if prog.get("step"):
        print(f"{'progress':15} step {prog['step']}/{prog.get('total_steps') or '?'}, "
              f"eta {format_duration(prog.get('eta_s'))}")
    if job.get("log_tail"):
        print("--- worker.log (last lines) ---")
        print(job["log_tail"])
    return 0


def run_jobs_cancel(args) -> int:
    job = _without_spec(gateway.call("cancel_run", run_id=args.id, timeout=args.timeout))
    if args.json:
        print(json.dumps(job, ensure_ascii=False))
    else:
        print(f"job {args.id}: {job['status']}")
    return 0 if job["status"] == "cancelled" else 1


def run_jobs_resume(args) -> int:
    """A new run that goes on from the stopped run's last checkpoint, followed like `ftassist train`."""
    before = gateway.call("show_run", run_id=args.id, log_lines=0)
    api_key = None
    if before.get("backend") == "hf-jobs":  # a worker the app starts has the app's environment, not ours
        from ftassist.train.hf_jobs import resolve_token

        api_key = resolve_token()
    started = gateway.call("resume_run", run_id=args.id, api_key=api_key)
    if not args.json:
        print(started["message"], file=sys.stderr)
    return _report_started(started, args)


# -- registration ------------------------------------------------------------------------------------
def register(sub) -> None:
    """Add `train` and `jobs` to the `ftassist` parser."""
    p = sub.add_parser("train", help="fine-tune a model on a dataset (local TRL/PEFT worker, OpenAI or Together AI)",
                       description="Train on PATH: a chat JSONL, a raw dataset (cleaned and split first), "
                                   "a preference-pair JSONL for DPO (split first), or a folder with "
                                   "train.jsonl/valid.jsonl from `ftassist clean`.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--base-model", default=None,
                   help="Hub id, local folder or tiny-random (local; default tiny-random); the OpenAI model (openai)")
    p.add_argument("--method", choices=("lora", "qlora", "full", "dpo"), default="lora",
                   help="which weights learn: lora, qlora (4-bit base, NVIDIA GPU), full; dpo = --objective dpo with "
                        "lora")
    p.add_argument("--objective", choices=("sft", "dpo"), default=None,
                   help="sft: learn the answers of chats (default); dpo: prefer the chosen answer of preference "
                        "pairs (prompt, chosen, rejected), e.g. the Arena's export")
    p.add_argument("--beta", type=float, default=None,
                   help="DPO beta (default 0.1): how far the model may move from its reference; lower moves further")
    p.add_argument("--start-from", default=None, metavar="RUN_ID_OR_DIR",
                   help="start from a finished run (its id, or its model folder) instead of the base model: "
                        "SFT, then DPO; the DPO reference is then that model")
    p.add_argument("--report-to", default=None, metavar="NAMES",
                   help="local runs: also report metrics to tensorboard and/or trackio (comma-separated; needs "
                        "the package installed)")
    p.add_argument("--backend", choices=("local", "openai", "together", "hf-jobs"), default="local",
                   help="local (TRL/PEFT here), openai, together (Together AI, key from TOGETHER_API_KEY), or "
                        "hf-jobs (this recipe on a rented Hugging Face GPU, token from HF_TOKEN)")
    p.add_argument("--epochs", type=float, default=None, help="epochs (OpenAI: n_epochs)")
    p.add_argument("--out", default=None, help="where the adapter/model is saved (default RUN_DIR/model)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    p.add_argument("--detach", action="store_true", help="start and return (follow with `ftassist jobs show ID`)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (quick trials)")
    p.add_argument("--valid", default=None, help="a validation chat JSONL (PATH is then used as is)")
    p.add_argument("--valid-fraction", type=float, default=0.1, help="share held out for validation when splitting")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--lr", type=float, default=None, help="learning rate (default by method)")
    p.add_argument("--batch-size", type=int, default=None, help="per-device batch size (OpenAI: batch_size)")
    p.add_argument("--grad-accum", type=int, default=None, help="gradient accumulation steps")
    p.add_argument("--lora-r", type=int, default=None)
    p.add_argument("--lora-alpha", type=float, default=None)
    p.add_argument("--lora-dropout", type=float, default=None)
    p.add_argument("--target-modules", default=None, help="comma list (q_proj,v_proj) or all-linear")
    p.add_argument("--max-seq-length", type=int, default=None)
    p.add_argument("--eval-steps", type=int, default=None)
    p.add_argument("--logging-steps", type=int, default=None)
    p.add_argument("--merge", action="store_true", help="also save the adapter merged into the base model")
    p.add_argument("--cancel-timeout", type=float, default=10.0, help=argparse_suppress())
    o = p.add_argument_group("OpenAI backend (key from OPENAI_API_KEY / AZURE_OPENAI_API_KEY)")
    o.add_argument("--provider", choices=("openai", "azure", "custom"), default=None)
    o.add_argument("--base-url", default=None,
                   help="an OpenAI-compatible server (provider custom); with --backend together: the API's root")
    o.add_argument("--azure-endpoint", default=None)
    o.add_argument("--api-version", default=None)
    o.add_argument("--suffix", default=None, help="part of the model name: up to 64 characters (OpenAI), 40 (Together)")
    o.add_argument("--lr-multiplier", type=float, default=None, help="learning_rate_multiplier")
    o.add_argument("--poll-interval", type=float, default=None, help=argparse_suppress())
    h = p.add_argument_group("Hugging Face Jobs backend (token from HF_TOKEN or `hf auth login`)")
    h.add_argument("--flavor", default=None,
                   help="GPU flavor, e.g. t4-small, l4x1, a100-large (default: the cheapest that fits; "
                        "`ftassist providers` lists them with prices)")
    h.add_argument("--namespace", default=None, help="user or organisation billed and owning the repos (default: yours)")
    p.set_defaults(func=run_train)

    j = sub.add_parser("jobs", help="list, show, cancel or resume training jobs")
    j.add_argument("--json", action="store_true")
    j.set_defaults(func=run_jobs_list)
    jsub = j.add_subparsers(dest="jobs_command", metavar="ACTION")
    show = jsub.add_parser("show", help="one job: status, losses, log tail")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.add_argument("--lines", type=int, default=30, help="log lines to show")
    show.set_defaults(func=run_jobs_show)
    cancel = jsub.add_parser("cancel", help="stop a job (graceful, then hard after --timeout)")
    cancel.add_argument("id")
    cancel.add_argument("--timeout", type=float, default=10.0)
    cancel.add_argument("--json", action="store_true")
    cancel.set_defaults(func=run_jobs_cancel)
    resume = jsub.add_parser("resume", help="go on with a cancelled, failed or interrupted job from its last "
                                            "checkpoint (a new job)")
    resume.add_argument("id")
    resume.add_argument("--json", action="store_true", help="print one JSON object as the last stdout line")
    resume.add_argument("--detach", action="store_true", help="start and return (follow with `ftassist jobs show ID`)")
    resume.add_argument("--quiet", action="store_true", help="no progress on stderr")
    resume.set_defaults(func=run_jobs_resume)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
