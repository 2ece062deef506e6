"""The `Evaluate` tab: the automatic measures of the registered models on held-out data, beside the human
votes and the LLM judge, one verdict per fine-tuned model, the stored history, and taking the model home
(merge, Ollama, vLLM, GGUF, the Hub). Every figure comes from the evaluation and exporting use cases; this
module only lays them out."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from ftassist.usecases import arena as arena_cases
from ftassist.usecases import evaluation
from ftassist.usecases import exporting
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

from .context import UIContext

MEASURES = (("rouge_l", "ROUGE-L"), ("bleu", "BLEU"), ("exact_match", "exact match"), ("loss", "loss"),
            ("perplexity", "perplexity"))
MEASURE_COLUMNS = ["model", *[name for _, name in MEASURES], "people prefer it (vs base)",
                   "LLM judge prefers it (vs base)"]
CLASS_COLUMNS = ["model", "label", "examples", "predicted", "correct", "recall", "precision", "F1"]
GENERAL_COLUMNS = ["model", "general questions right", "base right", "change (95% CI)", "perplexity ratio",
                   "training losses"]
HISTORY_COLUMNS = ["when", "model", "compared with", "data", "data sha256", "settings", "verdict"]
TARGETS = (("Merged weights (transformers folder)", "merged"), ("Ollama (Modelfile)", "ollama"),
           ("vLLM (serve.sh)", "vllm"), ("GGUF (llama.cpp)", "gguf"))


def _figure(value: float | None, interval: list[float] | None = None, digits: int = 3) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}g}"
    if interval:
        text += f" ({interval[0]:.{digits}g} to {interval[1]:.{digits}g})"
    return text


def _rate(record: dict[str, Any] | None) -> str:
    if not record:
        return "no votes yet"
    return (f"{record['win_rate']:.0%} ({record['win_rate_low']:.0%} to {record['win_rate_high']:.0%}, "
            f"{record['votes']} votes)")


def measures_table(result: evaluation.Evaluation) -> pd.DataFrame:
    rows = []
    for index, m in enumerate(result.models):
        cells = [_figure(getattr(m, key), (m.intervals or {}).get(key)) for key, _ in MEASURES]
        base = index == 0 and len(result.models) > 1
        rows.append([m.display_name + (" (base)" if base else ""), *cells,
                     "-" if base else _rate(m.human), "-" if base else _rate(m.judge)])
    return pd.DataFrame(rows, columns=MEASURE_COLUMNS)


def class_table(result: evaluation.Evaluation) -> pd.DataFrame:
    rows = []
    if result.labels:
        for m in result.models:
            for c in m.per_class:
                rows.append([m.display_name, c["label"], c["n"], c["predicted"], c["correct"],
                             _figure(c["recall"]), _figure(c["precision"]), _figure(c["f1"])])
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


def _losses(overfit: dict[str, Any] | None) -> str:
    if not overfit or overfit.get("eval_loss") is None:
        return (overfit or {}).get("note") or "-"
    text = f"train {_figure(overfit['train_loss'])}, validation {_figure(overfit['eval_loss'])}"
    if overfit.get("overfitting"):
        text += f": overfitting ({overfit['note']})"
    return text


def general_table(result: evaluation.Evaluation) -> pd.DataFrame:
    rows = []
    for m in result.models:
        f = m.forgetting or {}
        change = f.get("accuracy_change")
        interval = f.get("accuracy_change_interval")
        rows.append([
            m.display_name,
            "-" if f.get("tuned_accuracy") is None else f"{f['tuned_accuracy']:.0%} of {f['n_prompts']}",
            "-" if f.get("base_accuracy") is None else f"{f['base_accuracy']:.0%}",
            "-" if change is None else f"{change:+.0%}" + (f" ({interval[0]:+.0%} to {interval[1]:+.0%})"
                                                            if interval else ""),
            _figure(f.get("ratio")),
            _losses(m.overfitting),
        ])
    return pd.DataFrame(rows, columns=GENERAL_COLUMNS)


def verdicts_text(result: evaluation.Evaluation) -> str:
    lines = [f"**Data:** {result.n_scored} of {result.n_examples} examples from `{result.data}`"
             + (f", {result.data_source}" if result.data_source else "") + "."]
    if result.labels:
        lines.append("The answers are labels: exact match is the task accuracy; the per-class table is below.")
    verdicts = [m.verdict for m in result.models if m.verdict]
    if verdicts:
        lines += [f"- {v}" for v in verdicts]
    else:
        lines.append("Add a fine-tuned model after the base to get a verdict on it.")
    agreement = result.judge_agreement
    if agreement and agreement.get("agreement") is not None:
        lines.append(f"The LLM judge agrees with the human votes {agreement['agreement']:.0%} of the time "
                     f"({agreement['n_pairs']} votes"
                     + (f", Cohen's kappa {agreement['kappa']:.2f}" if agreement.get("kappa") is not None else "")
                     + ").")
    lines.append(f"Intervals are 95% bootstrap intervals over the examples; stored as evaluation `{result.id}`.")
    return "\n\n".join(lines)


def history_table(app: Context) -> pd.DataFrame:
    rows = []
    for r in evaluation.evaluation_history(app, limit=50):
        settings = ", ".join(f"{k} {v}" for k, v in r.sampling.items() if v is not None)
        rows.append([r.created_at[:19], r.display_name, r.base or "-", r.data_path, r.data_hash[:12], settings,
                     r.verdict or "-"])
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


# -- handlers ---------------------------------------------------------------------------------------------
def model_choices(app: Context, session):
    """The registered models for the pickers: the base defaults to the oldest, the tuned ones to the
    session's newest registrations."""
    registered = arena_cases.list_models(app)
    choices = [(m.display_name, m.id) for m in registered]
    ids = [m.id for m in registered]
    mine = [m for m in Session.of(session).model_ids if m in ids]
    base = next((i for i in ids if i not in mine), ids[0] if ids else None)
    tuned = [m for m in mine if m != base][-3:]
    exportable = [(m.display_name, m.id) for m in registered if m.kind in ("hf", "hf_adapter")]
    return (gr.update(choices=choices, value=base), gr.update(choices=choices, value=tuned),
            gr.update(choices=exportable, value=exportable[-1][1] if exportable else None))


