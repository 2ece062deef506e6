"""The `Arena` tab: blind voting (the whole page with `--arena-only`), plus, for the owner
only, the model registry and battle pre-generation.

What reaches the browser before a vote is the prompt and the two answers: the battle's
opaque token stays in a server-side `gr.State`, the side mapping stays in DuckDB. Answers
are shown in read-only text boxes, so model text is text: no HTML or script from a model
or a dataset is ever rendered.
"""

from __future__ import annotations

import html
import os
import re
from typing import get_args

import gradio as gr

from ftassist import config
from ftassist.usecases import arena as arena_cases
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

from . import voter_cookie
from .context import UIContext
from .voter_cookie import Identity

VOTE_BUTTONS = (("A", "👈 A is better"), ("B", "👉 B is better"), ("tie", "🤝 Tie"), ("bothbad", "👎 Both are bad"))
_PANE = {"label": None, "interactive": False, "lines": 10, "max_lines": 30, "buttons": ["copy"]}


def _who(app: Context, state: dict, request: gr.Request | None, profile: gr.OAuthProfile | None) -> Identity:
    """The voter of this request (see ui/voter_cookie.py); `state` keeps the session's fallback id.

    A signed-in voter is known by the profile's `sub` (Gradio's profile is the OpenID userinfo), which stays
    when the account is renamed; the user name is the fallback only where there is no `sub`. The browser's
    cookie voter is linked to the account once per session, for the one-vote-per-battle rule."""
    username = getattr(profile, "username", None) if profile is not None else None
    sub = profile.get("sub") if isinstance(profile, dict) else None
    try:
        who = voter_cookie.identify(app.settings.data_dir, state, request, username, str(sub) if sub else None)
    except ValueError as exc:  # a wrong FTASSIST_TRUSTED_PROXY_HOPS: the owner's setting, said as such
        raise gr.Error(f"The arena's settings are wrong: {exc}") from None
    if who.alias and state.get("linked") != [who.voter, who.alias]:
        arena_cases.link_voter(app, who.voter, who.alias)
        state["linked"] = [who.voter, who.alias]
    return who


def install_voter_cookie(server, app: Context) -> None:
    """Give voters their signed cookie on the served FastAPI app (called by ui/layout.create_server)."""
    voter_cookie.install(server, app.settings.data_dir)


def _md_text(text: str) -> str:
    """Text safe to put in Markdown: HTML escaped and Markdown punctuation backslashed."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|>~])", r"\\\1", html.escape(str(text)))


def _buttons(enabled: bool) -> list:
    return [gr.update(interactive=enabled) for _ in VOTE_BUTTONS] + [gr.update(interactive=enabled)]


def _show(state: dict, view, empty_message: str) -> list:
    state = dict(state or {})
    if view is None:
        state["token"] = None
        return [state, "", gr.update(value="", label="Model A"), gr.update(value="", label="Model B"),
                empty_message, *_buttons(False)]
    state["token"] = view.token
    return [state, view.prompt, gr.update(value=view.answer_a, label="Model A"),
            gr.update(value=view.answer_b, label="Model B"), "Read both answers, then vote.", *_buttons(True)]


_ALL_VOTED = "You have voted on every battle there is. Thank you! Come back later for more."
_NO_CHANGE = 5 + len(VOTE_BUTTONS)


def new_round(app: Context, state: dict, request: gr.Request, profile: gr.OAuthProfile | None = None) -> list:
    state = dict(state or {})
    who = _who(app, state, request, profile)
    try:
        view = arena_cases.next_battle(app, who.voter, address=who.address, signed_in=who.signed_in)
    except arena_cases.SignInRequired as exc:
        return _show(state, None, str(exc))
    except arena_cases.VotingTooFast as exc:
        gr.Warning(str(exc))
        return [gr.skip()] * _NO_CHANGE
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return _show(state, view, _ALL_VOTED)


def _make_vote(app: Context, choice: str):
    def do_vote(state: dict, request: gr.Request, profile: gr.OAuthProfile | None = None) -> list:
        state = dict(state or {})
        who = _who(app, state, request, profile)
        if not state.get("token"):
            gr.Warning("Start a new round first.")
            return [gr.skip()] * _NO_CHANGE
        try:
            reveal = arena_cases.vote(app, state["token"], who.voter, choice, address=who.address,
                                      signed_in=who.signed_in)
        except (arena_cases.VotingTooFast, arena_cases.SignInRequired) as exc:
            gr.Warning(str(exc))
            return [gr.skip()] * _NO_CHANGE
        except UseCaseError as exc:
            raise gr.Error(str(exc)) from None
        state["token"] = None
        text = (f"{_md_text(reveal.message)}\n\n**Model A** was **{_md_text(reveal.model_a)}**, "
                f"**Model B** was **{_md_text(reveal.model_b)}**. Press *New round* for another battle.")
        return [state, gr.update(label=f"Model A: {reveal.model_a}"), gr.update(label=f"Model B: {reveal.model_b}"),
                text, *_buttons(False)]

    do_vote.__name__ = f"vote_{choice}"
    return do_vote


def skip_battle(app: Context, state: dict, request: gr.Request, profile: gr.OAuthProfile | None = None) -> list:
    state = dict(state or {})
    who = _who(app, state, request, profile)
    try:
        view = arena_cases.skip_battle(app, who.voter, state.get("token"), address=who.address,
                                       signed_in=who.signed_in)
    except (arena_cases.VotingTooFast, arena_cases.SignInRequired) as exc:
        gr.Warning(str(exc))
        return [gr.skip()] * _NO_CHANGE
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return _show(state, view, _ALL_VOTED)


def ask_own(app: Context, prompt: str, state: dict, request: gr.Request,
            profile: gr.OAuthProfile | None = None) -> list:
    state = dict(state or {})
    who = _who(app, state, request, profile)
    try:
        view = arena_cases.ask_own_prompt(app, prompt, who.voter, address=who.address, signed_in=who.signed_in)
    except (arena_cases.VotingTooFast, arena_cases.SignInRequired) as exc:
        gr.Warning(str(exc))
        return [gr.skip()] * _NO_CHANGE
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return _show(state, view, "")


# What a Space with `hf_oauth: true` sets; Gradio's sign-in routes refuse to start without any of them.
OAUTH_VARIABLES = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")


def _oauth_installed() -> bool:
    """Whether Gradio's sign-in can run here (its extra `gradio[oauth]`: authlib, itsdangerous); without it
    the page would fail to start."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("authlib", "itsdangerous"))


