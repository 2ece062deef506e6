"""The page: the step bar, the tabs in pipeline order, the assistant, and serving it all.

Serving: one FastAPI app with the voting page mounted at `/arena` (never behind a login) and the
full app at `/` (behind a login when `FTASSIST_ADMIN_PASSWORD` is set). `--arena-only` serves
only the voting page. Heavy libraries (torch, transformers, datasets, openai...) are imported
by the handlers that need them, never while the page is built.
"""

from __future__ import annotations

import logging
import os
import secrets
from contextlib import contextmanager
from functools import partial

import gradio as gr
from fastapi import Request  # gradio depends on FastAPI: no extra import cost

from ftassist import config
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

from . import arena, auth, data_tab, decide, estimate, faults, leaderboard, session_store, train, wizard
from . import evaluate, playground
from .context import UIContext

log = logging.getLogger(__name__)

TABS = (
    ("Decide", decide),
    ("Data", data_tab),
    ("Estimate", estimate),
    ("Train", train),
    ("Arena", arena),
    ("Leaderboard", leaderboard),
    ("Evaluate", evaluate),
    ("Playground", playground),
)
TITLE = "ftassist: fine-tuning assistant"
SESSION_STORAGE_KEY = "ftassist-session-id"
BAR_REFRESH_S = 5.0


def _browser_secret() -> str:
    """The key that encrypts the session id in the browser, kept in the data dir so ids survive a restart."""
    path = config.data_dir() / ".browser_state_key"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 16:
            return value
    except OSError:
        pass
    value = secrets.token_hex(16)
    try:
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
    except OSError:  # a read-only data dir: ids then last as long as the process
        pass
    return value


# -- event handlers -------------------------------------------------------------------------------
def restore_handler(stored_id):
    """On page open: the browser's id (or a new one) and the session saved under it."""
    return session_store.restore(stored_id)


def session_changed(app: Context, session_id, session, current):
    """Whenever a step writes the session: save it for this browser, then redraw the bar."""
    try:
        session_store.save(session_id, session)
    except OSError as exc:  # a full or read-only disk must not break the page
        log.warning("could not save the session: %s", exc)
    return wizard.bar_html(app, session, current)


def tab_selected(app: Context, step: str, session):
    return step, wizard.bar_html(app, session, step)


def refresh_bar(app: Context, session, current):
    return wizard.bar_html(app, session, current)


def sample_handler(app: Context, session, progress=gr.Progress()):
    """"Try with sample data": check, split and estimate the shipped sample, set up a tiny-random run,
    and open the Data tab to show what the check found."""
    from ftassist.usecases import planning

    progress(0.1, desc="checking the sample dataset")
    try:
        new = planning.try_sample_data(app, Session.of(session)).session
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:  # one clear line on the page, the traceback in the log
        log.exception("sample flow failed")
        raise gr.Error(f"The sample data could not be loaded: {exc}") from None
    return new, wizard.sample_message(new), gr.Tabs(selected="data"), "Data"


# -- building ---------------------------------------------------------------------------------------
def _build_assistant(ctx: UIContext) -> None:
    """The chat panel, when its module is there; the rest of the page never depends on it."""
    try:
        from . import assistant
    except ImportError:
        return
    try:
        with gr.Accordion("Ask the assistant", open=False, elem_id="ft-assistant"):
            assistant.build(ctx)
    except Exception:
        log.exception("the assistant panel could not be built")


