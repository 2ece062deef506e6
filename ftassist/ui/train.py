"""The `Train` tab: start a run, watch it (loss chart, progress, log tail), stop it, see the history.

A thin adapter over the training use cases (`ftassist.usecases.training`): the form starts from
`training_defaults` (the Data step's files, the chosen Estimate option's backend, model, method
and epochs), Start calls `start_run`, Resume `resume_run` (a stopped run goes on from its last checkpoint),
the monitor shows `run_view`. Everything shown comes from
DuckDB, never from this browser session, so a reload or a second browser finds the run where it
is. The API key field is sent with the Start request only and handed to the worker's environment:
it is never stored.
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from ftassist.formatting import format_duration
from ftassist.usecases import training
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

from .context import UIContext

BASE_MODELS = ["tiny-random", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
               "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"]
OPENAI_MODELS = ["gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14", "gpt-4.1-2025-04-14",
                 "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"]
HISTORY_COLUMNS = ["id", "status", "backend", "base model", "method", "steps", "loss first → last",
                   "best valid loss", "created", "output"]
NO_STEPS = "No steps logged yet: the chart starts at the first logged step."
PREFILLED = ("train_file", "valid_file", "backend", "base_model", "method", "num_epochs", "openai_model", "flavor",
             "objective", "dpo_beta", "start_from")




# -- prefill and gate -----------------------------------------------------------------------------
def gate_message(session: Session | dict | None, train_file: str | None = None) -> str:
    """A gentle warning when there is no validated data yet (training still allowed with a path)."""
    session = Session.of(session)
    if session.split is not None:
        return (f"Data from the Data step: **{session.split.counts()}** "
                "examples, checked and split.")
    if session.dataset is not None and session.dataset.mapping:
        return ("⚠️ The dataset was checked through a field mapping: press **Fix & split** in the Data tab to write "
                "it in a format the trainers read, with a validation set.")
    if session.dataset is not None:
        return ("⚠️ The dataset was checked but not split: press **Fix & split** in the Data tab to get a "
                "validation set (without one you cannot see overfitting).")
    if train_file:
        return "⚠️ This file was not checked in the Data tab: errors will only show up when the worker reads it."
    return ("⚠️ No validated data yet: check and split your dataset in the **Data** tab first, "
            "or type the path of a chat JSONL file below.")


def prefill_handler(app: Context, session, last_key):
    """On a session change: refill the whole form only when the data or the chosen option changed (keeps edits)."""
    session = Session.of(session)
    defaults = training.training_defaults(app, session)
    gate = gate_message(session, defaults.train_file)
    if defaults.objective == "dpo":
        gate += (" This run trains **DPO** on preference pairs"
                 + (f", going on from run `{defaults.start_from}` (SFT, then DPO)." if defaults.start_from else "."))
    if defaults.objective_warning:
        gate += f"\n\n⚠️ {defaults.objective_warning}"
    if defaults.key == last_key:
        return (gate, last_key) + (gr.update(),) * len(PREFILLED)
    updates = {name: gr.update(value=getattr(defaults, name)) for name in PREFILLED}
    updates["openai_model"] = gr.update(value=defaults.openai_model, info=defaults.openai_model_warning or None)
    updates["start_from"] = gr.update(value=defaults.start_from or None, choices=start_choices(app))
    return (gate, defaults.key) + tuple(updates[name] for name in PREFILLED)


# -- start / cancel ---------------------------------------------------------------------------------
def flavor_choices() -> list[tuple[str, str]]:
    """The Hugging Face Jobs GPU flavors with memory and hourly price, from the provider file."""
    from ftassist.plan.providers import jobs_flavors

    return [("auto: the cheapest that fits", "")] + [(f.describe(), f.name) for f in jobs_flavors()]


def _opt_number(value, cast=float):
    """None for blank or 0 (a blank gr.Number arrives as 0 in some browsers): "use the preset"."""
    if value is None or value == "" or float(value) == 0:
        return None
    return cast(value)


def _text(value) -> str | None:
    return (value or "").strip() or None


def build_spec(backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file, valid_file,
               openai_model, suffix, provider, base_url, azure_endpoint, api_version, flavor=None, objective=None,
               dpo_beta=None, start_from=None) -> dict:
    """The run's settings from the form (`start_run` checks them and says what to change)."""
    spec: dict = dict(backend=backend or "local", method=method or "lora", train_file=_text(train_file) or "",
                      valid_file=_text(valid_file), objective=objective or "sft")
    if spec["objective"] == "dpo" and _opt_number(dpo_beta) is not None:
        spec["dpo_beta"] = float(dpo_beta)
    if _text(start_from):  # a finished run's id (or a model folder): SFT, then DPO
        spec["start_from"] = _text(start_from)
    if spec["backend"] == "openai":
        openai = dict(model=_text(openai_model) or OPENAI_MODELS[0], provider=provider or "openai",
                      suffix=_text(suffix), base_url=_text(base_url), azure_endpoint=_text(azure_endpoint),
                      api_version=_text(api_version))
        if _opt_number(epochs) is not None:  # blank or 0: "auto" (OpenAI picks from the data size)
            openai["n_epochs"] = int(epochs)
        spec.update(openai=openai, base_model=openai["model"],
                    method="lora" if spec["method"] == "qlora" else spec["method"])
        return spec
    if spec["backend"] == "together":  # a Together model id in the base model field; the suffix from the settings
        spec["together"] = {"suffix": _text(suffix)}
    if spec["backend"] == "hf-jobs":  # the local recipe on a rented GPU: blank flavor = the cheapest that fits
        spec["hf_jobs"] = {"flavor": _text(flavor)}
    spec["base_model"] = _text(base_model) or "tiny-random"
    if epochs not in (None, ""):
        spec["num_epochs"] = float(epochs)
    for name, value, cast in (("learning_rate", lr, float), ("lora_r", lora_r, int),
                              ("lora_alpha", lora_alpha, int), ("max_steps", max_steps, int)):
        number = _opt_number(value, cast)
        if number is not None:
            spec[name] = number
    return spec


