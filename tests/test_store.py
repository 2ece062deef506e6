import multiprocessing as mp

import pytest

from ftassist import config
from ftassist.migrations import all_migrations
from ftassist.store import Store, StoreLockedError, get_store


def test_data_dir_follows_ftassist_home(ftassist_home):
    assert config.data_dir() == ftassist_home.resolve()
    assert config.db_path().parent == ftassist_home.resolve()


def test_migrations_apply_once_and_record_versions(ftassist_home):
    store = get_store()
    expected = {name: len(scripts) for name, scripts in all_migrations().items()}
    assert store.schema_versions() == expected
    store.execute("INSERT INTO datasets (id, name, path) VALUES ('k', 'n', 'p')")
    store.close()
    again = Store(config.db_path())  # reopening must not re-run (or fail on) applied scripts
    assert again.schema_versions() == expected
    assert again.query("SELECT name FROM datasets WHERE id = 'k'") == [{"name": "n"}]
    again.close()


def test_transaction_rolls_back_on_error(ftassist_home):
    store = get_store()
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("INSERT INTO datasets (id, name, path) VALUES ('a', 'n', 'p')")
            raise RuntimeError("boom")
    assert store.query("SELECT * FROM datasets") == []


def _open_in_child(path, queue):
    try:
        Store(path)
        queue.put("opened")
    except StoreLockedError as exc:
        queue.put(f"locked: {exc}")


def test_second_process_gets_a_clear_error(ftassist_home):
    store = get_store()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_open_in_child, args=(str(store.path), queue))
    child.start()
    child.join(60)
    message = queue.get(timeout=5)
    assert message.startswith("locked:")
    assert "another ftassist process" in message