def _build_full(demo: gr.Blocks, ctx: UIContext) -> None:
    gr.Markdown("# ftassist\nFrom *should I fine-tune at all?* to *is my fine-tuned model actually better?* "
                "Follow the steps left to right; each one hands its results to the next.")
    gr.Markdown(f"{config.hardware_line()} Uploads up to {config.max_upload().upper()}.", elem_id="ft-hardware")
    session_id = gr.BrowserState("", storage_key=SESSION_STORAGE_KEY, secret=_browser_secret())
    current = gr.State(None)
    bar = gr.HTML(wizard.render_bar(wizard.step_summaries(Session())), elem_id="ft-stepbar")
    with gr.Row():
        sample = gr.Button("Try with sample data", elem_id="ft-sample", size="sm", scale=0)
        sample_note = gr.Markdown(elem_id="ft-sample-note")
    with gr.Tabs(elem_id="ft-tabs") as tabs:
        for title, module in TABS:
            with gr.Tab(title, id=title.lower()) as tab:
                module.build(ctx)
            tab.select(partial(tab_selected, ctx.app, wizard.TAB_STEP[title.lower()]), [ctx.session], [current, bar],
                       api_visibility="private", show_progress="hidden")
    _build_assistant(ctx)

    demo.load(restore_handler, [session_id], [session_id, ctx.session], api_visibility="private")
    ctx.session.change(ctx.bind(session_changed), [session_id, ctx.session, current], [bar],
                       api_visibility="private", show_progress="hidden")
    gr.Timer(BAR_REFRESH_S).tick(ctx.bind(refresh_bar), [ctx.session, current], [bar],
                                 api_visibility="private", show_progress="hidden")
    sample.click(ctx.bind(sample_handler), [ctx.session], [ctx.session, sample_note, tabs, current],
                 api_name="try_sample_data")


def build_app(arena_only: bool = False, app: Context | None = None) -> gr.Blocks:
    """The page. `app` is the application context its handlers use (default: this data dir's)."""
    with gr.Blocks(title="ftassist arena" if arena_only else TITLE) as demo:
        session = gr.State(Session())
        ctx = UIContext(session=session, demo=demo, arena_only=arena_only, app=app or Context.open(reads_any_file=False))
        if arena_only:
            gr.Markdown("# Which answer is better?\nVote blind: the models' names are shown after your vote.")
            arena.build(ctx)
        else:
            _build_full(demo, ctx)
    for block_fn in demo.fns.values():  # a full or read-only disk: its cause to the person and the log
        if block_fn.fn is not None:
            block_fn.fn = faults.with_disk_faults_explained(block_fn.fn)
    return demo


# -- serving ------------------------------------------------------------------------------------------
ADMIN_CACHE_CLEANUP = (3600, 86400)  # every hour, delete Gradio's copies of uploads/downloads older than a day


def _mount_options() -> dict:
    """What both mounts share. `run_history=False`: Gradio would otherwise keep every call's inputs
    (API keys included) in the browser's localStorage, beyond logout; off, it also deletes what an
    earlier version kept there."""
    return {"show_error": False, "max_file_size": config.max_upload(), "footer_links": ["api", "settings"],
            "run_history": False}


@contextmanager
def _own_temp_dir(folder: str):
    """Build Blocks whose components cache their files in `folder` (Gradio reads GRADIO_TEMP_DIR when a
    component is made), so the voting page shares no temp directory with the admin's app."""
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = folder
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before


def _mounted_app(server, path: str):
    """The Gradio `App` that `mount_gradio_app` put at `path` on `server`."""
    from starlette.routing import Mount

    for route in server.routes:
        if isinstance(route, Mount) and route.path == path.rstrip("/"):
            return route.app
    raise LookupError(f"nothing is mounted at {path}")


def _voting_blocks(app_context: Context) -> tuple[gr.Blocks, str]:
    """The voting page, built with its own private temp folder (mode 0700, removed at exit)."""
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="ftassist-voting-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with _own_temp_dir(folder):
        voting = build_app(arena_only=True, app=app_context).queue(default_concurrency_limit=8)
    return voting, folder


