"""The job manager: starts training workers, follows them, and keeps DuckDB up to date.

It lives in the app process (or the CLI's when no app runs), the only DuckDB writer; every
function is given that process's store. A worker is a
separate process in its own process group (`start_new_session`), with stdout and stderr
going to RUN_DIR/worker.log (a file, never a pipe that only a browser would drain), and it
reports only through RUN_DIR/events.jsonl. `ingest()` copies new complete lines from each
running job's events file into `job_events`, moving a stored byte offset in the same
transaction, so an app restart neither loses nor duplicates anything.

Faults are the normal case here: a worker that dies without a final event (killed, out of
memory) is marked failed with its log tail and a hint; a worker this process did not start
(the app restarted, or a CLI run went away) is found again through its pid (still alive and
still our worker), or its job is marked failed / interrupted. One local job runs at a time;
others wait as `queued` and `tick()` starts the next one when the running one ends. OpenAI
jobs run alongside (no local GPU).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftassist import disk_faults
from ftassist.train.events import TERMINAL_TYPES, read_events, tail_text
from ftassist.train.spec import JobSpec
from ftassist.train.worker import OOM_HINT

if TYPE_CHECKING:
    from ftassist.store import Store

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINAL_STATUSES = ("succeeded", "failed", "cancelled", "interrupted")
LOG_FILE = "worker.log"
PID_FILE = "worker.pid"
RUN_SCRIPT = "run.sh"
OOM_REASON = "out of memory: smaller batch, gradient checkpointing, or QLoRA"
# Evidence of running out of memory in the worker's own log (the kernel's OOM killer leaves none there).
_OOM_PATTERN = re.compile(r"out of memory|outofmemory|\boom\b|cannot allocate memory|MemoryError", re.I)
LOW_MEMORY_FRACTION = 0.05  # the machine had less than this share of its memory free at the last sample
_memory: dict[str, dict] = {}  # job id -> the last memory sample of its worker (while it was alive)
_EVENT_STATUS = {"finished": "succeeded", "failed": "failed", "cancelled": "cancelled"}

_lock = threading.RLock()
_children: dict[str, subprocess.Popen] = {}  # workers started by this process (reaped here)
_child_backend: dict[str, str] = {}
_loop: dict[str, Any] = {"thread": None, "stop": None}


class JobError(ValueError):
    """A job cannot be started or found; the message says what to do."""


# -- launching ----------------------------------------------------------------------------
def new_job_id() -> str:
    """Sortable and unique: time of creation plus a random tail."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def visible_gpu_count() -> int:
    """CUDA GPUs this process could use, without importing torch in the app when avoidable."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return int(torch.cuda.device_count())
        except Exception:  # noqa: BLE001
            return 0
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    n = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        ids = [x for x in cvd.split(",") if x.strip() and x.strip() != "-1"]
        n = min(n, len(ids))
    return n


def worker_command(spec: JobSpec, run_dir: str | Path, num_gpus: int = 0) -> list[str]:
    """The exact command that runs a job: the worker, under `accelerate launch` with >1 GPU.

    The command comes from `export.launch_command` (the same one `run.sh` and an exported run
    hold); `accelerate` is run through this interpreter when its script is not on PATH.
    """
    from ftassist.train.export import launch_command

    cmd = [str(c) for c in launch_command(spec, run_dir, num_gpus)]
    if cmd and cmd[0] == "accelerate":
        exe = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
        cmd = ([exe, "launch"] if Path(exe).is_file() else [sys.executable, "-m", "accelerate.commands.launch"]) + cmd[2:]
    return cmd


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def _worker_env(api_key: str | None, provider: str) -> dict[str, str]:
    env = dict(os.environ)
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    if api_key and provider == "hf-jobs":
        env["HF_TOKEN"] = api_key  # the follower hands it to the remote job as a secret
    elif api_key and provider == "together":
        from ftassist.train.together_ft import KEY_ENV as TOGETHER_KEY_ENV

        env[TOGETHER_KEY_ENV] = api_key
    elif api_key:  # the key travels in the child's environment only, never on disk
        from ftassist.train.openai_ft import KEY_ENV

        env[KEY_ENV.get(provider, "OPENAI_API_KEY")] = api_key
    return env


def _write_run_script(run_dir: Path, cmd: list[str]) -> None:
    """run.sh: repeat this run from its folder (here, or on a bigger machine)."""
    from ftassist.train.export import write_run_sh

    write_run_sh(run_dir, cmd)


def check_startable(spec: JobSpec, api_key: str | None = None) -> None:
    """Raise JobError with every problem that would stop `spec` from starting."""
    # A local run with no output_dir saves into its own run folder (decided in prepare_run).
    problems = [p for p in spec.validate(check_files=True)
                if not (spec.backend in ("local", "hf-jobs") and not spec.output_dir and p.startswith("output_dir"))]
    if problems:
        raise JobError(" ".join(problems))
    if spec.backend == "openai":
        from ftassist.train.openai_ft import KEY_ENV, resolve_api_key

        provider = (spec.openai or {}).get("provider") or "openai"
        if provider != "custom" and not resolve_api_key(provider, api_key):
            raise JobError(f"no API key: set {KEY_ENV.get(provider, 'OPENAI_API_KEY')} or enter the key, then start again.")
    if spec.backend == "together":
        from ftassist.train import together_ft

        if not together_ft.resolve_api_key(api_key):
            raise JobError(f"no API key: set {together_ft.KEY_ENV} or enter the key, then start again.")
    if spec.backend == "hf-jobs":
        from ftassist.train import hf_jobs

        if not hf_jobs.resolve_token(api_key):
            raise JobError(f"no Hugging Face token: {hf_jobs.TOKEN_HINT}")


def prepare_run(spec: JobSpec, job_id: str, runs_dir: Path) -> Path:
    """Create RUN_DIR = runs_dir/job_id with its spec.json (output_dir defaults to RUN_DIR/model)."""
    run_dir = Path(runs_dir) / job_id
    run_dir.mkdir(parents=True, exist_ok=False)
    if spec.backend in ("local", "hf-jobs") and not spec.output_dir:  # hf-jobs: where its adapter is downloaded
        spec.output_dir = str(run_dir / "model")
    spec.save(run_dir)
    return run_dir


def spawn_worker(run_dir: str | Path, api_key: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start `python -m ftassist.train.worker RUN_DIR` (or under accelerate) in its own process
    group, stdout+stderr appended to RUN_DIR/worker.log; writes run.sh and worker.pid.
    Returns (process, launcher). Raises OSError when it cannot start."""
    run_dir = Path(run_dir)
    spec = JobSpec.load(run_dir)
    gpus = visible_gpu_count() if spec.backend == "local" else 0
    cmd = worker_command(spec, run_dir, gpus)
    try:
        _write_run_script(run_dir, cmd)
    except OSError as exc:
        log.warning("could not write run.sh in %s: %s", run_dir, exc)
    provider = spec.backend if spec.backend in ("together", "hf-jobs") else (spec.openai or {}).get("provider") or "openai"
    with open(run_dir / LOG_FILE, "ab") as logf:
        proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(run_dir), env=_worker_env(api_key, provider),
        )
    (run_dir / PID_FILE).write_text(str(proc.pid), encoding="utf-8")
    return proc, "accelerate" if gpus > 1 else "python"