def _oauth_set_up() -> bool:
    """Whether this is a Space with OAuth on, so that Gradio signs voters in with Hugging Face for real.

    Gradio reads the same variables (`gradio.oauth`): on a Space (SYSTEM=spaces and SPACE_ID) it sends voters
    to OPENID_PROVIDER_URL; anywhere else it would sign everyone in as the machine's own Hugging Face account
    (its local-development mock), which is no sign-in for a public arena; a missing variable stops it at start."""
    from gradio.utils import get_space

    return config.on_space() and get_space() is not None and all(os.environ.get(v) for v in OAUTH_VARIABLES)


def _sign_in_row() -> None:
    """The Hugging Face sign-in, when the settings ask for it and the Space has OAuth (`hf_oauth: true`).

    The button makes Gradio add its sign-in routes (`/login/huggingface`, `/login/callback`, `/logout`) and
    the session cookie they keep the account in; a handler then gets the account as its `gr.OAuthProfile`."""
    try:
        mode = config.arena_choice("sign_in")
    except ValueError as exc:
        gr.Markdown(f"⚠️ {_md_text(str(exc))}")
        return
    if mode == "off":
        return
    if _oauth_set_up() and not _oauth_installed():
        gr.Markdown("This arena asks voters to sign in with Hugging Face, but the sign-in needs `gradio[oauth]` "
                    "installed (add it to requirements.txt)" + (", so voting is closed." if mode == "required" else "."))
    elif _oauth_set_up():
        gr.LoginButton()
        if mode == "required":
            gr.Markdown("Sign in with Hugging Face to vote: one account, one vote per battle.")
    elif mode == "required":
        gr.Markdown("This arena asks voters to sign in with Hugging Face, but sign-in is not set up here "
                    "(a Space needs `hf_oauth: true` in its README), so voting is closed.")


def build(ctx: UIContext) -> None:
    state = gr.State({})
    gr.Markdown(
        "Two anonymous models answer the same prompt. Read both, then pick the better one. "
        "The names are shown after your vote."
    )
    _sign_in_row()
    prompt = gr.Textbox(label="Prompt", interactive=False, lines=2, max_lines=12, elem_id="arena-prompt")
    with gr.Row():
        answer_a = gr.Textbox(**{**_PANE, "label": "Model A"}, elem_id="arena-answer-a")
        answer_b = gr.Textbox(**{**_PANE, "label": "Model B"}, elem_id="arena-answer-b")
    with gr.Row():
        vote_buttons = [gr.Button(text, interactive=False, variant="secondary") for _, text in VOTE_BUTTONS]
        skip_button = gr.Button("Skip", interactive=False)
    status = gr.Markdown("Press *New round* to see a battle.", elem_id="arena-status")
    new_button = gr.Button("🎲 New round", variant="primary")
    with gr.Accordion("Ask your own question", open=False):
        own_prompt = gr.Textbox(label="Your prompt", lines=3, max_lines=12,
                                placeholder="Both models answer it now; it may take a moment.")
        ask_button = gr.Button("Ask both models")

    show_outputs = [state, prompt, answer_a, answer_b, status, *vote_buttons, skip_button]
    new_button.click(ctx.bind(new_round), [state], show_outputs, api_name="arena_new_round")
    skip_button.click(ctx.bind(skip_battle), [state], show_outputs, api_name="arena_skip")
    ask_button.click(ctx.bind(ask_own), [own_prompt, state], show_outputs, api_name="arena_ask")
    if ctx.demo is not None:  # show a battle as soon as the page opens
        ctx.demo.load(ctx.bind(new_round), [state], show_outputs, api_name=False)
    vote_outputs = [state, answer_a, answer_b, status, *vote_buttons, skip_button]
    for (choice, _), button in zip(VOTE_BUTTONS, vote_buttons):
        button.click(_make_vote(ctx.app, choice), [state], vote_outputs, api_name=f"arena_vote_{choice.lower()}")

    if not ctx.arena_only:
        _build_admin(ctx)


