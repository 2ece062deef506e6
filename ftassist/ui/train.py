"""The `Train` tab: start a run, watch it (loss chart, progress, log tail), stop it, see the history.

Everything shown comes from DuckDB through `ftassist.train.jobs` (after an ingest), never
from this browser session, so a reload or a second browser finds the run where it is. The
form is prefilled from the Data step (train/valid files) and the Estimate step (backend,
model, method, epochs). The API key field is sent with the Start request only and handed to
the worker's environment: it is never stored.
"""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from ftassist.train.events import format_duration

from .context import UIContext

BASE_MODELS = ["tiny-random", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
               "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"]
OPENAI_MODELS = ["gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14", "gpt-4.1-2025-04-14",
                 "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"]
HISTORY_COLUMNS = ["id", "status", "backend", "base model", "method", "steps", "loss first → last",
                   "best valid loss", "created", "output"]
NO_STEPS = "No steps logged yet: the chart starts at the first logged step."


# -- prefill and gate -----------------------------------------------------------------------------
def prefill_values(session: dict | None) -> dict:
    """Form values from the earlier steps: data paths from Data, backend/model/method/epochs from Estimate."""
    session = session or {}
    clean = session.get("clean") or {}
    est = session.get("estimate") or {}
    values: dict = {"train_file": clean.get("train") or "", "valid_file": clean.get("valid") or ""}
    if clean.get("valid") and not clean.get("n_valid", 1):
        values["valid_file"] = ""
    if est.get("kind") == "openai":
        values.update(backend="openai", openai_model=est.get("model") or OPENAI_MODELS[0], method="lora")
        if est.get("epochs"):
            values["epochs"] = est["epochs"]
    elif est.get("kind") == "self_hosted":
        values.update(backend="local", base_model=est.get("model") or "tiny-random")
        if est.get("method") in ("lora", "qlora", "full"):
            values["method"] = est["method"]
        if est.get("epochs"):
            values["epochs"] = est["epochs"]
    return values


def gate_message(session: dict | None, train_file: str | None = None) -> str:
    """A gentle warning when there is no validated data yet (training still allowed with a path)."""
    session = session or {}
    if session.get("clean"):
        c = session["clean"]
        return (f"Data from the Data step: **{c.get('n_train', '?')} train / {c.get('n_valid', '?')} validation** "
                "examples, checked and split.")
    if session.get("report"):
        return ("⚠️ The dataset was checked but not split: press **Fix & split** in the Data tab to get a "
                "validation set (without one you cannot see overfitting).")
    if train_file:
        return "⚠️ This file was not checked in the Data tab: errors will only show up when the worker reads it."
    return ("⚠️ No validated data yet: check and split your dataset in the **Data** tab first, "
            "or type the path of a chat JSONL file below.")


def prefill_handler(session, last_key):
    """On a session change: refill the form only when the Data/Estimate results changed (keeps edits)."""
    session = session or {}
    key = repr(((session.get("clean") or {}).get("train"), (session.get("estimate") or {}).get("id")))
    values = prefill_values(session)
    gate = gate_message(session, values.get("train_file"))
    if key == last_key:
        return (gate, key) + (gr.update(),) * 7
    return (
        gate, key,
        gr.update(value=values["train_file"]),
        gr.update(value=values["valid_file"]),
        gr.update(value=values["backend"]) if "backend" in values else gr.update(),
        gr.update(value=values["base_model"]) if "base_model" in values else gr.update(),
        gr.update(value=values["method"]) if "method" in values else gr.update(),
        gr.update(value=values["epochs"]) if "epochs" in values else gr.update(),
        gr.update(value=values["openai_model"]) if "openai_model" in values else gr.update(),
    )


# -- start / cancel ---------------------------------------------------------------------------------
def _opt_number(value, cast=float):
    """None for blank or 0 (a blank gr.Number arrives as 0 in some browsers): "use the preset"."""
    if value is None or value == "" or float(value) == 0:
        return None
    return cast(value)