def start_job(store: Store, spec: JobSpec, runs_dir: Path, *, api_key: str | None = None, job_id: str | None = None) -> str:
    """Record a job, write its run folder (spec.json, run.sh) and start or queue it; returns its id.

    Local jobs queue behind a running local job; OpenAI and Together jobs start at once (the work
    is remote). `api_key` (OpenAI or Together) is handed to the worker's environment, never stored.
    """
    check_startable(spec, api_key)
    job_id = job_id or new_job_id()
    base = (spec.openai or {}).get("model") or spec.base_model if spec.backend == "openai" else spec.base_model
    with _lock:  # the folder and its row appear together
        run_dir = prepare_run(spec, job_id, runs_dir)
        store.execute(
            "INSERT INTO jobs (id, backend, base_model, method, objective, status, run_dir, spec_json, output_dir,"
            " updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, current_timestamp)",
            [job_id, spec.backend, base, spec.method, spec.objective, str(run_dir), json.dumps(spec.to_dict()),
             spec.output_dir or None],
        )
        if spec.backend in ("openai", "together", "hf-jobs"):  # remote work: no local GPU to wait for
            _launch(store, job_id, api_key=api_key)
        else:
            tick(store)
    return job_id


def _launch(store: Store, job_id: str, api_key: str | None = None) -> None:
    """Spawn the worker of a queued job and mark it running (or failed when it cannot start)."""
    row = get_job(store, job_id)
    try:
        proc, launcher = spawn_worker(row["run_dir"], api_key=api_key)
    except OSError as exc:
        fault = disk_faults.find(exc)  # the run folder's disk: full, read-only...
        error = f"could not start the worker: {fault or exc}"
        hint = fault.hint if fault else "Check that Python and ftassist are installed."
        log.error("job %s: %s", job_id, error)
        store.execute(
            "UPDATE jobs SET status='failed', error=?, hint=?, finished_at=current_timestamp,"
            " updated_at=current_timestamp WHERE id=?",
            [error, hint, job_id],
        )
        return
    _children[job_id] = proc
    _child_backend[job_id] = row["backend"]
    store.execute(
        "UPDATE jobs SET status='running', pid=?, launcher=?, started_at=current_timestamp,"
        " updated_at=current_timestamp WHERE id=?",
        [proc.pid, launcher, job_id],
    )


