"""The `Decide` tab: the questionnaire and its recommendation (logic in ftassist.plan.guide)."""

from __future__ import annotations

import gradio as gr

from ftassist.plan import guide
from ftassist.usecases import planning
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Session

from .context import UIContext

ANSWER_KEYS = tuple(q.key for q in guide.QUESTIONS)




def dataset_status(session) -> str:
    """One line saying whether a checked dataset will feed into the advice."""
    report = Session.of(session).report
    s = guide.summarize_report(report) if report else None
    if not s:
        return "No dataset checked yet: the advice uses your answers only (check one in the Data tab to refine it)."
    extra = []
    if s["n_errors"]:
        extra.append(f"{s['n_errors']:,} error(s)")
    if s["failing"]:
        extra.append("failing: " + ", ".join(s["failing"]))
    what = "preference pairs (answer yes to the preference data question: DPO)" \
        if (report or {}).get("format") == "preference" else "valid examples"
    return f"Using your checked dataset: {s['n_examples']:,} {what}" + (f" ({'; '.join(extra)})" if extra else "") + "."


def recommend_handler(app: Context, session, *values) -> tuple[str, Session]:
    """Event handler: answers (in QUESTIONS order) -> recommendation Markdown, and the session with the decision."""
    session = Session.of(session)
    answers = dict(zip(ANSWER_KEYS, values))
    n = answers.get("n_examples")
    answers["n_examples"] = None if n in (None, "") else int(n)
    try:
        advice = planning.recommend_approach(app, answers, report=session.report)
    except UseCaseError as exc:
        raise gr.Error(f"Cannot give advice: {exc}") from None
    return advice.markdown, session.decided(advice.decision)


def _component(q: guide.Question, default):
    if q.kind == "bool":
        return gr.Checkbox(label=q.text, value=default, info=q.help or None)
    if q.kind == "int":
        return gr.Number(label=q.text, value=None, precision=0, minimum=0, info=q.help or None)
    return gr.Radio(label=q.text, choices=list(q.choices), value=default, info=q.help or None)


def build(ctx: UIContext) -> None:
    gr.Markdown("## Should I fine-tune at all, and how?\nAnswer a few questions; every recommendation says why, "
                "and which pitfalls to watch.")
    status = gr.Markdown(dataset_status(None))
    from ftassist import config

    # Start from the machine the app runs on; the person can still answer for another one.
    defaults = guide.Answers(hardware=config.hardware_class())
    inputs = []
    with gr.Row():
        with gr.Column():
            for q in guide.QUESTIONS[:5]:
                inputs.append(_component(q, getattr(defaults, q.key)))
        with gr.Column():
            for q in guide.QUESTIONS[5:]:
                inputs.append(_component(q, getattr(defaults, q.key)))
    button = gr.Button("Recommend", variant="primary")
    output = gr.Markdown(elem_id="decide-advice")
    button.click(ctx.bind(recommend_handler), inputs=[ctx.session, *inputs], outputs=[output, ctx.session],
                 api_name="recommend")
    # The Data tab writes the checked report into the session: say so as soon as it changes.
    ctx.session.change(dataset_status, inputs=[ctx.session], outputs=[status], api_visibility="private")