def data_note(app: Context, session) -> str:
    try:
        path, what = evaluation.default_data(app, Session.of(session))
    except UseCaseError as exc:
        return str(exc)
    return f"Without an upload the models are measured on {what}: `{path}`."


def run_evaluation(app: Context, session, base: str | None, tuned: list[str] | None, upload: str | None,
                   max_examples: float, temperature: float, max_new_tokens: float, progress=gr.Progress()):
    """Measure the base and the fine-tuned models; the verdicts, the tables and the refreshed history."""
    if not base:
        raise gr.Error("Pick the base model (register models in the Arena tab first).")
    models = [base] + [m for m in (tuned or []) if m != base]
    progress(0.05, desc=f"generating and scoring {len(models)} model(s)")
    try:
        result = evaluation.evaluate_models(app, models, data=upload or None,
                                            max_examples=int(max_examples) if max_examples else None,
                                            temperature=float(temperature), max_new_tokens=int(max_new_tokens),
                                            session=Session.of(session))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return (verdicts_text(result), measures_table(result), class_table(result), general_table(result),
            history_table(app))


def export_model(app: Context, model: str | None, target: str) -> str:
    """Write the model in the chosen form under the data dir's exports/ (the app writes only there)."""
    if not model:
        raise gr.Error("Pick the model to take home: one trained here (a LoRA adapter or a whole model).")
    try:
        result = exporting.export_model(app, model, target)
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    files = "\n".join(f"- `{f}`" for f in result.files[:20])
    return f"**{result.message}**\n\nFolder: `{result.out_dir}`" + (f"\n\n{files}" if files else "")