def tick(store: Store) -> int:
    """Ingest new events (marking dead workers), then start the next queued local job if none is
    running; returns the number of new events. Safe to call from any thread, as often as wanted."""
    with _lock:
        n = ingest(store)
        running = store.query_rows("SELECT count(*) FROM jobs WHERE backend='local' AND status='running'")[0][0]
        closing = any(proc.poll() is None and _child_backend.get(jid) == "local" for jid, proc in _children.items())
        if not running and not closing:
            nxt = store.query_rows(
                "SELECT id FROM jobs WHERE backend='local' AND status='queued' ORDER BY created_at, id LIMIT 1"
            )
            if nxt:
                _launch(store, nxt[0][0])
        return n


# -- following --------------------------------------------------------------------------------
def _process_alive(job: dict) -> tuple[bool, int | None]:
    """(alive, exit code if known). Guards against a recycled pid: it must still be our worker."""
    proc = _children.get(job["id"])
    if proc is not None:
        rc = proc.poll()
        return rc is None, rc
    pid = job.get("pid")
    if not pid:
        return False, None
    try:
        import psutil

        p = psutil.Process(int(pid))
        if p.status() == psutil.STATUS_ZOMBIE:
            return False, None
        try:
            cmdline = " ".join(p.cmdline())
        except psutil.AccessDenied:
            return True, None
        return (str(job["run_dir"]) in cmdline and "ftassist.train.worker" in cmdline), None
    except Exception:  # noqa: BLE001 - NoSuchProcess and friends: it is gone
        return False, None


def _event_row(job_id: str, seq: int, e: dict) -> list:
    def num(key):
        v = e.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    step = e.get("step")
    return [
        job_id, seq, str(e.get("type", "")),
        int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else None,
        num("epoch"), num("loss"), num("eval_loss"), num("learning_rate"), num("tokens_per_s"),
        json.dumps(e, ensure_ascii=False), num("ts"),
    ]