# -- owner's tools (never in arena-only mode) ----------------------------------------------------------
MODEL_HEADERS = ["id", "kind", "display name"]


def _refresh_admin(app: Context):
    listed = arena_cases.list_models(app)
    counts = arena_cases.arena_counts(app)
    summary = (f"{counts.models} models, {counts.battles} battles ({counts.flagged_battles} flagged), "
               f"{counts.votes} votes from {counts.voters} voters ({counts.flagged_votes} votes kept but not counted: "
               f"they broke a voting rule), {counts.flagged_voters} voters flagged for review, "
               f"{counts.pending_prompts} voters' questions awaiting review.")
    choices = [(m.display_name, m.id) for m in listed]
    return ([[m.id, m.kind, m.display_name] for m in listed], gr.update(choices=choices),
            gr.update(choices=choices), summary)


def _add_model(app: Context, kind, name, model, base_url, adapter_dir, api_key_env, session):
    session = Session.of(session)
    config = {"model": model or None, "base_url": base_url or None, "api_key_env": api_key_env or None}
    if kind == "hf_adapter":
        config = {"base_model": model or None, "adapter_dir": adapter_dir or None}
    try:
        registered = arena_cases.register_model(app, kind, name, config)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    gr.Info(f"Registered {registered.id}: it answered.")
    return (session.registered_model(registered.id), *_refresh_admin(app))


def _add_trained_model(app: Context, session):
    """Hand-off from the Train step: register the model of the run the person selected there."""
    session = Session.of(session)
    try:
        registered = arena_cases.register_run_model(app, session.run_id or "")
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    gr.Info(f"Registered {registered.id}.")
    return (session.registered_model(registered.id), *_refresh_admin(app))


def _rename_model(app: Context, model_id, new_name):
    if not model_id:
        raise gr.Error("Pick the model to rename or remove.")
    try:
        renamed = arena_cases.rename_model(app, model_id, new_name or "")
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    gr.Info(f"{renamed.id} is now named {renamed.display_name}.")
    return _refresh_admin(app)


def _remove_model(app: Context, model_id, session):
    session = Session.of(session)
    if not model_id:
        raise gr.Error("Pick the model to rename or remove.")
    try:
        removed = arena_cases.remove_model(app, model_id)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    gr.Info(f"{removed.display_name} removed; its {removed.votes_kept} vote(s) are kept, marked (removed).")
    return (session.forgot_model(removed.id), *_refresh_admin(app))


def _upload_path(upload) -> str | None:
    if not upload:
        return None
    return upload if isinstance(upload, str) else getattr(upload, "name", str(upload))


def _pregenerate(app: Context, session, model_ids, upload, n, temperature, max_new_tokens, progress=gr.Progress()):
    try:
        result = arena_cases.generate_battles(
            app, list(model_ids or []), _upload_path(upload), n=int(n) if n else None,
            temperature=float(temperature), max_new_tokens=int(max_new_tokens), session=Session.of(session),
            progress=lambda done, total, msg: progress((done, total), desc=msg),
        )
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    table, chosen, managed, summary = _refresh_admin(app)
    message = f"{result.battles} battles stored ({result.flagged} flagged); {len(result.errors)} answers failed."
    if result.errors:
        first = result.errors[0]
        message += f" First failure: {first['model']}: {first['error']}"
    return table, chosen, managed, f"{message}\n\n{summary}"


def _flag_voters(app: Context):
    flagged = arena_cases.flag_voters(app)
    table, chosen, managed, summary = _refresh_admin(app)
    return table, chosen, managed, f"{len(flagged.voters)} voter(s) flagged for review.\n\n{summary}"


PROMPT_HEADERS = ["battle id", "question", "answer 1", "answer 2", "asked at", "votes"]