def create_server(arena_only: bool = False, host: str = "127.0.0.1", port: int = 7860,
                  context: Context | None = None):
    """The FastAPI app to serve: `/arena` (open, sealed) and `/` (the full app, behind the admin login if set).

    In front of both: `guard.Guard` (the voting mount answers only the voting page's routes, the page
    before login lists no endpoints, logins are throttled) and a CORS policy that allows no other origin."""
    from fastapi import FastAPI
    from starlette.middleware.cors import CORSMiddleware

    from . import guard

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    # Gradio adds its own CORS headers (any origin, when the host is not localhost) unless the parent
    # app has a CORSMiddleware: this one allows no origin but the page's own (which needs no header).
    app.add_middleware(CORSMiddleware, allow_origins=[], allow_credentials=False)
    try:
        session_store.prune()
    except OSError as exc:
        log.warning("could not prune old sessions: %s", exc)
    where = {"server_name": host, "server_port": port}
    app_context = context or Context.open(reads_any_file=False)
    arena.install_voter_cookie(app, app_context)  # each voter's signed cookie (ui/voter_cookie.py)
    voting, voting_dir = _voting_blocks(app_context)
    if arena_only:
        gr.mount_gradio_app(app, voting, path="/", **where, **_mount_options())
        _mounted_app(app, "/").uploaded_file_dir = voting_dir
        app.add_middleware(guard.Guard, voting_prefix="")
        return app
    # Order matters: the `/` mount matches every path, so `/arena` goes first.
    from fastapi.responses import RedirectResponse

    @app.get("/arena", include_in_schema=False)
    def _arena_slash(request: Request):  # the link people type, without the slash the mount needs
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(url=f"arena/{query}", status_code=307)

    gr.mount_gradio_app(app, voting, path="/arena", **where, **_mount_options())
    _mounted_app(app, "/arena").uploaded_file_dir = voting_dir
    full = build_app(app=app_context).queue(default_concurrency_limit=8)
    full.delete_cache = ADMIN_CACHE_CLEANUP
    gr.mount_gradio_app(app, full, path="/", auth=auth.gradio_auth(), auth_message=auth.AUTH_MESSAGE,
                        **where, **_mount_options())
    admin = _mounted_app(app, "/") if auth.auth_enabled() else None
    app.add_middleware(guard.Guard, voting_prefix="/arena", admin_app=admin)
    return app


def resolve_address(host: str | None, port: int | None) -> tuple[str, int]:
    if host is None:
        host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if config.on_space() else "127.0.0.1")
    if port is None:
        port = int(os.environ.get("GRADIO_SERVER_PORT", "7860"))
    return host, port


GRACEFUL_STOP_S = 3  # what a browser's open event streams get to finish when the app is told to stop


def launch(host: str | None = None, port: int | None = None, arena_only: bool = False, share: bool = False) -> None:
    """Serve the app. It owns this data dir's database: a second app on the same data dir is refused
    with one clear line, and the CLI reaches the database through this app's socket."""
    from ftassist import app_socket
    from ftassist.store import StoreLockedError

    arena_only = arena_only or os.environ.get("FTASSIST_ARENA_ONLY", "") not in ("", "0", "false")
    refusal = config.arena_sign_in_refusal(arena_only)  # sign-in works only on the voting page served alone
    if refusal:
        raise SystemExit(f"ftassist: cannot start: {refusal}")
    host, port = resolve_address(host, port)
    context = Context.open(reads_any_file=False)  # the page, the assistant, the socket: uploads and the data dir
    try:
        context.store.schema_versions()  # open it now: a database held elsewhere is a start-up error
        socket_server = app_socket.serve(context)
    except (StoreLockedError, app_socket.AppUnavailable) as exc:
        raise SystemExit(f"ftassist: cannot start: {exc}") from None
    try:
        if not arena_only:  # follow training runs (and move the queue) whether or not a browser is open
            from ftassist.usecases import training

            training.follow_runs(context)
        if share:  # a share link needs Gradio's own launcher: one Blocks, the login (if any) on all of it
            demo = build_app(arena_only=arena_only, app=context).queue(default_concurrency_limit=8)
            demo.launch(server_name=host, server_port=port, share=True, show_error=False,
                        max_file_size=config.max_upload(), run_history=False,
                        auth=None if arena_only else auth.gradio_auth(), auth_message=auth.AUTH_MESSAGE)
            return
        import uvicorn

        server = create_server(arena_only=arena_only, host=host, port=port, context=context)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        print(f"* ftassist running on http://{shown}:{port}/"
              + ("" if arena_only else f" (voting page: http://{shown}:{port}/arena/)")
              + (" · admin login required" if auth.auth_enabled() and not arena_only else ""), flush=True)
        # proxy_headers=False: X-Forwarded-For is believed only as config.trusted_proxy_hops() says;
        # on SIGTERM (a Space restarting, a service manager) open streams get a few seconds, not forever
        uvicorn.run(server, host=host, port=port, log_level="warning", proxy_headers=False,
                    timeout_graceful_shutdown=GRACEFUL_STOP_S)
    finally:
        app_socket.stop(socket_server)