def _death(job: dict, rc: int | None, after_restart: bool) -> dict:
    """Status, reason and hint for a worker that ended without a final event."""
    run_dir = Path(job["run_dir"])
    tail = tail_text(run_dir / LOG_FILE, max_lines=40)
    if job.get("cancel_requested"):
        return {"status": "cancelled", "error": "cancelled (the worker was stopped before it could report)",
                "hint": "", "log_tail": tail}
    if rc is None and after_restart:
        try:
            import psutil

            last_activity = max((p.stat().st_mtime for p in (run_dir / "events.jsonl", run_dir / LOG_FILE,
                                                               run_dir / PID_FILE) if p.exists()), default=0)
            rebooted = psutil.boot_time() > last_activity
        except Exception:  # noqa: BLE001
            rebooted = False
        if rebooted:
            hint = "Start it again (the run folder keeps its spec.json and run.sh)."
            if job.get("external_id"):
                hint = f"The OpenAI job {job['external_id']} may still be running: check the provider's dashboard."
            return {"status": "interrupted", "error": "interrupted: the machine restarted while this job ran",
                    "hint": hint, "log_tail": tail}
    memory = _memory.pop(job["id"], None)
    seen = memory_words(memory)
    disk = _disk_evidence(run_dir, tail, rc)
    if disk is not None:  # it could not write: its last words, or its folder's disk now, say so
        reason = f"{disk}: the worker stopped ({_exit_words(rc)}) without reporting how the run ended"
        log.error("job %s failed: %s", job["id"], reason)
        return {"status": "failed", "error": reason, "hint": disk.hint, "log_tail": tail}
    if _OOM_PATTERN.search(tail):  # the worker itself said so
        return {"status": "failed", "error": OOM_REASON + seen, "hint": OOM_HINT, "log_tail": tail}
    if rc is not None and rc < 0:
        try:
            name = f"{signal.Signals(-rc).name} (signal {-rc})"
        except ValueError:
            name = f"signal {-rc}"
        reason = f"the worker was stopped by {name} before it reported how the run ended"
    elif rc is not None and rc > 128 and rc - 128 in signal.valid_signals():
        reason = (f"the worker exited with code {rc} (stopped by {signal.Signals(rc - 128).name}) before it "
                  "reported how the run ended")
    elif rc is not None:
        reason = f"the worker exited with code {rc} without reporting how the run ended"
    else:
        reason = "the worker process is gone and did not report how the run ended; its exit status is unknown"
    reason += seen
    hint = "See the log tail below (worker.log in the run folder)."
    killed = rc in (-signal.SIGKILL, 128 + signal.SIGKILL)
    if killed and memory and memory.get("available_fraction", 1.0) < LOW_MEMORY_FRACTION:
        hint += " The machine was nearly out of memory at the last sample, so the kernel may have killed it: " + OOM_HINT
    elif killed or rc is None:
        hint += " Something outside the worker ended it (a person, a supervisor, or the kernel's out-of-memory killer: " \
                "`dmesg` or the host's logs say which)."
    return {"status": "failed", "error": reason, "hint": hint, "log_tail": tail}


def _disk_evidence(run_dir: Path, tail: str, rc: int | None) -> disk_faults.DiskFault | None:
    """The disk fault that explains a worker's silent end: named in its log tail, or, when it exited on its
    own (not by a signal, which the disk does not send), shown by its run folder's disk now."""
    fault = disk_faults.in_text(tail)
    if fault is None and not (rc is not None and (rc < 0 or rc > 128)):
        fault = disk_faults.state_of(run_dir)
    if fault is not None and not fault.where:
        fault = disk_faults.DiskFault(fault.errno, str(run_dir), fault.detail)
    return fault


def _exit_words(rc: int | None) -> str:
    return "exit status unknown" if rc is None else f"exit code {rc}"


def memory_words(sample: dict | None) -> str:
    """What is known of memory at the end, in words (empty when nothing was measured)."""
    if not sample:
        return ""
    gb = 1024**3
    return (f"; at the last sample ({sample.get('age_s', 0):.0f} s before it ended) the worker used "
            f"{sample['rss'] / gb:.2f} GB and the machine had {sample['available'] / gb:.2f} GB of "
            f"{sample['total'] / gb:.2f} GB free")


def _sample_memory(job: dict) -> None:
    """Remember the worker's resident memory and the machine's free memory (psutil), while it runs."""
    pid = job.get("pid")
    if not pid:
        return
    try:
        import psutil

        process = psutil.Process(int(pid))
        rss = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                rss += child.memory_info().rss
            except psutil.Error:
                continue
        machine = psutil.virtual_memory()
    except Exception:  # noqa: BLE001 - gone between the check and the sample: keep the last one
        return
    _memory[job["id"]] = {"rss": rss, "available": machine.available, "total": machine.total,
                          "available_fraction": machine.available / max(machine.total, 1), "at": time.time()}