def _pending_prompts(app: Context):
    """The voters' own questions awaiting review, and the ids to pick from."""
    pending = arena_cases.voter_prompts(app, "pending").prompts
    rows = [[p["battle_id"], p["prompt"], p["answer_a"], p["answer_b"], p["asked_at"], p["votes"]] for p in pending]
    return rows, gr.update(choices=[(p["prompt"][:80], p["battle_id"]) for p in pending], value=None)


def _review(app: Context, battle_id, approve: bool):
    if not battle_id:
        raise gr.Error("Pick the question to approve or reject.")
    try:
        reviewed = arena_cases.review_voter_prompt(app, battle_id, approve)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    gr.Info(f"{'Approved' if approve else 'Rejected'}: {reviewed.prompt[:60]} ({reviewed.votes_counted} vote(s) count).")
    return _pending_prompts(app)


def _approve(app: Context, battle_id):
    return _review(app, battle_id, True)


def _reject(app: Context, battle_id):
    return _review(app, battle_id, False)


def _build_admin(ctx: UIContext) -> None:
    with gr.Accordion("Manage the arena (models, battles): the owner's view", open=False):
        summary = gr.Markdown()
        models_table = gr.Dataframe(headers=MODEL_HEADERS, label="Models", interactive=False)
        with gr.Row():
            kind = gr.Dropdown(list(get_args(arena_cases.ModelKind)), value="openai_compatible", label="Kind")
            name = gr.Textbox(label="Display name")
            model = gr.Textbox(label="Model (Hub id, folder, API model name; base model for an adapter)")
        with gr.Row():
            base_url = gr.Textbox(label="Base URL (OpenAI-compatible server)", placeholder="http://localhost:8000/v1")
            adapter_dir = gr.Textbox(label="Adapter folder (hf_adapter)")
            api_key_env = gr.Textbox(label="Name of the env variable with the API key",
                                     placeholder="OPENAI_API_KEY (the key itself is never stored)")
        with gr.Row():
            add_button = gr.Button("Add model")
            add_trained = gr.Button("Add the model I trained (the run selected in the Train step)")
        with gr.Row():
            managed = gr.Dropdown(choices=[], label="Model to rename or remove")
            new_name = gr.Textbox(label="New display name")
            rename_button = gr.Button("Rename")
            remove_button = gr.Button("Remove (its votes are kept)", variant="stop")
        gr.Markdown("### Pre-generate battles")
        with gr.Row():
            chosen = gr.Dropdown(choices=[], multiselect=True, label="Models to compare (two or more)")
            upload = gr.File(label="Prompt file (.txt / .jsonl); default: the validation split",
                             file_types=[".txt", ".jsonl", ".json"])
        with gr.Row():
            n = gr.Number(value=50, precision=0, label="Prompts (random sample)")
            temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
            max_new_tokens = gr.Number(value=256, precision=0, label="Max new tokens")
        with gr.Row():
            generate_button = gr.Button("Generate battles", variant="primary")
            refresh_button = gr.Button("Refresh")
            flag_button = gr.Button("Flag suspicious voters")
        gr.Markdown("### Voters' own questions awaiting review\nA voter's question is shown to other voters, and "
                    "its votes count, only once you approve it (never, with FTASSIST_ARENA_VOTER_PROMPTS=never).")
        pending_table = gr.Dataframe(headers=PROMPT_HEADERS, label="Awaiting review", interactive=False, wrap=True)
        with gr.Row():
            pending_pick = gr.Dropdown(choices=[], label="Question")
            approve_button = gr.Button("Approve")
            reject_button = gr.Button("Reject", variant="stop")
            pending_refresh = gr.Button("Refresh the list")
    outputs = [models_table, chosen, managed, summary]
    refresh_button.click(ctx.bind(_refresh_admin), None, outputs, api_name=False)
    add_button.click(ctx.bind(_add_model), [kind, name, model, base_url, adapter_dir, api_key_env, ctx.session],
                     [ctx.session, *outputs], api_name=False)
    add_trained.click(ctx.bind(_add_trained_model), [ctx.session], [ctx.session, *outputs], api_name=False)
    rename_button.click(ctx.bind(_rename_model), [managed, new_name], outputs, api_name=False)
    remove_button.click(ctx.bind(_remove_model), [managed, ctx.session], [ctx.session, *outputs], api_name=False)
    generate_button.click(ctx.bind(_pregenerate), [ctx.session, chosen, upload, n, temperature, max_new_tokens], outputs,
                          api_name=False)
    flag_button.click(ctx.bind(_flag_voters), None, outputs, api_name=False)
    pending_outputs = [pending_table, pending_pick]
    pending_refresh.click(ctx.bind(_pending_prompts), None, pending_outputs, api_name=False)
    approve_button.click(ctx.bind(_approve), [pending_pick], pending_outputs, api_name=False)
    reject_button.click(ctx.bind(_reject), [pending_pick], pending_outputs, api_name=False)
