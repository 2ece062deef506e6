"""Fixtures for the Train station: a tiny chat dataset, the worker as a real process, the OpenAI stand-in,
and "the app": another process that holds the database and serves the use cases on its socket."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FACTS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("When does water boil?", "Water boils at one hundred degrees Celsius."),
    ("What is the sun?", "The sun is a star at the centre of our solar system."),
    ("What do cats like?", "Cats like to sleep in warm places."),
    ("What is Python?", "Python is a programming language."),
]


def make_chat_rows(n: int = 48, seed: int = 0) -> list[dict]:
    """`n` short conversations over a handful of facts (learnable in a few steps)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        q, a = FACTS[i % len(FACTS)]
        msgs = [{"role": "user", "content": f"{q} (#{i})"}, {"role": "assistant", "content": a}]
        if rng.random() < 0.5:
            msgs.insert(0, {"role": "system", "content": "You are a helpful assistant."})
        rows.append({"messages": msgs})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def chat_data(tmp_path) -> tuple[Path, Path]:
    """(train.jsonl with 40 examples, valid.jsonl with 8) in a tmp folder."""
    rows = make_chat_rows(48)
    data = tmp_path / "data"
    data.mkdir()
    return write_jsonl(data / "train.jsonl", rows[:40]), write_jsonl(data / "valid.jsonl", rows[40:])


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def start_worker(run_dir: Path) -> subprocess.Popen:
    """Start `python -m ftassist.train.worker RUN_DIR` the way the job manager does: output to worker.log."""
    log = open(run_dir / "worker.log", "ab")
    env = dict(os.environ, PYTHONPATH=str(repo_root()) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    try:
        return subprocess.Popen([sys.executable, "-m", "ftassist.train.worker", str(run_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(repo_root()), env=env,
                                start_new_session=True)
    finally:
        log.close()


def run_worker(run_dir: Path, timeout: float = 240) -> int:
    proc = start_worker(run_dir)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def wait_for_event(run_dir: Path, type_: str, proc: subprocess.Popen, timeout: float = 180) -> list[dict]:
    """Poll events.jsonl until an event of `type_` appears; return all events read so far."""
    from ftassist.train.events import read_events

    events: list[dict] = []
    offset = 0
    deadline = time.time() + timeout
    while time.time() < deadline:
        new, offset = read_events(run_dir, offset)
        events.extend(new)
        if any(e["type"] == type_ for e in events):
            return events
        if proc.poll() is not None:
            new, offset = read_events(run_dir, offset)
            events.extend(new)
            log = (run_dir / "worker.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"worker exited ({proc.returncode}) before a {type_!r} event: {events}\n{log}")
        time.sleep(0.2)
    raise AssertionError(f"no {type_!r} event within {timeout}s: {events}")


def _kill_groups(pids) -> None:
    for pid in pids:
        if not pid:
            continue
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def no_stray_workers(monkeypatch):
    """Offline, one thread per worker (a shared box); whatever a test started is stopped when it ends."""
    from ftassist import store
    from ftassist.train import jobs

    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("OMP_NUM_THREADS", "1")):
        monkeypatch.setenv(name, value)
    yield
    jobs.stop_ingest_loop()
    try:
        rows = store.get_store().query_rows("SELECT pid FROM jobs WHERE pid IS NOT NULL")
    except store.StoreLockedError:  # "the app" of the test holds it: the running_app fixture stops its workers
        rows = []
    _kill_groups(pid for (pid,) in rows)
    jobs.forget_children()


APP_SCRIPT = """
import sys
from ftassist import app_socket
from ftassist.usecases import training
from ftassist.usecases.context import Context

ctx = Context.open()
ctx.store  # the app holds the database from now on, as `ftassist serve` does
training.follow_runs(ctx)
server = app_socket.serve(ctx)
print("serving", flush=True)
sys.stdin.read()  # until the test closes our stdin
app_socket.stop(server)
"""


@pytest.fixture
def running_app(ftassist_home, no_stray_workers):
    """An app process for this test's FTASSIST_HOME: it owns the DuckDB file and answers use cases on
    its socket, so `gateway.call` (and every `ftassist` command) goes through it. Yields its client."""
    from ftassist import app_socket

    env = dict(os.environ, PYTHONPATH=str(repo_root()) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               FTASSIST_HOME=str(ftassist_home), CUDA_VISIBLE_DEVICES="")
    log = open(ftassist_home / "app.log", "wb")
    app = subprocess.Popen([sys.executable, "-c", APP_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=log, cwd=str(repo_root()), env=env)
    log.close()
    client = None
    try:
        line = app.stdout.readline()  # blocks until the app serves (or dies: then an empty line)
        assert line.strip() == b"serving", (ftassist_home / "app.log").read_text(errors="replace")
        client = app_socket.connect()
        assert client is not None
        yield client
    finally:
        if client is not None:
            try:
                _kill_groups(r.get("pid") for r in client.call("list_runs") if r["status"] == "running")
            except (app_socket.AppUnavailable, OSError):  # the app is already gone: nothing to ask
                pass
        app.stdin.close()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


JOBS_TOKEN = "hf_standinTokenForJobs0123456789abcdef"


@pytest.fixture
def hub(jobs_server, no_stray_workers, monkeypatch):
    """The Jobs stand-in as HF_ENDPOINT (modules with another Hub stand-in define their own `hub`), a token in HF_TOKEN, the Hub reachable (the suite is offline by default)."""
    monkeypatch.setenv("HF_ENDPOINT", jobs_server.url)
    monkeypatch.setenv("HF_TOKEN", JOBS_TOKEN)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # huggingface_hub reads both
        monkeypatch.delenv(name, raising=False)
    return jobs_server