def _ingest_one(store: Store, job: dict) -> int:
    alive, rc = _process_alive(job)  # before reading: a final event written before death is then in the file
    if alive:
        _sample_memory(job)
    elif job["id"] in _memory:
        _memory[job["id"]]["age_s"] = max(0.0, time.time() - _memory[job["id"]]["at"])
    # A worker this process did not start (an app restart, a CLI run that went away) may have died with the machine.
    after_restart = job["id"] not in _children
    events, offset = read_events(job["run_dir"], int(job.get("events_offset") or 0))
    sets: dict[str, Any] = {}
    for e in events:
        t = e.get("type")
        if t == "started":
            if e.get("total_steps"):
                sets["total_steps"] = int(e["total_steps"])
            if e.get("external_id"):
                sets["external_id"] = str(e["external_id"])
        elif t == "log":
            if e.get("step") is not None:
                sets["last_step"] = int(e["step"])
            if e.get("total_steps"):
                sets["total_steps"] = int(e["total_steps"])
            if e.get("loss") is not None:
                if job.get("first_loss") is None and "first_loss" not in sets:
                    sets["first_loss"] = float(e["loss"])
                sets["final_loss"] = float(e["loss"])
        elif t == "eval" and e.get("eval_loss") is not None:
            best = sets.get("best_eval_loss", job.get("best_eval_loss"))
            sets["best_eval_loss"] = float(e["eval_loss"]) if best is None else min(best, float(e["eval_loss"]))
        elif t in TERMINAL_TYPES:
            sets["status"] = _EVENT_STATUS[t]
            sets["finished_at"] = "now"
            if t == "finished":
                out = e.get("output_model") or e.get("output_dir")
                if job["backend"] == "openai":
                    sets["output_model"] = out
                else:
                    sets["output_model"] = e.get("merged_dir") or e.get("output_dir")
                sets["output_dir"] = e.get("output_dir")
                if e.get("step") is not None:  # the run's real last step (early stopping may end it sooner)
                    sets["last_step"] = sets["total_steps"] = int(e["step"])
                for k in ("final_loss", "first_loss", "best_eval_loss"):
                    if e.get(k) is not None:
                        sets[k] = float(e[k])
            elif t == "failed":
                sets.update(error=e.get("reason"), hint=e.get("hint") or "", log_tail=e.get("log_tail") or "")
                fault = disk_faults.in_text(e.get("reason"))
                if fault is not None:  # the worker's own words name a full or read-only disk: lead with it
                    sets.update(error=f"{fault.cause} ({fault.where or job['run_dir']}): {e.get('reason')}",
                                hint=fault.hint)
                    log.error("job %s failed: %s", job["id"], sets["error"])
                if not sets["log_tail"]:
                    sets["log_tail"] = tail_text(Path(job["run_dir"]) / LOG_FILE, max_lines=40)
            elif t == "cancelled":  # a partial model (if saved) is in output_dir, not offered as the result
                sets["output_dir"] = e.get("output_dir") or job.get("output_dir")
    extra_event: dict | None = None
    final_now = sets.get("status") in FINAL_STATUSES
    if not final_now and job["status"] == "running" and not alive and _reattach(job, sets):
        pass  # a new follower took the remote job over: the run goes on
    elif not final_now and job["status"] == "running" and not alive:
        death = _death(job, rc, after_restart)
        sets.update(death, finished_at="now")
        extra_event = {"type": death["status"], "ts": time.time(),
                       "reason": death["error"], "hint": death["hint"], "source": "job manager"}
        final_now = True
    if not events and not sets:
        return 0
    with _lock, store.transaction() as con:
        seq = con.execute("SELECT coalesce(max(seq), -1) + 1 FROM job_events WHERE job_id=?", [job["id"]]).fetchone()[0]
        rows = [_event_row(job["id"], seq + i, e) for i, e in enumerate(events)]
        if extra_event is not None:
            rows.append(_event_row(job["id"], seq + len(rows), extra_event))
        if rows:
            con.executemany("INSERT INTO job_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        assignments = ["events_offset = ?", "updated_at = current_timestamp"]
        params: list[Any] = [offset]
        for key, value in sets.items():
            if key == "finished_at":
                assignments.append("finished_at = current_timestamp")
            else:
                assignments.append(f"{key} = ?")
                params.append(value)
        con.execute(f"UPDATE jobs SET {', '.join(assignments)} WHERE id = ?", [*params, job["id"]])
    # A child that wrote its final event may still be closing down: ingest() reaps it later, and
    # tick() starts the next local job only once it is gone (its GPU memory freed).
    return len(events)


REATTACH_LIMIT = 3  # followers started again for one run by this process, before it is marked failed
_reattached: dict[str, int] = {}


def _reattach(job: dict, sets: dict[str, Any]) -> bool:
    """A Hugging Face Jobs run whose local follower died (an app restart, a kill) while its remote job
    goes on: start a follower again, which finds the job by the id in its events instead of creating
    another. True when one was started (its pid goes into `sets`)."""
    external_id = sets.get("external_id") or job.get("external_id")
    if job["backend"] != "hf-jobs" or not external_id or job.get("cancel_requested"):
        return False
    if _reattached.get(job["id"], 0) >= REATTACH_LIMIT:
        return False
    _reattached[job["id"]] = _reattached.get(job["id"], 0) + 1
    try:
        proc, _ = spawn_worker(job["run_dir"])
    except OSError as exc:
        log.warning("could not re-attach to %s: %s", external_id, exc)
        return False
    _children[job["id"]] = proc
    _child_backend[job["id"]] = job["backend"]
    sets["pid"] = proc.pid
    return True


def ingest(store: Store, job_id: str | None = None) -> int:
    """Copy new events of running jobs (or of `job_id`) into DuckDB; mark dead workers. Returns new events."""
    with _lock:
        if job_id is not None:
            jobs = store.query("SELECT * FROM jobs WHERE id = ?", [job_id])
        else:
            jobs = store.query("SELECT * FROM jobs WHERE status = 'running'")
        n = 0
        for job in jobs:
            try:
                n += _ingest_one(store, job)
            except Exception as exc:
                fault = disk_faults.find(exc)
                if fault is None:
                    log.exception("ingesting job %s failed", job["id"])
                else:  # the database's disk: said once per tick, no traceback; retried on the next tick
                    log.error("could not record the progress of job %s: %s", job["id"], fault)
        # Reap workers that already ended and were ingested.
        for jid, proc in list(_children.items()):
            if proc.poll() is not None:
                row = store.query_rows("SELECT status FROM jobs WHERE id=?", [jid])
                if not row or row[0][0] in FINAL_STATUSES:
                    _children.pop(jid, None)
                    _child_backend.pop(jid, None)
        return n


# -- control ----------------------------------------------------------------------------------
def cancel_job(store: Store, job_id: str, timeout: float = 10.0) -> dict:
    """Stop a job: a queued one is dropped; a running one gets SIGTERM (its whole process
    group: the worker saves what it has and exits), then SIGKILL after `timeout` seconds."""
    job = get_job(store, job_id)
    if job is None:
        raise JobError(f"no job {job_id!r}: see `ftassist jobs` for the ids.")
    if job["status"] == "queued":
        store.execute(
            "UPDATE jobs SET status='cancelled', error='cancelled before it started', finished_at=current_timestamp,"
            " updated_at=current_timestamp WHERE id=? AND status='queued'", [job_id])
        return get_job(store, job_id)
    if job["status"] != "running":
        return job
    store.execute("UPDATE jobs SET cancel_requested=true, updated_at=current_timestamp WHERE id=?", [job_id])
    job["cancel_requested"] = True
    pid = job.get("pid")
    alive, _ = _process_alive(job)
    if pid and alive:
        _signal_group(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _process_alive(job)[0]:
            time.sleep(0.1)
        if _process_alive(job)[0]:
            _signal_group(int(pid), signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _process_alive(job)[0]:
                time.sleep(0.1)
    tick(store)
    return get_job(store, job_id)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the worker leads its own group (start_new_session)
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def wait(store: Store, job_id: str, timeout: float | None = None, interval: float = 0.5) -> dict:
    """Follow a job until it is final (ingesting as it goes); returns its row."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        tick(store)
        job = get_job(store, job_id)
        if job is None or job["status"] in FINAL_STATUSES:
            return job
        if deadline is not None and time.monotonic() > deadline:
            return job
        time.sleep(interval)


# -- reading ----------------------------------------------------------------------------------
def list_jobs(store: Store, limit: int = 200) -> list[dict]:
    """Jobs, newest first."""
    return store.query(
        "SELECT id, backend, base_model, method, objective, status, run_dir, pid, external_id, output_model, output_dir,"
        " error, hint, total_steps, last_step, first_loss, final_loss, best_eval_loss, created_at, started_at,"
        " finished_at FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?", [limit])


def get_job(store: Store, job_id: str) -> dict | None:
    rows = store.query("SELECT * FROM jobs WHERE id = ?", [job_id])
    if not rows:
        return None
    job = rows[0]
    try:
        job["spec"] = json.loads(job.get("spec_json") or "{}")
    except ValueError:
        job["spec"] = {}
    return job


def job_events(store: Store, job_id: str, types: tuple[str, ...] | None = None) -> list[dict]:
    """The job's ingested events in order, as the worker wrote them."""
    rows = store.query_rows(
        "SELECT type, payload_json FROM job_events WHERE job_id = ? ORDER BY seq", [job_id])
    out = []
    for t, payload in rows:
        if types and t not in types:
            continue
        try:
            out.append(json.loads(payload))
        except (TypeError, ValueError):
            out.append({"type": t})
    return out


def last_checkpoint(store: Store, job_id: str) -> dict | None:
    """The newest checkpoint a run can resume from: {"step", "path"}; None when it has none.

    A local checkpoint counts only while its folder still holds the trainer's state (older ones are
    rotated away); a Hugging Face Jobs run resumes from the copy its job uploaded (`hub_path`).
    """
    job = get_job(store, job_id)
    if job is None:
        return None
    for event in reversed(job_events(store, job_id, types=("checkpoint",))):
        step = event.get("step")
        if job["backend"] == "hf-jobs":
            if event.get("hub_path"):
                return {"step": step, "path": str(event["hub_path"])}
            continue
        path = event.get("path")
        if path and (Path(path) / "trainer_state.json").is_file():
            return {"step": step, "path": str(path)}
    return None


def loss_points(store: Store, job_id: str) -> list[dict]:
    """Training and validation loss by step: [{"step", "loss", "series": "train"|"validation", "epoch"}]
    (the epoch when the run logged one: the assistant's loss diagnosis reads it)."""
    rows = store.query_rows(
        "SELECT step, loss, 'train', epoch FROM job_events WHERE job_id=? AND type='log' AND loss IS NOT NULL"
        " UNION ALL SELECT step, eval_loss, 'validation', epoch FROM job_events WHERE job_id=? AND type='eval'"
        " AND eval_loss IS NOT NULL ORDER BY 3 DESC, 1", [job_id, job_id])
    return [{"step": s, "loss": v, "series": k, "epoch": e} for s, v, k, e in rows]


def progress(store: Store, job_id: str) -> dict:
    """Where a job is: step, total, fraction, ETA, tokens/s (from the last `log` event)."""
    job = get_job(store, job_id) or {}
    row = store.query_rows(
        "SELECT payload_json FROM job_events WHERE job_id=? AND type='log' ORDER BY seq DESC LIMIT 1", [job_id])
    last = json.loads(row[0][0]) if row else {}
    step = last.get("step") or job.get("last_step") or 0
    total = last.get("total_steps") or job.get("total_steps")
    if job.get("status") == "succeeded" and job.get("last_step"):  # the finished event's step count is final
        step = total = job["last_step"]
    fraction = min(1.0, step / total) if total else None
    if job.get("status") == "succeeded":
        fraction = 1.0
    return {"status": job.get("status"), "step": step, "total_steps": total, "fraction": fraction,
            "eta_s": last.get("eta_s"), "tokens_per_s": last.get("tokens_per_s"), "loss": last.get("loss"),
            "epoch": last.get("epoch")}


def log_tail(store: Store, job_id: str, max_lines: int = 40) -> str:
    job = get_job(store, job_id)
    if job is None:
        return ""
    return tail_text(Path(job["run_dir"]) / LOG_FILE, max_lines=max_lines)


# -- the app's background follower --------------------------------------------------------------
def start_ingest_loop(store: Store, interval: float = 1.0) -> threading.Thread:
    """`tick()` at once (after an app restart: find the workers again, or mark their jobs), then
    every `interval` seconds in a daemon thread, so jobs are followed (and the queue moves)
    whether or not a browser is open. Idempotent."""
    thread = _loop.get("thread")
    if thread is not None and thread.is_alive():
        return thread
    stop = threading.Event()

    def run() -> None:
        while True:
            try:
                tick(store)
            except Exception:
                log.exception("job ingest failed")
            if stop.wait(interval):
                return

    thread = threading.Thread(target=run, name="ftassist-ingest", daemon=True)
    _loop.update(thread=thread, stop=stop)
    thread.start()
    return thread


def stop_ingest_loop(timeout: float = 5.0) -> None:
    stop, thread = _loop.get("stop"), _loop.get("thread")
    if stop is not None:
        stop.set()
    if thread is not None:
        thread.join(timeout)
    _loop.update(thread=None, stop=None)


def forget_children() -> None:
    """Drop this process's handles on its workers (tests: simulate an app restart)."""
    with _lock:
        _children.clear()
        _child_backend.clear()