def start_handler(app: Context, backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file, valid_file,
                  openai_model, suffix, provider, base_url, azure_endpoint, api_version, api_key, session, flavor=None,
                  objective=None, dpo_beta=None, start_from=None):
    """Start (or queue) a run; returns (session, message, selected run)."""
    session = Session.of(session)
    if not (train_file or "").strip():
        raise gr.Error("No training file: check and split your dataset in the Data tab, or type a chat JSONL path.")
    spec = build_spec(backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file,
                      valid_file, openai_model, suffix, provider, base_url, azure_endpoint, api_version, flavor,
                      objective, dpo_beta, start_from)
    try:
        started = training.start_run(app, spec, api_key=api_key)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    message = f"Run `{started.run_id}` **{started.status}**" + (
        ": it starts when the running local run ends." if started.status == "queued" else ".")
    runs = training.list_runs(app, limit=100)
    return session.selected_run(started.run_id), message, gr.update(choices=run_choices(runs), value=started.run_id)


def cancel_handler(app: Context, run_id):
    if not run_id:
        raise gr.Error("Choose a run to cancel.")
    try:
        run = training.cancel_run(app, run_id, timeout=10)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return f"Run `{run_id}`: **{run.status}**."


def resume_handler(app: Context, run_id, api_key, session):
    """Go on with the chosen stopped run from its last checkpoint; the new run becomes the session's and the
    list's choice. Returns (session, message, selected run)."""
    session = Session.of(session)
    if not run_id:
        raise gr.Error("Choose a cancelled, failed or interrupted run to resume.")
    try:
        started = training.resume_run(app, run_id, api_key=api_key)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    runs = training.list_runs(app, limit=100)
    return (session.selected_run(started.run_id), started.message,
            gr.update(choices=run_choices(runs), value=started.run_id))


# -- monitoring -----------------------------------------------------------------------------------
def run_choices(runs: list[training.Run]) -> list[tuple[str, str]]:
    return [(f"{r.id} · {r.status} · {r.base_model}", r.id) for r in runs]


def loss_frame(points: list[training.LossPoint]) -> pd.DataFrame:
    """Train and validation loss by step, for gr.LinePlot (empty frame with the columns when nothing yet)."""
    if not points:  # typed, so the chart keeps numeric axes before the first step
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64"),
                             "series": pd.Series(dtype="object")})
    frame = pd.DataFrame([(p.step, p.loss, p.series) for p in points], columns=["step", "loss", "series"])
    # Gradio 6 fixes a LinePlot's colour domain when it first draws: keep both series in it from
    # the start (a NaN point is not drawn), or the validation line stays invisible.
    missing = [name for name in ("train", "validation") if name not in set(frame["series"])]
    if missing:
        frame = pd.concat([frame, pd.DataFrame({"step": frame["step"].min(), "loss": float("nan"), "series": missing})],
                          ignore_index=True)
    return frame


