"""The page: the step bar over the tabs, the sample button, session restore, and the serve options."""

from __future__ import annotations

import argparse
import importlib.util

from ftassist.commands.serve import add_serve_arguments
from ftassist.ui import layout


def _config(arena_only: bool = False) -> dict:
    return layout.build_app(arena_only=arena_only).get_config_file()


def _by_elem_id(config: dict) -> dict:
    return {c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")}


def test_full_page_has_the_wizard_parts():
    config = _config()
    ids = _by_elem_id(config)
    assert "ft-stepbar" in ids and "ft-sample" in ids and "ft-hardware" in ids
    assert "1. Decide" in ids["ft-stepbar"]["props"]["value"]
    assert "Hardware:" in ids["ft-hardware"]["props"]["value"]
    assert ids["ft-sample"]["props"]["value"] == "Try with sample data"
    tabs = [c["props"]["label"] for c in config["components"] if c.get("type") == "tabitem"]
    assert tabs == ["Decide", "Data", "Estimate", "Train", "Arena", "Leaderboard", "Evaluate", "Playground"]
    browser_state = [c for c in config["components"] if c.get("type") == "browserstate"]
    assert len(browser_state) == 1 and browser_state[0]["props"]["storage_key"] == layout.SESSION_STORAGE_KEY
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"try_sample_data", "check_dataset", "estimate", "start_training"} <= names
    triggers = {t[1] for d in config["dependencies"] for t in d.get("targets", [])}
    assert {"load", "change", "select", "tick"} <= triggers  # restore, save + redraw, tab select, live bar
    if importlib.util.find_spec("ftassist.ui.assistant"):
        assert "ft-assistant" in ids


def test_arena_only_page_has_no_wizard_or_admin():
    config = _config(arena_only=True)
    ids = _by_elem_id(config)
    assert "ft-stepbar" not in ids and "ft-sample" not in ids
    assert not [c for c in config["components"] if c.get("type") in ("tabitem", "browserstate")]
    labels = {c["props"].get("label") for c in config["components"]}
    assert "Display name" not in labels and "Model A" in labels


def test_browser_secret_is_stable(ftassist_home):
    first = layout._browser_secret()
    assert len(first) >= 16 and layout._browser_secret() == first
    assert (ftassist_home / ".browser_state_key").stat().st_mode & 0o077 == 0


def test_tab_select_moves_you_are_here():
    from ftassist.usecases.context import Context
    from ftassist.usecases.session import Session

    step, bar = layout.tab_selected(Context.open(), "Train", Session())
    assert step == "Train" and "4. Train ◀ you are here" in bar
    assert "5. Evaluate ◀ you are here" in layout.refresh_bar(Context.open(), Session(), "Evaluate")


def test_serve_options(monkeypatch):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--host", "0.0.0.0", "--port", "9000", "--arena-only", "--share"])
    assert (args.host, args.port, args.arena_only, args.share) == ("0.0.0.0", 9000, True, True)
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert layout.resolve_address(None, None) == ("127.0.0.1", 7860)
    monkeypatch.setenv("SPACE_ID", "me/ftassist")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert layout.resolve_address(None, None) == ("0.0.0.0", 7861)
    assert layout.resolve_address("127.0.0.2", 1) == ("127.0.0.2", 1)


def test_cli_and_app_py_share_the_launcher(monkeypatch):
    calls = []
    monkeypatch.setattr(layout, "launch", lambda **kw: calls.append(kw))
    import app

    from ftassist import cli

    assert app.main(["--port", "7999", "--arena-only"]) == 0
    assert cli.main(["serve", "--port", "7999", "--arena-only"]) == 0
    assert calls[0] == calls[1] == {"host": None, "port": 7999, "arena_only": True, "share": False}
