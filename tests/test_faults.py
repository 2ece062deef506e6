"""Faults with a cause (issue 17): a full, read-only or size-capped disk is said as such to the person and in the
log, a run whose folder's disk fills fails with that reason, and what was acknowledged before is still there.

Every fault here is real. As root with `mount` allowed, a tiny tmpfs gives a real ENOSPC and a read-only remount
a real EROFS; elsewhere those tests skip, saying why. The tests that always run make a real EFBIG ("File too
large") with RLIMIT_FSIZE in a child process, which the product treats as the same kind of fault.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from ftassist import config, disk_faults
from ftassist import store as store_mod

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "train"))


# -- making real faults ---------------------------------------------------------------------------------
def _mount_tmpfs(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a real full or read-only disk needs a tmpfs mount, and this test does not run as root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {done.stderr.strip()}")


@pytest.fixture
def tmpfs():
    """mount(folder, size): a real small disk at `folder`, unmounted at the end."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str = "16m") -> Path:
        _mount_tmpfs(folder, size)
        mounted.append(folder)
        return folder

    yield mount
    store_mod.reset_store()
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Write a file in `folder` until its disk refuses (a real ENOSPC); returns the file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    return filler
                chunk = chunk[: len(chunk) // 2]


def _remount(folder: Path, mode: str) -> None:
    done = subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _no_size_limit_signal() -> None:
    """In the child: a write past RLIMIT_FSIZE fails with EFBIG instead of killing the process (SIGXFSZ)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _run_child(script: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FTASSIST_HOME=str(home), PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=_no_size_limit_signal)


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# -- the voting page, in this process, over HTTP as a browser speaks to it ---------------------------------
def _seed_arena(n_battles: int) -> None:
    from ftassist.arena import battles

    store = store_mod.get_store()
    store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES "
                  "('m-one', 'hf', 'Model One', '{}'), ('m-two', 'hf', 'Model Two', '{}')")
    for i in range(n_battles):
        battles.add_battle(store, f"Question {i}: what is {i} plus {i}?", "m-one", "m-two",
                           f"It is {2 * i}.", f"{i} plus {i} makes {2 * i}.")


class Page:
    """One session of the arena-only page, speaking Gradio's queue protocol."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.hash = uuid.uuid4().hex[:12]
        config_json = httpx.get(self.url + "/config").json()
        self.fn = {d.get("api_name"): i for i, d in enumerate(config_json["dependencies"])}

    def call(self, api_name: str) -> tuple[dict, str]:
        from ftassist.arena import battles

        battles.rate_limiter.reset()  # this test votes faster than a person may
        httpx.post(self.url + "/gradio_api/queue/join", json={
            "data": [None], "fn_index": self.fn[api_name], "session_hash": self.hash,
            "event_data": None, "trigger_id": None}).raise_for_status()
        raw = ""
        with httpx.stream("GET", self.url + "/gradio_api/queue/data", params={"session_hash": self.hash},
                          timeout=60) as response:
            for line in response.iter_lines():
                raw += line + "\n"
                if '"process_completed"' in line:
                    return json.loads(line.removeprefix("data: ")), raw
        raise AssertionError(f"no result: {raw}")

    def round_and_vote(self) -> tuple[dict, str, str]:
        """(result, raw, endpoint): the vote's, or the new round's when that already failed."""
        result, raw = self.call("arena_new_round")
        if not result.get("success"):
            return result, raw, "arena_new_round"
        result, raw = self.call("arena_vote_a")
        return result, raw, "arena_vote_a"


@pytest.fixture
def arena_page(monkeypatch):
    """start(): the arena-only page of this process's data dir on 127.0.0.1; its URL."""
    demos = []
    for name in ("ROUNDS_PER_MINUTE", "ROUNDS_PER_MINUTE_PER_ADDRESS", "VOTES_PER_MINUTE_PER_ADDRESS"):
        monkeypatch.setenv(f"FTASSIST_ARENA_{name}", "10000")

    def start() -> str:
        from ftassist.ui.layout import build_app

        demo = build_app(arena_only=True)
        demo.queue()
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        demos.append(demo)
        return url

    yield start
    for demo in demos:
        demo.close()


def _votes() -> int:
    return store_mod.get_store().query_rows("SELECT count(*) FROM votes")[0][0]


def test_a_vote_on_a_full_disk_says_so_and_the_votes_acknowledged_before_survive(
        tmpfs, arena_page, monkeypatch, caplog, capfd):
    home = tmpfs(Path(tempfile.mkdtemp()) / "home")
    monkeypatch.setenv("FTASSIST_HOME", str(home))
    store_mod.reset_store()
    _seed_arena(40)
    page = Page(arena_page())
    for _ in range(2):
        result, raw, _ = page.round_and_vote()
        assert result["success"], raw
    acknowledged = 2

    filler = _fill(home)
    caplog.set_level(logging.ERROR)
    # DuckDB appends to its write-ahead log: the first writes may still fit in its last page; the next cannot.
    for _ in range(36):
        result, raw, endpoint = page.round_and_vote()
        if not result.get("success"):
            break
        acknowledged += endpoint == "arena_vote_a"
    else:
        raise AssertionError("every vote was accepted on a full disk")

    error = result["output"]["error"]
    assert error.startswith("Not saved: the disk is full (" + str(home)), error  # the cause and the file
    assert "No space left on device" in error and "Free some space" in error
    _no_traceback(raw, capfd.readouterr().err)
    handler = "do_vote" if endpoint == "arena_vote_a" else "new_round"  # the handler the page called
    logged = [r.getMessage() for r in caplog.records if r.name == "ftassist.faults"]
    assert any(handler in m and "failed: the disk is full (" + str(home) in m for m in logged), logged
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("ftassist"))

    # Every vote the page acknowledged is still there after the store is opened again on a freed disk.
    store_mod.reset_store()
    filler.unlink()
    assert _votes() == acknowledged