def preference_frame(points: list[training.PreferencePoint]) -> pd.DataFrame | None:
    """A DPO run's reward margin and preference accuracy by step, train and validation (None: nothing to draw)."""
    if not points:
        return None
    frame = pd.DataFrame([(p.step, p.value, p.series) for p in points], columns=["step", "value", "series"])
    # As for the loss chart: every series in the colour domain from the first draw (a NaN point is not drawn).
    every = [f"{words} ({where})" for words in ("reward margin", "preference accuracy")
             for where in ("train", "validation")]
    missing = [name for name in every if name not in set(frame["series"])]
    if missing:
        frame = pd.concat([frame, pd.DataFrame({"step": frame["step"].min(), "value": float("nan"),
                                                "series": missing})], ignore_index=True)
    return frame


def preference_handler(app: Context, run_id, session):
    """The DPO chart of `run_id` (default: the session's run, else the most recent one): shown for DPO runs only."""
    session = Session.of(session)
    chosen = run_id or session.run_id
    if not chosen:
        runs = training.list_runs(app, limit=1)
        chosen = runs[0].id if runs else None
    if not chosen:
        return gr.update(value=None, visible=False)
    try:
        points = training.preference_points(app, chosen)
    except UseCaseError:  # NotFound included: a run id typed that does not exist
        return gr.update(value=None, visible=False)
    frame = preference_frame(points)
    return gr.update(value=frame, visible=frame is not None)


def start_choices(app: Context) -> list[tuple[str, str]]:
    """The finished runs a new run can start from (SFT, then DPO): local and Hugging Face Jobs runs for a run
    here, a Together or OpenAI run for a run there (its id becomes the model the provider made)."""
    runs = training.list_runs(app, limit=100)
    return [(f"{r.id} · {r.objective} · {r.backend} · {r.base_model}", r.id) for r in runs
            if r.status == "succeeded" and (r.backend in ("local", "hf-jobs") or r.output_model)]


def start_from_handler(app: Context):
    """The start-from list, fresh each time it is opened (a run that just finished is in it)."""
    return gr.update(choices=start_choices(app))


def progress_html(prog: training.Progress) -> str:
    frac = prog.fraction
    pct = 0 if frac is None else max(0.0, min(1.0, frac)) * 100
    bits = [f"step {prog.step or 0}/{prog.total_steps or '?'}"]
    if prog.status == "running":
        bits.append(f"ETA {format_duration(prog.eta_s)}")
    if prog.tokens_per_s:
        bits.append(f"{prog.tokens_per_s:,.0f} tokens/s")
    if prog.loss is not None:
        bits.append(f"loss {prog.loss:.4f}")
    return (f"<div class='ft-progress' style='border:1px solid #ccc;border-radius:4px;height:14px;width:100%'>"
            f"<div style='background:#4f8ef7;height:100%;width:{pct:.1f}%'></div></div>"
            f"<div style='font-size:0.9em'>{html.escape(' · '.join(bits))}</div>")


def status_markdown(run: training.Run | None, has_points: bool) -> str:
    if run is None:
        return "No run yet: fill in the form and press **Start training**."
    how = f"{run.method}, DPO" if run.objective == "dpo" else run.method
    lines = [f"**Run `{run.id}`: {run.status}** ({run.backend}, {run.base_model}, {how})"]
    if run.external_id:
        where = {"together": "Together", "hf-jobs": "Hugging Face"}.get(run.backend, "OpenAI")
        lines.append(f"{where} job: `{run.external_id}`")
    if run.output_model and run.status == "succeeded":
        lines.append(f"Model: `{run.output_model}` (use it in the Arena tab)")
    margin, accuracy = run.preference.get("rewards/margins"), run.preference.get("rewards/accuracies")
    if margin is not None and accuracy is not None:
        lines.append(f"Reward margin {margin:.3f}, preference accuracy {accuracy:.0%} (last logged step)")
    if run.error:
        lines.append(f"**Why:** {run.error}")
    if run.hint:
        lines.append(f"**What to do:** {run.hint}")
    if not has_points and run.status in ("queued", "running"):
        lines.append(NO_STEPS)
    return "\n\n".join(lines)


