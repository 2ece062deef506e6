"""Server-side sessions: a reload finds the session, two browsers never see each other's data."""

from __future__ import annotations

import json

from ftassist import config
from ftassist.ui import layout, session_store


def test_round_trip_and_isolation():
    a, b = session_store.new_session_id(), session_store.new_session_id()
    assert a != b and session_store.valid_id(a) and len(a) == 32
    session_store.save(a, {"report": {"n_examples": 3}, "dataset_path": "/x/a.jsonl"})
    session_store.save(b, {"dataset_path": "/x/b.jsonl"})
    assert session_store.load(a) == {"report": {"n_examples": 3}, "dataset_path": "/x/a.jsonl"}
    assert session_store.load(b) == {"dataset_path": "/x/b.jsonl"}
    files = sorted(p.name for p in config.sessions_dir().iterdir())
    assert files == sorted([f"{a}.json", f"{b}.json"])  # one file per browser, no temp files left
    session_store.save(a, {"estimate": {"id": "e"}})  # a later save replaces, never merges
    assert session_store.load(a) == {"estimate": {"id": "e"}}
    session_store.delete(a)
    assert session_store.load(a) == {} and session_store.load(b) != {}


def test_restore():
    sid = session_store.new_session_id()
    session_store.save(sid, {"clean": {"n_train": 5}})
    assert session_store.restore(sid) == (sid, {"clean": {"n_train": 5}})
    for bad in (None, "", "../../etc/passwd", "A" * 32, 42, {"id": sid}):
        new_id, session = session_store.restore(bad)
        assert session == {} and session_store.valid_id(new_id) and new_id != sid


def test_no_secrets_or_live_values_on_disk():
    sid = session_store.new_session_id()
    session_store.save(sid, {"api_key": "sk-live-123", "openai_api_key": "sk-x", "password": "p",
                             "job": {"status": "running"}, "arena": {"votes": 3}, "job_id": "j1",
                             "report": {"tokens": {"total": 9}}})
    text = (config.sessions_dir() / f"{sid}.json").read_text()
    assert "sk-" not in text and '"p"' not in text
    assert json.loads(text) == {"job_id": "j1", "report": {"tokens": {"total": 9}}}


def test_bad_files_and_ids_are_harmless():
    sid = session_store.new_session_id()
    (config.sessions_dir() / f"{sid}.json").write_text("{not json")
    assert session_store.load(sid) == {}
    (config.sessions_dir() / f"{sid}.json").write_text("[1, 2]")
    assert session_store.load(sid) == {}
    assert session_store.save("../evil", {"a": 1}) is False
    assert not any(config.data_dir().parent.glob("evil*"))


def test_page_handlers_save_and_restore_two_sessions():
    """What the page does: restore on load, save on every change; two browsers stay apart."""
    id_a, sess_a = layout.restore_handler(None)
    id_b, sess_b = layout.restore_handler("")
    assert id_a != id_b and sess_a == sess_b == {}
    bar = layout.session_changed(id_a, {"report": {"n_examples": 7, "errors": [], "warnings": []}}, None)
    assert "7 examples" in bar
    layout.session_changed(id_b, {"guide": {"approach": "rag"}}, "Decide")
    layout.session_changed("", {"guide": {"approach": "lost"}}, None)  # before the id arrives: nothing saved
    # A reload: the browser sends its id back.
    assert layout.restore_handler(id_a) == (id_a, {"report": {"n_examples": 7, "errors": [], "warnings": []}})
    assert layout.restore_handler(id_b) == (id_b, {"guide": {"approach": "rag"}})
    assert len(list(config.sessions_dir().glob("*.json"))) == 2


def test_prune_old_sessions():
    import os
    import time

    old, new = session_store.new_session_id(), session_store.new_session_id()
    session_store.save(old, {"a": 1})
    session_store.save(new, {"b": 2})
    stamp = time.time() - 40 * 86400
    os.utime(config.sessions_dir() / f"{old}.json", (stamp, stamp))
    assert session_store.prune(max_age_days=30) == 1
    assert session_store.load(old) == {} and session_store.load(new) == {"b": 2}
