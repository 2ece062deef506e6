"""Fixtures of the assistant tests: a context, a small dataset file, a crafted training run in DuckDB, no API key."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def no_api_key(monkeypatch):
    """The no-key path unless a test sets a key itself (a developer's shell may export one)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "FTASSIST_ASSISTANT_MODEL"):
        monkeypatch.delenv(name, raising=False)


def chat_line(i: int, answer: str | None = None) -> str:
    return json.dumps({"messages": [
        {"role": "system", "content": "You are a helpful support assistant for a small shop."},
        {"role": "user", "content": f"Question number {i}: how do I return item {i}?"},
        {"role": "assistant", "content": answer or f"To return item {i}, open Orders, pick the order, press "
                                                   f"Return and print the label. Refunds take {i % 5 + 3} days."},
    ]})


@pytest.fixture
def dataset_file(tmp_path) -> Path:
    """24 valid chat examples and one line that is not JSON (line 5)."""
    lines = [chat_line(i) for i in range(1, 25)]
    lines.insert(4, "{not json")
    path = tmp_path / "support.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def ctx(ftassist_home):
    """The application context of this test's data dir (what the app hands the assistant)."""
    from ftassist.usecases.context import Context, Settings

    return Context.open(Settings(data_dir=ftassist_home))


@pytest.fixture
def checked_session(dataset_file):
    """A session as the Data tab leaves it after a check."""
    from ftassist.data.check import check_path
    from ftassist.usecases.session import Dataset, Session

    return Session().checked(Dataset(path=str(dataset_file), report=check_path(dataset_file).to_dict()))


def insert_job(job_id: str, train: list[tuple[int, float]], evals: list[tuple[int, float]],
               spec: dict | None = None, status: str = "succeeded", run_dir: str = "/nonexistent/run") -> str:
    """A job row and its loss events straight into DuckDB, as the job manager would have ingested them."""
    from ftassist.store import get_store

    spec = spec or {"backend": "local", "base_model": "tiny-random", "method": "lora", "num_epochs": 5,
                    "learning_rate": 0.0002, "early_stopping_patience": None}
    store = get_store()  # the data dir's store, which the test's Context opens too
    store.execute(
        "INSERT INTO jobs (id, backend, base_model, method, status, run_dir, spec_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [job_id, "local", spec.get("base_model", "tiny-random"), spec.get("method", "lora"), status, run_dir,
         json.dumps(spec)])
    rows = []
    seq = 0
    events = [("log", s, {"loss": v, "epoch": s / 20}) for s, v in train]
    events += [("eval", s, {"eval_loss": v, "epoch": s / 20}) for s, v in evals]
    events.sort(key=lambda e: (e[1], e[0] != "log"))
    for kind, step, payload in events:
        body = {"type": kind, "step": step, **payload}
        rows.append([job_id, seq, kind, step, payload.get("epoch"), payload.get("loss"), payload.get("eval_loss"),
                     None, None, json.dumps(body), None])
        seq += 1
    store.executemany("INSERT INTO job_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return job_id


@pytest.fixture
def overfit_job() -> str:
    """Train loss falls all along; validation loss bottoms out at step 40 (1.10) and climbs to 1.45 by step 100."""
    train = [(s, round(2.0 - 0.014 * s, 3)) for s in range(10, 101, 10)]  # 1.86 ... 0.60
    evals = [(20, 1.30), (40, 1.10), (60, 1.18), (80, 1.31), (100, 1.45)]
    return insert_job("job-overfit", train, evals)


@pytest.fixture
def job_inserter():
    """`insert_job` for tests that craft their own run (a fixture: `conftest` is no importable name)."""
    return insert_job
