"""`ftassist train` and `ftassist jobs`: the Train step headless.

`train` prepares the data (a raw file goes through the Data step's clean/split first),
writes a run folder and starts the same worker the app starts, then follows its events
file with a progress line on stderr (or returns at once with `--detach`). With `--json`
the last stdout line is one JSON object: status, output_dir, final_loss, first_loss...

When the app is running it owns the database; the CLI then still trains (the worker needs
no database) and the app adopts the run folder on its next reconcile.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from ftassist.cli import CLIError
from ftassist.train.events import format_duration

FINAL = ("succeeded", "failed", "cancelled", "interrupted")
_TERMINAL_STATUS = {"finished": "succeeded", "failed": "failed", "cancelled": "cancelled"}


# -- data -------------------------------------------------------------------------------------
def is_chat_jsonl(path: Path, probe: int = 20) -> bool:
    """True when the first lines are JSON objects with a `messages` list (OpenAI chat format)."""
    if path.suffix.lower() != ".jsonl" or not path.is_file():
        return False
    seen = 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                obj = json.loads(line)
                if not (isinstance(obj, dict) and isinstance(obj.get("messages"), list)):
                    return False
                seen += 1
                if seen >= probe:
                    break
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return seen > 0


def prepare_data(path: str, valid: str | None, valid_fraction: float, seed: int, out_dir: Path,
                 quiet: bool = False) -> tuple[str, str | None]:
    """(train_file, valid_file) for PATH.

    A folder from the Data step (train.jsonl [+ valid.jsonl]) or an explicit --valid is used
    as is; any other file is checked, cleaned and split by the Data step.
    """
    p = Path(path)
    if p.is_dir():
        train = p / "train.jsonl"
        if not train.is_file():
            raise CLIError(f"{p}: a folder must hold train.jsonl (and valid.jsonl) from `ftassist clean`.")
        v = p / "valid.jsonl"
        return str(train), (str(v) if v.is_file() and v.stat().st_size else valid)
    if not p.is_file():
        raise CLIError(f"{path}: no such file")
    if valid is not None:
        if not is_chat_jsonl(p):
            raise CLIError(f"{path}: with --valid, give chat JSONL files (run `ftassist clean` first).")
        return str(p), valid
    from ftassist.data.clean import clean_file

    try:
        res = clean_file(p, out_dir, valid_fraction=valid_fraction, seed=seed)
    except Exception as exc:  # noqa: BLE001 - LoadError and friends: one line for the person
        raise CLIError(f"{path}: {exc}") from None
    if not res.n_train:
        raise CLIError(f"{path}: no usable examples after cleaning: run `ftassist check {path}` to see why.")
    if not quiet:
        dropped = res.n_dropped_invalid + res.n_dropped_duplicates + res.n_dropped_empty
        print(f"data: {res.n_train} train / {res.n_valid} valid examples"
              + (f", {dropped} dropped (see {res.dropped_path})" if dropped else ""), file=sys.stderr)
    return str(res.train_path), (str(res.valid_path) if res.n_valid else None)


# -- the spec from arguments --------------------------------------------------------------------
def spec_from_args(args, train_file: str, valid_file: str | None):
    from ftassist.train.spec import OPENAI_DEFAULTS, TINY_RANDOM, JobSpec

    kw: dict = dict(backend=args.backend, method=args.method, train_file=train_file, valid_file=valid_file,
                    seed=args.seed)
    if args.backend == "local":
        kw["base_model"] = args.base_model or TINY_RANDOM
        if args.out:
            kw["output_dir"] = str(Path(args.out).resolve())
        for name, attr in (("num_epochs", "epochs"), ("learning_rate", "lr"), ("per_device_batch_size", "batch_size"),
                           ("gradient_accumulation_steps", "grad_accum"), ("lora_r", "lora_r"),
                           ("lora_alpha", "lora_alpha"), ("lora_dropout", "lora_dropout"),
                           ("max_seq_length", "max_seq_length"), ("max_steps", "max_steps"),
                           ("eval_steps", "eval_steps"), ("logging_steps", "logging_steps")):
            value = getattr(args, attr)
            if value is not None:
                kw[name] = value
        if args.target_modules:
            tm = args.target_modules.strip()
            kw["target_modules"] = tm if tm == "all-linear" else [m.strip() for m in tm.split(",") if m.strip()]
        if args.merge:
            kw["merge_adapter"] = True
    else:
        o = dict(OPENAI_DEFAULTS)
        o["model"] = args.base_model or OPENAI_DEFAULTS["model"]
        kw["base_model"] = o["model"]
        if args.epochs is not None:
            o["n_epochs"] = int(args.epochs)
        if args.batch_size is not None:
            o["batch_size"] = args.batch_size
        if args.lr_multiplier is not None:
            o["learning_rate_multiplier"] = args.lr_multiplier
        for name in ("suffix", "provider", "base_url", "azure_endpoint", "api_version"):
            if getattr(args, name, None):
                o[name] = getattr(args, name)
        if args.poll_interval is not None:
            o["poll_interval"] = args.poll_interval
        kw["openai"] = o
        if args.method == "qlora":
            raise CLIError("the OpenAI backend trains its own way: leave --method as lora.")
    return JobSpec(**kw)


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
            text = (f"[{bar}] step {step}/{total or '?'}"
                    + (f" loss {loss:.4f}" if isinstance(loss, (int, float)) else "")
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
            self._line(f"started on {e.get('device')}: {e.get('base_model')} ({e.get('method')}), "
                       f"{e.get('num_examples')} examples")
        elif t in ("finished", "failed", "cancelled"):
            if self.open_line:
                print(file=sys.stderr)
                self.open_line = False

    def _line(self, text: str) -> None:
        if self.open_line:
            print(file=sys.stderr)
            self.open_line = False
        print(text, file=sys.stderr, flush=True)


def _store_or_none():
    from ftassist.store import StoreLockedError, get_store

    try:
        return get_store()
    except StoreLockedError:
        return None


def _follow(job_id: str, run_dir: Path, managed: bool, proc, progress: _Progress, cancel) -> dict:
    """Print events as they come until the run ends; returns the result summary."""
    from ftassist.train import jobs
    from ftassist.train.events import read_events, tail_text

    offset = 0
    terminal: dict | None = None
    announced_queue = False
    interrupted = False
    while True:
        try:
            if managed:
                jobs.tick()
                if not announced_queue and jobs.get_job(job_id)["status"] == "queued":
                    print("queued: another local job is running; waiting for it to end", file=sys.stderr)
                    announced_queue = True
            events, offset = read_events(run_dir, offset)
            for e in events:
                progress.event(e)
                if e.get("type") in _TERMINAL_STATUS:
                    terminal = e
            if managed:
                job = jobs.get_job(job_id)
                if job["status"] in FINAL:
                    break
            else:
                if terminal is not None:
                    break
                if proc.poll() is not None:
                    events, offset = read_events(run_dir, offset)
                    for e in events:
                        progress.event(e)
                        if e.get("type") in _TERMINAL_STATUS:
                            terminal = e
                    break
            time.sleep(0.3)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            print("\nstopping: the worker saves what it has (Ctrl-C again to leave it running)", file=sys.stderr)
            cancel()
    if managed:
        job = jobs.get_job(job_id)
        return {
            "status": job["status"], "job_id": job_id, "run_dir": str(run_dir),
            "output_dir": job.get("output_dir"), "output_model": job.get("output_model"),
            "final_loss": job.get("final_loss"), "first_loss": job.get("first_loss"),
            "best_eval_loss": job.get("best_eval_loss"), "error": job.get("error"), "hint": job.get("hint"),
        }
    result = {"job_id": job_id, "run_dir": str(run_dir), "output_dir": None, "output_model": None,
              "final_loss": None, "first_loss": None, "best_eval_loss": None, "error": None, "hint": None}
    if terminal is None:
        tail = tail_text(run_dir / "worker.log", max_lines=20)
        result.update(status="failed", error=f"the worker exited (code {proc.returncode}) without reporting",
                      hint="See worker.log in the run folder.\n" + tail)
        return result
    result["status"] = _TERMINAL_STATUS[terminal["type"]]
    result["output_dir"] = terminal.get("output_dir")
    result["output_model"] = terminal.get("output_model") or terminal.get("merged_dir") or terminal.get("output_dir")
    for k in ("final_loss", "first_loss", "best_eval_loss"):
        result[k] = terminal.get(k)
    if terminal["type"] == "failed":
        result.update(error=terminal.get("reason"), hint=terminal.get("hint"))
    return result


def run_train(args) -> int:
    from ftassist import config
    from ftassist.train import jobs

    job_id = jobs.new_job_id()
    train_file, valid_file = prepare_data(args.path, args.valid, args.valid_fraction, args.seed,
                                          config.data_dir() / "prepared" / job_id, quiet=args.json)
    spec = spec_from_args(args, train_file, valid_file)
    try:
        jobs.check_startable(spec)
    except jobs.JobError as exc:
        raise CLIError(str(exc)) from None

    store = _store_or_none()
    managed = store is not None
    proc = None
    if managed:
        jobs.start_job(spec, job_id=job_id)
        job = jobs.get_job(job_id)
        run_dir = Path(job["run_dir"])
        if job["status"] == "failed":
            raise CLIError(job.get("error") or "the worker could not start")
    else:
        print("the app holds the database: training without it (the app adopts this run)", file=sys.stderr)
        run_dir = jobs.prepare_run(spec, job_id)
        proc, _ = jobs.spawn_worker(run_dir)

    if args.detach:
        status = jobs.get_job(job_id)["status"] if managed else "running"
        out = {"status": status, "job_id": job_id, "run_dir": str(run_dir), "output_dir": spec.output_dir or None,
               "pid": proc.pid if proc else jobs.get_job(job_id).get("pid")}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"job {job_id} {status}: follow it with `ftassist jobs show {job_id}` or in the app's Train tab")
            print(f"run folder: {run_dir}")
        return 0

    def cancel() -> None:
        if managed:
            jobs.cancel_job(job_id, timeout=args.cancel_timeout)
        else:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    if not args.json:
        print(f"job {job_id}: run folder {run_dir}", file=sys.stderr)
    result = _follow(job_id, run_dir, managed, proc, _Progress(enabled=not args.quiet), cancel)
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
    if r.get("error"):
        lines.append(f"reason: {r['error']}")
    if r.get("hint"):
        lines.append(f"what to do: {r['hint']}")
    return "\n".join(lines)


# -- ftassist jobs ---------------------------------------------------------------------------------
def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if k in ("spec_json", "log_tail"):
            continue
        out[k] = v.isoformat() if hasattr(v, "isoformat") else v
    return out


def _files_summary(run_dir: Path) -> dict:
    """A job's state read from its folder (when the app holds the database)."""
    from ftassist.train.events import last_terminal, read_events
    from ftassist.train.spec import JobSpec

    events, _ = read_events(run_dir)
    spec = JobSpec.load(run_dir)
    term = last_terminal(events)
    logs = [e for e in events if e.get("type") == "log"]
    return {
        "id": run_dir.name, "backend": spec.backend, "base_model": spec.base_model, "method": spec.method,
        "status": _TERMINAL_STATUS[term["type"]] if term else ("running" if events else "queued"),
        "run_dir": str(run_dir), "last_step": logs[-1].get("step") if logs else None,
        "total_steps": logs[-1].get("total_steps") if logs else None,
        "output_dir": term.get("output_dir") if term else None,
        "error": term.get("reason") if term else None,
    }