def build_spec(backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file, valid_file,
               openai_model, suffix, provider, base_url, azure_endpoint, api_version):
    """A JobSpec from the form (raises ValueError with every problem, phrased for the person)."""
    from ftassist.train.spec import OPENAI_DEFAULTS, JobSpec

    train_file = (train_file or "").strip()
    valid_file = (valid_file or "").strip() or None
    kw: dict = dict(backend=backend or "local", method=method or "lora", train_file=train_file,
                    valid_file=valid_file)
    if kw["backend"] == "openai":
        o = dict(OPENAI_DEFAULTS)
        o.update(model=(openai_model or OPENAI_DEFAULTS["model"]).strip(), provider=provider or "openai",
                 suffix=(suffix or "").strip() or None, base_url=(base_url or "").strip() or None,
                 azure_endpoint=(azure_endpoint or "").strip() or None,
                 api_version=(api_version or "").strip() or None)
        if _opt_number(epochs) is not None:  # blank or 0: "auto" (OpenAI picks from the data size)
            o["n_epochs"] = int(epochs)
        kw.update(openai=o, base_model=o["model"], method="lora" if kw["method"] == "qlora" else kw["method"])
        if o["suffix"]:
            from ftassist.train.openai_ft import OpenAIBackendError, validate_suffix

            try:
                validate_suffix(o["suffix"])
            except OpenAIBackendError as exc:
                raise ValueError(str(exc)) from None
    else:
        kw["base_model"] = (base_model or "tiny-random").strip()
        if epochs not in (None, ""):
            kw["num_epochs"] = float(epochs)
        for name, value, cast in (("learning_rate", lr, float), ("lora_r", lora_r, int),
                                  ("lora_alpha", lora_alpha, int), ("max_steps", max_steps, int)):
            v = _opt_number(value, cast)
            if v is not None:
                kw[name] = v
    spec = JobSpec(**kw)
    problems = [p for p in spec.validate() if not p.startswith("output_dir")]
    if problems:
        raise ValueError(" ".join(problems))
    return spec


def start_handler(backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file, valid_file,
                  openai_model, suffix, provider, base_url, azure_endpoint, api_version, api_key, session):
    """Start (or queue) a run; returns (session, message, selected job)."""
    from ftassist.train import jobs

    session = dict(session or {})
    if not (train_file or "").strip():
        raise gr.Error("No training file: check and split your dataset in the Data tab, or type a chat JSONL path.")
    try:
        spec = build_spec(backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file,
                          valid_file, openai_model, suffix, provider, base_url, azure_endpoint, api_version)
        job_id = jobs.start_job(spec, api_key=(api_key or "").strip() or None)
    except (ValueError, OSError) as exc:
        raise gr.Error(str(exc)) from None
    session["job_id"] = job_id
    job = jobs.get_job(job_id)
    message = f"Job `{job_id}` **{job['status']}**" + (
        ": it starts when the running local job ends." if job["status"] == "queued" else ".")
    return session, message, gr.update(choices=job_choices(), value=job_id)


def cancel_handler(job_id):
    from ftassist.train import jobs

    if not job_id:
        raise gr.Error("Choose a job to cancel.")
    try:
        job = jobs.cancel_job(job_id, timeout=10)
    except jobs.JobError as exc:
        raise gr.Error(str(exc)) from None
    return f"Job `{job_id}`: **{job['status']}**."


# -- monitoring -----------------------------------------------------------------------------------
def job_choices() -> list[tuple[str, str]]:
    from ftassist.train import jobs

    return [(f"{j['id']} · {j['status']} · {j['base_model']}", j["id"]) for j in jobs.list_jobs(limit=100)]


