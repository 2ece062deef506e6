"""The `Estimate` tab: every option's cost, memory and time side by side (logic in ftassist.plan.estimate)."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from ftassist.plan import estimate as est
from ftassist.plan import hardware, pricing
from ftassist.usecases import planning
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

from .context import UIContext

GPU_HEADERS = ["gpu", "memory GB", "USD per hour"]


def gpu_price_table() -> pd.DataFrame:
    """The GPU catalogue as an editable table (the person changes the hourly prices)."""
    return pd.DataFrame([[g.name, g.memory_gb, g.usd_per_hour] for g in hardware.gpu_catalogue().values()],
                        columns=GPU_HEADERS)


def _gpu_prices(table: Any) -> dict[str, float]:
    if table is None:
        return {}
    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table, columns=GPU_HEADERS)
    out = {}
    for _, row in df.iterrows():
        name, price = str(row.iloc[0]).strip(), row.iloc[2]
        if not name or price in (None, "") or pd.isna(price):
            continue
        try:
            out[name] = float(price)
        except (TypeError, ValueError):
            raise gr.Error(f"The hourly price of {name} must be a number, not {price!r}.") from None
    return out


def _number(value, cast=float):
    if value is None or value == "" or value == 0 or (isinstance(value, float) and pd.isna(value)):
        return None
    return cast(value)


def _chart_kind(row: dict) -> str:
    if row["kind"] == "openai":
        return "OpenAI"
    method = row["method"].upper() if row["method"] != "full" else "Full"
    return {"hf-jobs": f"HF Jobs {method}", "together": f"Together {method}"}.get(row.get("backend", ""), method)


def cost_chart(table: dict) -> pd.DataFrame:
    rows = [r for r in table["rows"] if est.choosable(r)]
    return pd.DataFrame({
        "option": [r["label"] for r in rows],
        "training cost (USD)": [round(r["cost_usd"], 4) for r in rows],
        "kind": [_chart_kind(r) for r in rows],
    })


def memory_chart(table: dict) -> pd.DataFrame:
    """Memory each method needs next to each GPU's memory, as bars on one axis."""
    names, values, kinds = [], [], []
    for m in table["memory"]:
        label = {"full": "Full", "lora": "LoRA", "qlora": "QLoRA 4-bit"}[m["method"]]
        names.append(f"{label} {m['base_model'].split('/')[-1]}")
        values.append(m["total_gb"])
        kinds.append("needed")
    seen = set()
    for r in table["rows"]:
        if r["kind"] == "self_hosted" and r["gpu"] not in seen:
            seen.add(r["gpu"])
            names.append(r["gpu"])
            values.append(r["gpu_memory_gb"])
            kinds.append("GPU memory")
    return pd.DataFrame({"what": names, "GB": values, "kind": kinds})


def option_choices(table: dict) -> list[tuple[str, str]]:
    return [(("★ " if r["recommended"] else "") + r["label"], r["id"]) for r in table["rows"] if est.choosable(r)]




_SOURCES = {"report": "exact, from the checked dataset", "train split": "exact, from the train split"}