def _open_jobs(refresh: bool = True):
    """The jobs module with an up-to-date DB, or None when the app holds the DB."""
    from ftassist.train import jobs

    if _store_or_none() is None:
        return None
    if refresh:
        jobs.reconcile()
    return jobs


def run_jobs_list(args) -> int:
    from ftassist import config

    jobs = _open_jobs()
    if jobs is None:
        rows = [_files_summary(p.parent) for p in sorted(config.runs_dir().glob("*/spec.json"), reverse=True)]
    else:
        rows = [_jsonable(r) for r in jobs.list_jobs()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, default=str))
        return 0
    if not rows:
        print("no jobs yet: start one with `ftassist train FILE`")
        return 0
    print(f"{'id':24} {'status':11} {'backend':7} {'method':6} {'step':>11}  base model")
    for r in rows:
        step = f"{r.get('last_step') or 0}/{r.get('total_steps') or '?'}"
        print(f"{r['id']:24} {r['status']:11} {r['backend']:7} {r['method']:6} {step:>11}  {r['base_model']}")
    return 0


def run_jobs_show(args) -> int:
    from ftassist import config
    from ftassist.train.events import tail_text

    jobs = _open_jobs()
    if jobs is None:
        run_dir = config.runs_dir() / args.id
        if not (run_dir / "spec.json").is_file():
            raise CLIError(f"no job {args.id!r}: see `ftassist jobs` for the ids.")
        job = _files_summary(run_dir)
        tail = tail_text(run_dir / "worker.log", max_lines=args.lines)
    else:
        row = jobs.get_job(args.id)
        if row is None:
            raise CLIError(f"no job {args.id!r}: see `ftassist jobs` for the ids.")
        job = _jsonable(row)
        job["progress"] = jobs.progress(args.id)
        tail = jobs.log_tail(args.id, max_lines=args.lines)
    if args.json:
        job["log_tail"] = tail
        print(json.dumps(job, ensure_ascii=False, default=str))
        return 0
    for key in ("id", "status", "backend", "base_model", "method", "run_dir", "external_id", "output_model",
                "output_dir", "first_loss", "final_loss", "best_eval_loss", "error", "hint"):
        if job.get(key) not in (None, ""):
            print(f"{key:15} {job[key]}")
    prog = job.get("progress") or {}
    if prog.get("step"):
        print(f"{'progress':15} step {prog['step']}/{prog.get('total_steps') or '?'}, eta {format_duration(prog.get('eta_s'))}")
    if tail:
        print("--- worker.log (last lines) ---")
        print(tail)
    return 0