def loss_frame(job_id: str | None) -> pd.DataFrame:
    """Train and validation loss by step, for gr.LinePlot (empty frame with the columns when nothing yet)."""
    from ftassist.train import jobs

    points = jobs.loss_points(job_id) if job_id else []
    if not points:  # typed, so the chart keeps numeric axes before the first step
        return pd.DataFrame({"step": pd.Series(dtype="int64"), "loss": pd.Series(dtype="float64"),
                             "series": pd.Series(dtype="object")})
    frame = pd.DataFrame(points, columns=["step", "loss", "series"])
    # Gradio 6 fixes a LinePlot's colour domain when it first draws: keep both series in it from
    # the start (a NaN point is not drawn), or the validation line stays invisible.
    missing = [name for name in ("train", "validation") if name not in set(frame["series"])]
    if missing:
        frame = pd.concat([frame, pd.DataFrame({"step": frame["step"].min(), "loss": float("nan"), "series": missing})],
                          ignore_index=True)
    return frame


def progress_html(prog: dict) -> str:
    frac = prog.get("fraction")
    pct = 0 if frac is None else max(0.0, min(1.0, frac)) * 100
    bits = [f"step {prog.get('step') or 0}/{prog.get('total_steps') or '?'}"]
    if prog.get("status") == "running":
        bits.append(f"ETA {format_duration(prog.get('eta_s'))}")
    if prog.get("tokens_per_s"):
        bits.append(f"{prog['tokens_per_s']:,.0f} tokens/s")
    if prog.get("loss") is not None:
        bits.append(f"loss {prog['loss']:.4f}")
    return (f"<div class='ft-progress' style='border:1px solid #ccc;border-radius:4px;height:14px;width:100%'>"
            f"<div style='background:#4f8ef7;height:100%;width:{pct:.1f}%'></div></div>"
            f"<div style='font-size:0.9em'>{html.escape(' · '.join(bits))}</div>")


def status_markdown(job: dict | None, has_points: bool) -> str:
    if job is None:
        return "No job yet: fill in the form and press **Start training**."
    lines = [f"**Job `{job['id']}`: {job['status']}** ({job['backend']}, {job['base_model']}, {job['method']})"]
    if job.get("external_id"):
        lines.append(f"OpenAI job: `{job['external_id']}`")
    if job.get("output_model") and job["status"] == "succeeded":
        lines.append(f"Model: `{job['output_model']}` (use it in the Arena tab)")
    if job.get("error"):
        lines.append(f"**Why:** {job['error']}")
    if job.get("hint"):
        lines.append(f"**What to do:** {job['hint']}")
    if not has_points and job["status"] in ("queued", "running"):
        lines.append(NO_STEPS)
    return "\n\n".join(lines)