def estimate_handler(app: Context,
    session,
    use_report: bool,
    n_examples,
    avg_tokens,
    output_tokens,
    pasted: str,
    models: list[str] | None,
    epochs: str,
    training_price,
    input_price,
    output_price,
    base_model: str | None,
    methods: list[str] | None,
    gpu_table: Any,
    gpus: list[str] | None,
    seq_len,
    batch_size,
    gradient_checkpointing: bool,
    lora_rank,
    mfu,
    requests_per_month,
    only_fitting: bool,
    objective: str = "sft",
):
    """Event handler: inputs -> (summary, table, cost chart, memory chart, how, option choices, table state, session)."""
    session = Session.of(session)
    options = {
        "openai_models": list(models) if models else None,
        "epochs": epochs or "auto",
        "training_price": _number(training_price),
        "prices": {"input": _number(input_price), "output": _number(output_price)},
        "base_models": [base_model] if base_model else None,
        "methods": list(methods) if methods else None,
        # every GPU ticked is "no choice made": the catalogue then stays a comparison beside this machine and HF Jobs
        "gpus": list(gpus) if gpus and set(gpus) != set(hardware.gpu_catalogue()) else None,
        "gpu_prices": _gpu_prices(gpu_table),
        "seq_len": _number(seq_len, int),
        "batch_size": _number(batch_size, int) or 1,
        "gradient_checkpointing": bool(gradient_checkpointing),
        "lora_rank": _number(lora_rank, int) or 16,
        "mfu": _number(mfu) or hardware.DEFAULT_MFU,
        "requests_per_month": _number(requests_per_month, int) or 0,
        "include_openai": models is None or bool(models),
        "include_self_hosted": methods is None or bool(methods),
        "objective": objective or "sft",
    }
    try:
        result = planning.estimate_options(
            app, session, use_dataset=bool(use_report), example=pasted or None,
            n_examples=_number(n_examples, int), avg_tokens=_number(avg_tokens), output_tokens=_number(output_tokens),
            options=options)
    except UseCaseError as exc:
        raise gr.Error(f"Cannot estimate: {exc}") from None
    table = result.table.to_dict()
    inp = table["inputs"]
    what = "preference pairs" if inp.get("pairs") else "examples"
    summary = [f"**{inp['n_examples']:,} {what}, {inp['total_tokens']:,} tokens** "
               f"({_SOURCES.get(inp['source'], inp['source'])}, {inp['encoding']}); {inp['epochs_how']}.", "",
               f"**{table['recommendation']}**"]
    if result.prefer:
        summary.append(f"(the Decide tab suggested {result.prefer}: the recommendation prefers it when it fits)")
    summary += [f"- {n}" for n in [*result.warnings, *table["notes"]]]
    df = pd.DataFrame(est.display_rows(table, only_fitting=bool(only_fitting)), columns=est.DISPLAY_HEADERS)
    chosen = result.recommended
    if chosen:
        session = session.chose(chosen)
    dropdown = gr.Dropdown(choices=option_choices(table), value=chosen["id"] if chosen else None)
    return ("\n".join(summary), df, cost_chart(table), memory_chart(table), est.how_markdown(table), dropdown,
            table, session)


def objective_key(session) -> str:
    """Changes exactly when what decides the default objective changes: the data, or the Decide advice."""
    session = Session.of(session)
    recommendation = session.decision.recommendation if session.decision is not None else {}
    return json.dumps([session.dataset.path if session.dataset is not None else None,
                       session.split.train if session.split is not None else None,
                       (recommendation or {}).get("objective"), (recommendation or {}).get("then_objective")])


def objective_prefill(session, last_key: str | None):
    """On a session change: set "What to train" to the session's objective (a checked file of preference pairs:
    DPO; chats: SFT; else the Decide recommendation), only when the data or the advice changed (keeps a choice)."""
    key = objective_key(session)
    if key == last_key:
        return gr.update(), gr.update(), last_key
    choice = planning.default_objective(Session.of(session))
    then = " Then DPO, from the SFT run, on preference pairs." if choice.then_objective == "dpo" else ""
    return gr.update(value=choice.objective), f"{choice.objective.upper()}: {choice.why}.{then}", key


def choose_handler(session, table: dict | None, option_id: str | None):
    """Event handler: keep the chosen option in the session for the Train step."""
    session = Session.of(session)
    if not table or not option_id:
        return "Estimate first, then choose an option.", session
    row = next((r for r in table["rows"] if r["id"] == option_id), None)
    if row is None:
        raise gr.Error("That option is not in the last estimate: estimate again.")
    if not est.choosable(row):
        raise gr.Error(f"{row['label']} cannot be chosen: {row.get('why') or 'it does not fit or has no price'}.")
    cost = "per hour" if row["cost_usd"] is None else f"${row['cost_usd']:,.2f}"
    return f"Chosen for training: **{row['label']}** ({cost}).", session.chose(row)