def run_jobs_cancel(args) -> int:
    jobs = _open_jobs(refresh=False)
    if jobs is None:
        raise CLIError("the app holds the database: cancel the job from its Train tab.")
    before = jobs.get_job(args.id)
    if before is None:
        raise CLIError(f"no job {args.id!r}: see `ftassist jobs` for the ids.")
    if before["status"] in FINAL:
        raise CLIError(f"job {args.id} already ended ({before['status']}): nothing to cancel.")
    job = jobs.cancel_job(args.id, timeout=args.timeout)
    if args.json:
        print(json.dumps(_jsonable(job), default=str))
    else:
        print(f"job {args.id}: {job['status']}")
    return 0 if job["status"] == "cancelled" else 1


# -- registration ------------------------------------------------------------------------------------
def register(sub) -> None:
    """Add `train` and `jobs` to the `ftassist` parser."""
    p = sub.add_parser("train", help="fine-tune a model on a dataset (local TRL/PEFT worker or OpenAI)",
                       description="Train on PATH: a chat JSONL, a raw dataset (cleaned and split first), "
                                   "or a folder with train.jsonl/valid.jsonl from `ftassist clean`.")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--base-model", default=None,
                   help="Hub id, local folder or tiny-random (local; default tiny-random); the OpenAI model (openai)")
    p.add_argument("--method", choices=("lora", "qlora", "full"), default="lora")
    p.add_argument("--backend", choices=("local", "openai"), default="local")
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
    o.add_argument("--base-url", default=None, help="an OpenAI-compatible server (provider custom)")
    o.add_argument("--azure-endpoint", default=None)
    o.add_argument("--api-version", default=None)
    o.add_argument("--suffix", default=None, help="up to 64 characters, part of the ft: model name")
    o.add_argument("--lr-multiplier", type=float, default=None, help="learning_rate_multiplier")
    o.add_argument("--poll-interval", type=float, default=None, help=argparse_suppress())
    p.set_defaults(func=run_train)

    j = sub.add_parser("jobs", help="list, show or cancel training jobs")
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


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