def test_a_read_only_data_dir_is_said_as_such_not_as_a_database_in_use(tmpfs, monkeypatch):
    home = tmpfs(Path(tempfile.mkdtemp()) / "home")
    monkeypatch.setenv("FTASSIST_HOME", str(home))
    store_mod.reset_store()
    _seed_arena(1)
    store_mod.reset_store()
    _remount(home, "ro")
    with pytest.raises(disk_faults.DiskFaultError) as raised:
        store_mod.get_store()
    assert not isinstance(raised.value, store_mod.StoreLockedError)
    assert "the disk is read-only" in str(raised.value) and str(home) in str(raised.value)
    assert "in use" not in str(raised.value)
    _remount(home, "rw")
    assert store_mod.get_store().query_rows("SELECT count(*) FROM battles")[0][0] == 1  # nothing was lost


def test_starting_a_run_on_a_read_only_disk_says_so_in_the_train_tab(tmpfs, caplog):
    """The Train tab's Start, through the handler the built app registered (wrapped as it serves it)."""
    import gradio as gr

    from ftassist.ui.layout import build_app
    from ftassist.usecases.session import Session

    runs = tmpfs(config.data_dir() / "runs", "1m")
    _remount(runs, "ro")
    train = tmp_chat(Path(tempfile.mkdtemp()))
    demo = build_app()
    start = next(f for f in demo.fns.values() if f.api_name == "start_training")
    caplog.set_level(logging.ERROR)
    form = dict(backend="local", base_model="tiny-random", method="lora", epochs=None, lr=None, lora_r=None,
                lora_alpha=None, max_steps=1, train_file=str(train), valid_file="", openai_model=None, suffix=None,
                provider=None, base_url=None, azure_endpoint=None, api_version=None, api_key=None, session=Session(),
                flavor=None, objective="sft", dpo_beta=None, start_from=None)
    with pytest.raises(gr.Error) as raised:
        start.fn(**form)
    message = raised.value.message
    assert message.startswith(f"Not saved: the disk is read-only ({runs}/"), message
    assert "Read-only file system" in message and "Make that disk writable" in message
    assert any(f"failed: the disk is read-only ({runs}/" in r.getMessage() for r in caplog.records)
    assert store_mod.get_store().query_rows("SELECT count(*) FROM jobs")[0][0] == 0  # no run without its folder