def build(ctx: UIContext) -> None:
    gr.Markdown("## What will each option cost, and will it fit?\nType a rough size (quick mode) or check a dataset "
                "in the Data tab for exact token counts. Every figure says how it was computed (see *How*).")
    objective = gr.Radio(label="What to train", value="sft", elem_id="estimate-objective",
                         choices=[("SFT: chats (the answers to give)", "sft"),
                                  ("DPO: preference pairs (a better and a worse answer)", "dpo")],
                         info="With DPO, examples are pairs and each counts as prompt + chosen + prompt + rejected")
    objective_why = gr.Markdown(elem_id="estimate-objective-why")
    objective_set_for = gr.State(None)
    with gr.Row():
        use_report = gr.Checkbox(label="Use the checked dataset's exact counts (of its train split once split)", value=True)
        n_examples = gr.Number(label="Examples", value=1000, precision=0, minimum=1)
        avg_tokens = gr.Number(label="Tokens per example (about)", value=500, minimum=1)
        output_tokens = gr.Number(label="Reply tokens per example (blank: 25%)", value=None, minimum=0)
    pasted = gr.Textbox(label="…or paste one example to count (JSON with a messages list)", lines=3,
                        placeholder='{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}')
    with gr.Accordion("OpenAI", open=True):
        with gr.Row():
            models = gr.CheckboxGroup(label="Models", choices=pricing.model_names(include_legacy=True),
                                      value=pricing.model_names())
        with gr.Row():
            epochs = gr.Textbox(label="Epochs (N or auto)", value="auto")
            training_price = gr.Number(label="Training price override (USD per 1M tokens)", value=None, minimum=0)
            input_price = gr.Number(label="Input price override (USD per 1M)", value=None, minimum=0)
            output_price = gr.Number(label="Output price override (USD per 1M)", value=None, minimum=0)
            requests = gr.Number(label="Requests per month (inference)", value=est.DEFAULT_REQUESTS_PER_MONTH,
                                 precision=0, minimum=0)
    with gr.Accordion("Self-hosted", open=True):
        with gr.Row():
            base_model = gr.Dropdown(label="Base model (catalogue, local folder, or Hub id)",
                                     choices=hardware.catalogue_names(), value=est.DEFAULT_BASE_MODEL,
                                     allow_custom_value=True)
            methods = gr.CheckboxGroup(label="Methods", choices=list(hardware.METHODS), value=list(hardware.METHODS))
            gpus = gr.CheckboxGroup(label="GPUs", choices=list(hardware.gpu_catalogue()),
                                    value=list(hardware.gpu_catalogue()))
        with gr.Row():
            seq_len = gr.Number(label="Sequence length (blank: longest example)", value=None, precision=0, minimum=0)
            batch_size = gr.Number(label="Batch size", value=1, precision=0, minimum=1)
            lora_rank = gr.Number(label="LoRA rank", value=16, precision=0, minimum=1)
            gc = gr.Checkbox(label="Gradient checkpointing", value=True)
            mfu = gr.Slider(label="GPU utilisation (MFU)", minimum=0.05, maximum=0.8, step=0.05,
                            value=hardware.DEFAULT_MFU)
        gpu_table = gr.Dataframe(value=gpu_price_table(), label="GPU prices (edit the USD per hour)",
                                 interactive=True, static_columns=[0, 1])
    only_fitting = gr.Checkbox(label="Hide options that do not fit", value=False)
    button = gr.Button("Estimate", variant="primary")
    summary = gr.Markdown(elem_id="estimate-summary")
    table = gr.Dataframe(label="Every option side by side (★ = recommended)", headers=est.DISPLAY_HEADERS,
                         interactive=False, wrap=True, elem_id="estimate-table")
    with gr.Row():
        cost_plot = gr.BarPlot(x="option", y="training cost (USD)", color="kind", title="Training cost per option",
                               x_label_angle=-40, sort="y", height=380)
        memory_plot = gr.BarPlot(x="what", y="GB", color="kind", title="Memory needed vs GPU memory",
                                 x_label_angle=-40, sort="y", height=380)
    with gr.Accordion("How each figure was computed", open=False):
        how = gr.Markdown()
    with gr.Row():
        option = gr.Dropdown(label="Option to train with", choices=[], interactive=True, allow_custom_value=True)
        choose = gr.Button("Use this option")
    chosen = gr.Markdown(elem_id="estimate-chosen")
    table_state = gr.State(None)
    inputs = [ctx.session, use_report, n_examples, avg_tokens, output_tokens, pasted, models, epochs, training_price,
              input_price, output_price, base_model, methods, gpu_table, gpus, seq_len, batch_size, gc, lora_rank,
              mfu, requests, only_fitting, objective]
    button.click(ctx.bind(estimate_handler), inputs=inputs,
                 outputs=[summary, table, cost_plot, memory_plot, how, option, table_state, ctx.session],
                 api_name="estimate")
    # The Data step's file and the Decide advice set the objective (a preference file: DPO), once per change.
    ctx.session.change(objective_prefill, inputs=[ctx.session, objective_set_for],
                       outputs=[objective, objective_why, objective_set_for], api_visibility="private")
    choose.click(choose_handler, inputs=[ctx.session, table_state, option], outputs=[chosen, ctx.session],
                 api_name="choose_estimate")