def history_frame() -> pd.DataFrame:
    from ftassist.train import jobs

    rows = []
    for j in jobs.list_jobs(limit=100):
        losses = ""
        if j.get("first_loss") is not None and j.get("final_loss") is not None:
            losses = f"{j['first_loss']:.3f} → {j['final_loss']:.3f}"
        rows.append([j["id"], j["status"], j["backend"], j["base_model"], j["method"],
                     f"{j.get('last_step') or 0}/{j.get('total_steps') or '?'}", losses,
                     "" if j.get("best_eval_loss") is None else f"{j['best_eval_loss']:.3f}",
                     str(j.get("created_at") or "")[:19], j.get("output_model") or ""])
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def refresh_handler(job_id, session):
    """Ingest, then everything the monitor shows for `job_id` (default: the session's, else the latest job)."""
    from ftassist.train import jobs

    try:
        jobs.tick()
    except Exception:  # noqa: BLE001 - show what is stored; the next tick retries
        pass
    session = session or {}
    job_id = job_id or session.get("job_id")
    if not job_id:
        latest = jobs.list_jobs(limit=1)
        job_id = latest[0]["id"] if latest else None
    job = jobs.get_job(job_id) if job_id else None
    frame = loss_frame(job_id) if job else loss_frame(None)
    prog = jobs.progress(job_id) if job else {}
    tail = jobs.log_tail(job_id, max_lines=30) if job else ""
    return (
        status_markdown(job, not frame.empty),
        progress_html(prog) if job else "",
        # None, not an empty frame: a LinePlot with color= that once got an empty frame never draws its lines again
        None if frame.empty else frame,
        tail,
        history_frame(),
        gr.update(choices=job_choices(), value=job_id),
    )


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
    gate = gr.Markdown(gate_message({}), elem_id="train-gate")
    prefilled = gr.State("")
    with gr.Row():
        backend = gr.Radio(["local", "openai"], value="local", label="Backend",
                           info="local: TRL/PEFT on this machine; openai: OpenAI's fine-tuning API")
        base_model = gr.Dropdown(BASE_MODELS, value="tiny-random", allow_custom_value=True,
                                 label="Base model (Hub id, local folder, or tiny-random)")
        method = gr.Radio(["lora", "qlora", "full"], value="lora", label="Method", info=_method_info())
    with gr.Row():
        epochs = gr.Number(value=3, minimum=0.1, label="Epochs")
        lr = gr.Number(value=None, minimum=0, label="Learning rate (0 or blank: 2e-4 LoRA, 2e-5 full)")
        lora_r = gr.Number(value=16, precision=0, minimum=1, label="LoRA r")
        lora_alpha = gr.Number(value=32, precision=0, minimum=1, label="LoRA alpha")
        max_steps = gr.Number(value=None, precision=0, minimum=0, label="Max steps (0 or blank: all epochs)")
    with gr.Row():
        train_file = gr.Textbox(label="Training file (chat JSONL)", placeholder="from the Data step")
        valid_file = gr.Textbox(label="Validation file (optional)", placeholder="from the Data step")
    with gr.Accordion("OpenAI settings", open=False):
        with gr.Row():
            openai_model = gr.Dropdown(OPENAI_MODELS, value="gpt-4o-mini-2024-07-18", allow_custom_value=True,
                                       label="OpenAI model")
            suffix = gr.Textbox(label="Suffix (≤ 64 characters, part of the ft: name)", max_length=64)
            provider = gr.Radio(["openai", "azure", "custom"], value="openai", label="Provider")
        with gr.Row():
            base_url = gr.Textbox(label="Base URL (custom provider)")
            azure_endpoint = gr.Textbox(label="Azure endpoint (https://NAME.openai.azure.com)")
            api_version = gr.Textbox(label="Azure api-version (e.g. 2024-10-21)")
            api_key = gr.Textbox(label="API key (blank: OPENAI_API_KEY / AZURE_OPENAI_API_KEY; never stored)",
                                 type="password")
    with gr.Row():
        start = gr.Button("Start training", variant="primary")
        cancel = gr.Button("Cancel job", variant="stop")
        refresh = gr.Button("Refresh")
    message = gr.Markdown()
    job_select = gr.Dropdown(choices=[], value=None, label="Job", allow_custom_value=True, interactive=True)
    status = gr.Markdown(elem_id="train-status")
    progress = gr.HTML(elem_id="train-progress")
    chart = gr.LinePlot(x="step", y="loss", color="series", title="Loss (train and validation)",
                        x_title="step", y_title="loss", height=320, elem_id="train-loss")
    with gr.Accordion("Log (last lines of worker.log)", open=False):
        log = gr.Code(label="worker.log", language=None, interactive=False)
    history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True, label="All jobs")
    timer = gr.Timer(2.0)

    form = [backend, base_model, method, epochs, lr, lora_r, lora_alpha, max_steps, train_file, valid_file,
            openai_model, suffix, provider, base_url, azure_endpoint, api_version, api_key]
    monitor = [status, progress, chart, log, history, job_select]
    ctx.session.change(prefill_handler, [ctx.session, prefilled],
                       [gate, prefilled, train_file, valid_file, backend, base_model, method, epochs, openai_model],
                       api_visibility="private")
    start.click(start_handler, [*form, ctx.session], [ctx.session, message, job_select], api_name="start_training")
    cancel.click(cancel_handler, [job_select], [message], api_name="cancel_training")
    refresh.click(refresh_handler, [job_select, ctx.session], monitor, api_name="training_status")
    job_select.input(refresh_handler, [job_select, ctx.session], monitor, api_visibility="private")
    timer.tick(refresh_handler, [job_select, ctx.session], monitor, api_visibility="private",
               show_progress="hidden")