def push_model(app: Context, model: str | None, repo_id: str, public: bool, merged: bool) -> str:
    if not model:
        raise gr.Error("Pick the model to push.")
    try:
        result = exporting.push_model(app, model, (repo_id or "").strip(), private=not public, merged=bool(merged))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return (f"Pushed {'the merged model' if result.merged else 'the adapter'} of {result.model} to "
            f"[{result.repo_id}]({result.url}) ({'private' if result.private else 'public'}).")


# -- layout --------------------------------------------------------------------------------------------------
def build(ctx: UIContext) -> None:
    gr.Markdown("Measure the fine-tuned models against the base on held-out examples they never saw, beside "
                "what people voted in the Arena. Each figure has its 95% interval: two models whose intervals "
                "overlap much are not told apart yet.")
    with gr.Row():
        base = gr.Dropdown(choices=[], label="Base model", interactive=True, elem_id="eval-base")
        tuned = gr.Dropdown(choices=[], multiselect=True, label="Fine-tuned model(s)", interactive=True,
                            elem_id="eval-tuned")
        refresh = gr.Button("Refresh the models", size="sm", scale=0)
    note = gr.Markdown(elem_id="eval-data-note")
    upload = gr.File(label="Other held-out data (chat JSONL, optional)", file_types=[".jsonl"], type="filepath")
    with gr.Row():
        max_examples = gr.Number(value=50, precision=0, label="At most this many examples")
        temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0: repeatable)")
        max_new_tokens = gr.Slider(8, 1024, value=256, step=8, label="Longest answer (tokens)",
                                   elem_id="eval-max-new-tokens")
    run = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
    verdicts = gr.Markdown(elem_id="eval-verdicts")
    measures = gr.Dataframe(headers=MEASURE_COLUMNS, label="Measures (95% interval) beside the votes",
                            interactive=False, wrap=True, elem_id="eval-measures")
    classes = gr.Dataframe(headers=CLASS_COLUMNS, label="Task accuracy per class (when the answers are labels)",
                           interactive=False, wrap=True)
    general = gr.Dataframe(headers=GENERAL_COLUMNS, label="General questions (forgetting) and training losses",
                           interactive=False, wrap=True)
    with gr.Accordion("Past evaluations", open=False):
        history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, wrap=True)

    with gr.Accordion("Take the model home (export)", open=False, elem_id="eval-export"):
        gr.Markdown("Only a model whose weights are here can leave: a LoRA adapter over its base, or a whole "
                    "model folder. API fine-tunes stay with their provider.")
        with gr.Row():
            export_choice = gr.Dropdown(choices=[], label="Model", interactive=True)
            target = gr.Radio(choices=list(TARGETS), value="merged", label="As")
        export_button = gr.Button("Export")
        with gr.Row():
            repo_id = gr.Textbox(label="Hub repo (OWNER/NAME)", placeholder="me/support-bot")
            public = gr.Checkbox(label="Public (private by default)", value=False)
            merged = gr.Checkbox(label="Merged into its base", value=False)
        push_button = gr.Button("Push to the Hugging Face Hub")
        export_result = gr.Markdown()

    pickers = [base, tuned, export_choice]
    refresh.click(ctx.bind(model_choices), [ctx.session], pickers, api_visibility="private")
    refresh.click(ctx.bind(data_note), [ctx.session], note, api_visibility="private")
    refresh.click(ctx.bind(history_table), None, history, api_visibility="private")
    if ctx.demo is not None:
        ctx.demo.load(ctx.bind(model_choices), [ctx.session], pickers, api_visibility="private")
        ctx.demo.load(ctx.bind(data_note), [ctx.session], note, api_visibility="private")
    ctx.session.change(ctx.bind(data_note), [ctx.session], note, api_visibility="private", show_progress="hidden")
    run.click(ctx.bind(run_evaluation), [ctx.session, base, tuned, upload, max_examples, temperature, max_new_tokens],
              [verdicts, measures, classes, general, history], api_name="evaluate_models")
    export_button.click(ctx.bind(export_model), [export_choice, target], export_result, api_name="export_model")
    push_button.click(ctx.bind(push_model), [export_choice, repo_id, public, merged], export_result,
                      api_name="push_model")