def history_frame(runs: list[training.Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        losses = f"{r.first_loss:.3f} → {r.final_loss:.3f}" if r.first_loss is not None and r.final_loss is not None else ""
        method = f"{r.method} (dpo)" if r.objective == "dpo" else r.method
        rows.append([r.id, r.status, r.backend, r.base_model, method, f"{r.last_step or 0}/{r.total_steps or '?'}",
                     losses, "" if r.best_eval_loss is None else f"{r.best_eval_loss:.3f}", (r.created_at or "")[:19],
                     r.output_model or ""])
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def refresh_handler(app: Context, run_id, session):
    """Everything the monitor shows for `run_id` (default: the session's run, else the most recent one)."""
    session = Session.of(session)
    view = training.run_view(app, run_id or session.run_id, log_lines=30)
    frame = loss_frame(view.points)
    run = view.run
    return (
        status_markdown(run, not frame.empty),
        progress_html(run.progress) if run is not None and run.progress is not None else "",
        # None, not an empty frame: a LinePlot with color= that once got an empty frame never draws its lines again
        None if frame.empty else frame,
        run.log_tail if run is not None else "",
        history_frame(view.runs),
        gr.update(choices=run_choices(view.runs), value=run.id if run is not None else None),
    )


def select_handler(session, run_id):
    """Choosing a run in the list makes it the session's run: the step bar, the Arena's "Add the model I
    trained" and the assistant then speak of the run the person is looking at."""
    session = Session.of(session)
    return session.selected_run(run_id) if run_id else session


# -- layout -----------------------------------------------------------------------------------------
def _method_info() -> str:
    """What this machine can run, said next to the choice (the worker refuses QLoRA without CUDA)."""
    from ftassist import config

    if config.detect_hardware().get("cuda"):
        return "LoRA: adapters; QLoRA: adapters on a 4-bit base (least memory); full: every weight."
    return "No NVIDIA GPU here: QLoRA (bitsandbytes 4-bit) will be refused; LoRA and full run on the CPU."


def build(ctx: UIContext) -> None:
    gr.Markdown("## Train\nThe run happens in a separate process: keep using the app, reload the page, or close "
                "it; the job goes on and this tab finds it again.")
    gate = gr.Markdown(gate_message(None), elem_id="train-gate")
    prefilled = gr.State("")
    with gr.Row():
        backend = gr.Radio(["local", "openai", "together", "hf-jobs"], value="local", label="Backend",
                           info="local: TRL/PEFT on this machine; openai: OpenAI's fine-tuning API; together: "
                                "Together AI (a Together model id as base model, billed per token); hf-jobs: "
                                "this recipe on a rented Hugging Face GPU (HF_TOKEN, billed per minute)")
        base_model = gr.Dropdown(BASE_MODELS, value="tiny-random", allow_custom_value=True,
                                 label="Base model (Hub id, local folder, or tiny-random)")
        method = gr.Radio(["lora", "qlora", "full"], value="lora", label="Method", info=_method_info())
    with gr.Row():
        epochs = gr.Number(value=3, minimum=0.1, label="Epochs")
        lr = gr.Number(value=None, minimum=0, label="Learning rate (0 or blank: 2e-4 LoRA, 2e-5 full; DPO 5e-5, 5e-6)")
        lora_r = gr.Number(value=16, precision=0, minimum=1, label="LoRA r")
        lora_alpha = gr.Number(value=32, precision=0, minimum=1, label="LoRA alpha")
        max_steps = gr.Number(value=None, precision=0, minimum=0, label="Max steps (0 or blank: all epochs)")
    with gr.Row():
        objective = gr.Radio(["sft", "dpo"], value="sft", label="Objective",
                             info="sft: learn the answers of chats; dpo: prefer the chosen answer of preference pairs "
                                  "(prompt, chosen, rejected: the Arena's DPO export)")
        dpo_beta = gr.Number(value=0.1, minimum=0, label="DPO beta (lower: moves further from the reference)")
        start_from = gr.Dropdown(choices=[], value=None, allow_custom_value=True, label="Start from (optional)",
                                 info="A finished run (its id or model folder): SFT, then DPO, the SFT model as "
                                      "reference; a Together or OpenAI run goes on from the model it made there")
    with gr.Row():
        train_file = gr.Textbox(label="Training file (chat JSONL, or preference pairs for DPO)",
                                placeholder="from the Data step")
        valid_file = gr.Textbox(label="Validation file (optional)", placeholder="from the Data step")
    with gr.Accordion("OpenAI settings", open=False):
        with gr.Row():
            starting = training.training_defaults(ctx.app, Session())
            openai_model = gr.Dropdown(OPENAI_MODELS, value=starting.openai_model, allow_custom_value=True,
                                       label="OpenAI model", info=starting.openai_model_warning or None)
            suffix = gr.Textbox(label="Suffix (≤ 64 characters, part of the ft: name)", max_length=64)
            provider = gr.Radio(["openai", "azure", "custom"], value="openai", label="Provider")
        with gr.Row():
            base_url = gr.Textbox(label="Base URL (custom provider)")
            azure_endpoint = gr.Textbox(label="Azure endpoint (https://NAME.openai.azure.com)")
            api_version = gr.Textbox(label="Azure api-version (e.g. 2024-10-21)")
            api_key = gr.Textbox(label="API key (blank: OPENAI_API_KEY / AZURE_OPENAI_API_KEY / TOGETHER_API_KEY; "
                                       "never stored)",
                                 type="password")
    with gr.Accordion("Hugging Face Jobs settings", open=False):
        flavor = gr.Dropdown(flavor_choices(), value="", label="GPU flavor (hf-jobs)",
                             info="Blank: the cheapest that fits the model's memory estimate. The token: HF_TOKEN, "
                                  "or the API key field.")
    with gr.Row():
        start = gr.Button("Start training", variant="primary")
        cancel = gr.Button("Cancel job", variant="stop")
        resume = gr.Button("Resume job", variant="secondary")
        refresh = gr.Button("Refresh")
    message = gr.Markdown()
    job_select = gr.Dropdown(choices=[], value=None, label="Job", allow_custom_value=True, interactive=True)
    status = gr.Markdown(elem_id="train-status")
    progress = gr.HTML(elem_id="train-progress")
    chart = gr.LinePlot(x="step", y="loss", color="series", title="Loss (train and validation)",
                        x_title="step", y_title="loss", height=320, elem_id="train-loss")
    preference_chart = gr.LinePlot(x="step", y="value", color="series",
                                   title="DPO: reward margin and preference accuracy (train and validation)",
                                   x_title="step", y_title="margin / accuracy", height=320, visible=False,
                                   elem_id="train-preference")
    with gr.Accordion("Log (last lines of worker.log)", open=False):
        log = gr.Code(label="worker.log", language=None, interactive=False)
    history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, label="All jobs")
    timer = gr.Timer(2.0)

    form = [backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file, valid_file,
            openai_model, suffix, provider, base_url, azure_endpoint, api_version, api_key]
    monitor = [status, progress, chart, log, history, job_select]
    ctx.session.change(ctx.bind(prefill_handler), [ctx.session, prefilled],
                       [gate, prefilled, train_file, valid_file, backend, base_model, method, epochs, openai_model,
                        flavor, objective, dpo_beta, start_from],
                       api_visibility="private")
    start.click(ctx.bind(start_handler), [*form, ctx.session, flavor, objective, dpo_beta, start_from],
                [ctx.session, message, job_select], api_name="start_training")
    start_from.focus(ctx.bind(start_from_handler), None, [start_from], api_visibility="private")
    cancel.click(ctx.bind(cancel_handler), [job_select], [message], api_name="cancel_training")
    resume.click(ctx.bind(resume_handler), [job_select, api_key, ctx.session], [ctx.session, message, job_select],
                 api_name="resume_training")
    refresh.click(ctx.bind(refresh_handler), [job_select, ctx.session], monitor, api_name="training_status")
    job_select.input(ctx.bind(refresh_handler), [job_select, ctx.session], monitor, api_visibility="private")
    job_select.input(select_handler, [ctx.session, job_select], [ctx.session], api_visibility="private")
    timer.tick(ctx.bind(refresh_handler), [job_select, ctx.session], monitor, api_visibility="private",
               show_progress="hidden")
    for trigger in (refresh.click, job_select.input):
        trigger(ctx.bind(preference_handler), [job_select, ctx.session], [preference_chart], api_visibility="private")
    timer.tick(ctx.bind(preference_handler), [job_select, ctx.session], [preference_chart], api_visibility="private",
               show_progress="hidden")
