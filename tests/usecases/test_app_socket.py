"""The app's socket: the CLI reaches use cases in the running app; one app per data dir."""

from __future__ import annotations

import os
import stat

import pytest

from ftassist import app_socket
from ftassist.usecases import registry
from ftassist.usecases.context import Context, NotFound, Settings, UseCaseError


@registry.use_case
def _test_socket_add(ctx: Context, a: int, b: int = 1) -> dict:
    """Add two numbers, refusing negatives (a use case that exists only for this test module)."""
    if a < 0:
        raise UseCaseError("a must not be negative: give 0 or more")
    if a == 404:
        raise NotFound("no such thing")
    if a == 500:
        raise RuntimeError("boom with key sk-abcdefghijklmnopqrstu inside")
    return {"sum": a + b, "data_dir": str(ctx.settings.data_dir)}


@pytest.fixture
def served(tmp_path):
    ctx = Context(settings=Settings(data_dir=tmp_path / "home"))
    server = app_socket.serve(ctx)
    yield ctx
    app_socket.stop(server)


def test_a_use_case_runs_in_the_app_and_its_refusals_keep_their_kind(served):
    client = app_socket.connect(served.settings)
    assert client is not None
    assert client.call("_test_socket_add", {"a": 2, "b": 3}) == {"sum": 5, "data_dir": str(served.settings.data_dir)}
    with pytest.raises(UseCaseError, match="must not be negative"):
        client.call("_test_socket_add", {"a": -1})
    with pytest.raises(NotFound):
        client.call("_test_socket_add", {"a": 404})
    with pytest.raises(UseCaseError, match="takes no argument"):
        client.call("_test_socket_add", {"a": 1, "c": 2})


def test_an_unexpected_failure_is_one_line_without_the_key(served):
    client = app_socket.connect(served.settings)
    with pytest.raises(UseCaseError) as caught:
        client.call("_test_socket_add", {"a": 500})
    assert "RuntimeError" in str(caught.value) and "sk-abc" not in str(caught.value)


def test_the_socket_is_private_and_short(served):
    path = served.settings.socket_path
    assert len(str(path)) < 100  # Unix sockets are limited to 108 bytes whatever the data dir
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_a_second_app_on_the_same_data_dir_is_refused(served):
    with pytest.raises(app_socket.AppUnavailable, match="already serves"):
        app_socket.serve(Context(settings=served.settings))


def test_no_app_means_no_client_and_a_stale_socket_is_replaced(tmp_path):
    settings = Settings(data_dir=tmp_path / "other")
    assert app_socket.connect(settings) is None
    settings.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.socket_path.write_text("left by a crashed app")
    assert app_socket.connect(settings) is None
    server = app_socket.serve(Context(settings=settings))
    try:
        assert app_socket.connect(settings).call("_test_socket_add", {"a": 1}) ["sum"] == 2
    finally:
        app_socket.stop(server)
    assert not settings.socket_path.exists()


def test_the_cli_gateway_goes_through_the_running_app(tmp_path, monkeypatch):
    from ftassist.cli import CLIError
    from ftassist.commands import gateway

    home = tmp_path / "gw"
    monkeypatch.setenv("FTASSIST_HOME", str(home))
    settings = Settings.from_environment()
    assert gateway.call("_test_socket_add", a=1, b=1)["sum"] == 2  # no app: runs here
    assert not gateway.through_app()
    server = app_socket.serve(Context(settings=settings))
    try:
        assert gateway.through_app()
        assert gateway.call("_test_socket_add", a=4)["sum"] == 5
        with pytest.raises(CLIError, match="must not be negative"):
            gateway.call("_test_socket_add", a=-3)
    finally:
        app_socket.stop(server)
