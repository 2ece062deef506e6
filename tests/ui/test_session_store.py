"""Server-side sessions: a reload finds the session, two browsers never see each other's data."""

from __future__ import annotations

import json

from ftassist import config
from ftassist.ui import layout, session_store
from ftassist.usecases.context import Context
from ftassist.usecases.session import Dataset, Decision, Session, Split

A = Session().checked(Dataset("/x/a.jsonl", {"n_examples": 3}))
B = Session().checked(Dataset("/x/b.jsonl", {"n_examples": 4}))


def test_round_trip_and_isolation():
    a, b = session_store.new_session_id(), session_store.new_session_id()
    assert a != b and session_store.valid_id(a) and len(a) == 32
    session_store.save(a, A)
    session_store.save(b, B)
    assert session_store.load(a) == A
    assert session_store.load(b) == B
    files = sorted(p.name for p in config.sessions_dir().iterdir())
    assert files == sorted([f"{a}.json", f"{b}.json"])  # one file per browser, no temp files left
    session_store.save(a, Session().chose({"id": "e"}))  # a later save replaces, never merges
    assert session_store.load(a) == Session(option={"id": "e"})
    session_store.delete(a)
    assert session_store.load(a) == Session() and session_store.load(b) == B


def test_restore():
    sid = session_store.new_session_id()
    split = Session().split_into(Split("t", "v", "f", 5, 1))
    session_store.save(sid, split)
    assert session_store.restore(sid) == (sid, split)
    for bad in (None, "", "../../etc/passwd", "A" * 32, 42, {"id": sid}):
        new_id, session = session_store.restore(bad)
        assert session == Session() and session_store.valid_id(new_id) and new_id != sid


def test_a_session_saved_by_the_first_version_is_restored():
    sid = session_store.new_session_id()
    (config.sessions_dir() / f"{sid}.json").write_text(json.dumps(
        {"dataset_path": "/x/a.jsonl", "report": {"n_examples": 3}, "job_id": "j1"}))
    _, session = session_store.restore(sid)
    assert session.dataset.path == "/x/a.jsonl" and session.run_id == "j1"


def test_no_secrets_on_disk_at_any_depth():
    sid = session_store.new_session_id()
    session = Session().selected_run("j1").proposed(
        {"use_case": "start_run", "arguments": {"api_key": "sk-live-123456789", "spec": {"password": "p"}}})
    session_store.save(sid, session)
    text = (config.sessions_dir() / f"{sid}.json").read_text()
    assert "sk-live" not in text and '"p"' not in text
    stored = json.loads(text)
    assert stored["run_id"] == "j1" and stored["pending_action"] == {"use_case": "start_run",
                                                                      "arguments": {"spec": {}}}


def test_bad_files_and_ids_are_harmless():
    sid = session_store.new_session_id()
    (config.sessions_dir() / f"{sid}.json").write_text("{not json")
    assert session_store.load(sid) == Session()
    (config.sessions_dir() / f"{sid}.json").write_text("[1, 2]")
    assert session_store.load(sid) == Session()
    assert session_store.save("../evil", {"a": 1}) is False
    assert not any(config.data_dir().parent.glob("evil*"))


def test_page_handlers_save_and_restore_two_sessions():
    """What the page does: restore on load, save on every change; two browsers stay apart."""
    app = Context.open()
    id_a, sess_a = layout.restore_handler(None)
    id_b, sess_b = layout.restore_handler("")
    assert id_a != id_b and sess_a == sess_b == Session()
    seven = Session().checked(Dataset("/x/a.jsonl", {"n_examples": 7, "errors": [], "warnings": []}))
    bar = layout.session_changed(app, id_a, seven, None)
    assert "7 examples" in bar
    rag = Session().decided(Decision({}, "rag", None))
    layout.session_changed(app, id_b, rag, "Decide")
    layout.session_changed(app, "", Session().decided(Decision({}, "both", None)), None)  # no id yet: not saved
    # A reload: the browser sends its id back.
    assert layout.restore_handler(id_a) == (id_a, seven)
    assert layout.restore_handler(id_b) == (id_b, rag)
    assert len(list(config.sessions_dir().glob("*.json"))) == 2


def test_prune_old_sessions():
    import os
    import time

    old, new = session_store.new_session_id(), session_store.new_session_id()
    session_store.save(old, A)
    session_store.save(new, B)
    stamp = time.time() - 40 * 86400
    os.utime(config.sessions_dir() / f"{old}.json", (stamp, stamp))
    assert session_store.prune(max_age_days=30) == 1
    assert session_store.load(old) == Session() and session_store.load(new) == B