def tmp_chat(folder: Path, n: int = 12, name: str = "train.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                                     {"role": "assistant", "content": f"It is {2 * i}."}]}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


# -- the journal of a check ------------------------------------------------------------------------------
CHECK = [sys.executable, "-m", "ftassist", "check"]


def test_a_check_on_a_full_disk_says_its_row_was_not_journaled_and_why(tmpfs):
    home = tmpfs(Path(tempfile.mkdtemp()) / "home", "4m")
    data = tmp_chat(Path(tempfile.mkdtemp()))
    env = dict(os.environ, FTASSIST_HOME=str(home), PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    first = subprocess.run(CHECK + [str(data)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    filler = _fill(home)
    second = subprocess.run(CHECK + [str(data)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr  # the check itself is done and shown
    assert "12 valid examples" in second.stdout
    journal = store_mod.journal_dir(home) / "datasets.jsonl"
    assert f"the disk is full ({journal}): No space left on device" in second.stderr, second.stderr
    assert "not added to the list of checked datasets" in second.stderr
    _no_traceback(second.stdout, second.stderr)
    filler.unlink()
    rows = store_mod.Store(home / "ftassist.duckdb").query_rows("SELECT path FROM datasets")
    assert rows == [(str(data),)]  # the check journaled before the disk filled is in, whole


# -- a size limit (EFBIG), everywhere --------------------------------------------------------------------
STORE_CHILD = r"""
import json, os, resource, sys
from ftassist import disk_faults, store as store_mod

store = store_mod.get_store()
store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES ('kept', 'hf', 'Kept', '{}')")
limit = os.path.getsize(str(store.path) + ".wal") + 16384
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
acknowledged = ["kept"]
try:
    for i in range(200):
        store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES (?, 'hf', ?, '{}')",
                      [f"m{i}", "x" * 2000])
        acknowledged.append(f"m{i}")
    print(json.dumps({"raised": None}))
except OSError as exc:
    print(json.dumps({"raised": type(exc).__name__, "errno": exc.errno, "text": str(exc),
                      "strerror": exc.strerror, "acknowledged": acknowledged}))
"""


def test_a_store_write_past_the_file_size_limit_names_the_cause_and_keeps_what_was_committed(ftassist_home):
    done = _run_child(STORE_CHILD, ftassist_home)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["raised"] == "DiskFaultError" and outcome["errno"] == errno.EFBIG, outcome
    wal = f"{ftassist_home / 'ftassist.duckdb'}.wal"
    assert f"a file grew past the size allowed ({wal}): File too large" in outcome["text"], outcome
    assert outcome["strerror"] == outcome["text"]  # what `exc.strerror` callers print says it too
    assert f"a file grew past the size allowed ({wal})" in done.stderr  # and the log
    _no_traceback(done.stderr)
    store_mod.reset_store()
    kept = {row[0] for row in store_mod.get_store().query_rows("SELECT id FROM arena_models")}
    assert kept == set(outcome["acknowledged"])  # every acknowledged write survives; the refused one is not there


VOTE_CHILD = r"""
import json, logging, os, resource, sys
import httpx
logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
sys.path.insert(0, sys.argv[1])
from test_faults import Page, _seed_arena
from ftassist import store as store_mod
from ftassist.ui.layout import build_app

_seed_arena(40)
demo = build_app(arena_only=True)
demo.queue()
_, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
page = Page(url)
results = [page.round_and_vote()[0]]
wal = str(store_mod.get_store().path) + ".wal"
limit = os.path.getsize(wal) + 8192
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
for _ in range(36):
    result, raw, endpoint = page.round_and_vote()
    results.append(result)
    if not result.get("success"):
        break
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
demo.close()
print(json.dumps({"last": results[-1], "raw": raw, "endpoint": endpoint, "wal": wal,
                  "votes": store_mod.get_store().query_rows("SELECT count(*) FROM votes")[0][0]}))
"""


def test_a_vote_past_the_file_size_limit_is_said_with_its_cause_on_the_page_and_in_the_log(ftassist_home):
    env_limits = {f"FTASSIST_ARENA_{n}": "10000" for n in ("ROUNDS_PER_MINUTE", "ROUNDS_PER_MINUTE_PER_ADDRESS",
                                                           "VOTES_PER_MINUTE_PER_ADDRESS")}
    os.environ.update(env_limits)
    try:
        done = _run_child(VOTE_CHILD, ftassist_home, str(ROOT / "tests"))
    finally:
        for name in env_limits:
            os.environ.pop(name, None)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    error = outcome["last"]["output"]["error"]
    assert error.startswith(f"Not saved: a file grew past the size allowed ({outcome['wal']}): File too large"), error
    assert "ulimit -f" in error
    assert f"failed: a file grew past the size allowed ({outcome['wal']})" in done.stderr  # the log says it too
    _no_traceback(outcome["raw"], done.stderr)
    store_mod.reset_store()
    assert _votes() == outcome["votes"]  # what the page acknowledged, after a restart


# -- training runs ---------------------------------------------------------------------------------------
@pytest.fixture
def workers_stopped(monkeypatch):
    """Offline, one thread per worker (a shared box); every worker a test started is stopped when it ends."""
    from ftassist.train import jobs

    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("OMP_NUM_THREADS", "1")):
        monkeypatch.setenv(name, value)
    yield
    jobs.stop_ingest_loop()
    for (pid,) in store_mod.get_store().query_rows("SELECT pid FROM jobs WHERE pid IS NOT NULL"):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    jobs.forget_children()


@pytest.mark.slow
def test_a_run_whose_disk_fills_fails_with_that_reason_and_the_next_on_a_read_only_disk_too(tmpfs, workers_stopped,
                                                                                          caplog):
    """Job one trains with its run folder on a small disk that fills while it runs; job two waits in the queue
    with its run folder on a disk made read-only meanwhile. Both fail with the disk's fault as the reason."""
    from job_waiting import wait_for

    from ftassist.train import jobs
    from ftassist.train.spec import JobSpec

    base = Path(tempfile.mkdtemp())
    full_runs, read_only_runs = tmpfs(base / "full", "64m"), tmpfs(base / "read-only", "1m")
    (base / "data").mkdir()
    train, valid = str(tmp_chat(base / "data", 40)), str(tmp_chat(base / "data", 8, "valid.jsonl"))
    store = store_mod.get_store()
    spec = {"train_file": train, "valid_file": valid, "per_device_batch_size": 4, "logging_steps": 1}
    first = jobs.start_job(store, JobSpec(max_steps=5000, eval_steps=1000, save_steps=1000, **spec), full_runs)
    second = jobs.start_job(store, JobSpec(max_steps=2, **spec), read_only_runs)
    assert jobs.get_job(store, second)["status"] == "queued"
    _remount(read_only_runs, "ro")
    caplog.set_level(logging.ERROR)

    wait_for(lambda: (jobs.get_job(store, first)["last_step"] or 0) >= 1, what="a logged step")
    _fill(full_runs)
    failed = wait_for(lambda: (j := jobs.get_job(store, first))["status"] != "running" and j, what="the failure")
    run_dir = failed["run_dir"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("the disk is full ("), failed["error"]
    assert run_dir in failed["error"] and "Free some space" in failed["hint"]
    assert "out of memory" not in failed["error"]
    assert failed["last_step"] >= 1  # what the run reported before the disk filled is kept
    events = jobs.job_events(store, first)
    assert {"started", "log"} <= {e["type"] for e in events}
    assert events[-1]["type"] == "failed" and events[-1]["source"] == "job manager"
    assert events[-1]["reason"] == failed["error"]
    assert any(f"job {first} failed: the disk is full" in r.getMessage() for r in caplog.records)

    refused = wait_for(lambda: (j := jobs.get_job(store, second))["status"] == "failed" and j, what="the second")
    assert refused["error"].startswith("could not start the worker: the disk is read-only ("), refused["error"]
    assert str(read_only_runs) in refused["error"] and "Make that disk writable" in refused["hint"]
    assert any(f"job {second}: could not start the worker: the disk is read-only" in r.getMessage()
               for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("ftassist"))


JOB_CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from test_faults import tmp_chat
from pathlib import Path
from ftassist import config, store as store_mod
from ftassist.train import jobs
from ftassist.train.spec import JobSpec

data = Path(sys.argv[2])
store = store_mod.get_store()
spec = JobSpec(train_file=str(tmp_chat(data, 40)), valid_file=str(tmp_chat(data, 8, "valid.jsonl")),
               per_device_batch_size=4, logging_steps=1, max_steps=2)
limit = 256 * 1024  # the worker inherits it: its run folder takes no file larger than this
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
job_id = jobs.start_job(store, spec, config.runs_dir())
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
job = jobs.wait(store, job_id, timeout=240, interval=0.2)
print(json.dumps({k: job[k] for k in ("status", "error", "hint", "run_dir", "last_step")}))
"""


@pytest.mark.slow
def test_a_run_whose_files_pass_the_size_limit_fails_with_that_reason(ftassist_home, workers_stopped, tmp_path):
    """Always runs (no mount needed): the worker meets a real EFBIG in its run folder, and the run fails saying so."""
    done = _run_child(JOB_CHILD, ftassist_home, str(ROOT / "tests"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    job = json.loads(done.stdout.strip().splitlines()[-1])
    assert job["status"] == "failed", job
    assert job["error"].startswith("a file grew past the size allowed (" + job["run_dir"]), job
    assert "File too large" in job["error"] and "ulimit -f" in job["hint"]
    assert "out of memory" not in job["error"]
    assert f"failed: a file grew past the size allowed ({job['run_dir']}" in done.stderr  # the app's log
    _no_traceback(done.stderr)


# -- the words -------------------------------------------------------------------------------------------
def test_the_faults_are_recognised_from_the_systems_own_words_and_nothing_else():
    full = disk_faults.in_text('TransactionContext Error: Failed to commit: Could not write file "/d/x.wal": '
                               "No space left on device")
    assert (full.errno, full.where, str(full)) == (errno.ENOSPC, "/d/x.wal",
                                                   "the disk is full (/d/x.wal): No space left on device")
    worker = disk_faults.in_text("OSError: [Errno 30] Read-only file system: '/runs/r1/checkpoint-2'")
    assert (worker.errno, worker.where) == (errno.EROFS, "/runs/r1/checkpoint-2")
    assert disk_faults.in_text("HTTP 403: permission denied for this repository") is None
    assert disk_faults.in_text("CUDA out of memory") is None
    assert disk_faults.find(PermissionError(errno.EACCES, "Permission denied")) is None  # no file: not a disk's
    assert disk_faults.find(ValueError("bad input")) is None
