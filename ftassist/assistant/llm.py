"""The LLM assistant: an OpenAI-compatible chat model with the app's functions as tools.

Why tools rather than a long prompt: the model must not invent dollars or losses, so it is
told what the person has (a short context) and given the app's use cases as tools
(`tools.schemas()`); it calls them, reads their JSON results and writes the answer. A use case
that needs the person's confirmation is proposed, not run (`actions.use`). The loop is capped
(MAX_ITERATIONS model calls); past the cap the answer is built from the tool results already in
hand. The API key lives only in the client object of one request: it is never put in the
session, a log, an error message or the reply (`redact.scrub`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from ftassist.redact import scrub
from ftassist.usecases.context import Context
from ftassist.usecases.session import Session

from ftassist.plan import knowledge

from . import actions, tools
from .intents import Reply

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4.1-mini"
MAX_ITERATIONS = 5
HISTORY_TURNS = 12  # earlier messages sent along (the person's and the assistant's)
MODEL_ENV = "FTASSIST_ASSISTANT_MODEL"
BASE_URL_ENV = "OPENAI_BASE_URL"
KEY_ENV = "OPENAI_API_KEY"


class LLMError(RuntimeError):
    """The model could not be reached or answered badly; the message holds no secret."""


@dataclass
class LLMSettings:
    api_key: str
    base_url: str | None = None
    model: str = DEFAULT_MODEL

    def __repr__(self) -> str:  # never print the key
        return f"LLMSettings(base_url={self.base_url!r}, model={self.model!r}, api_key=***)"


def resolve_settings(api_key: str | None = None, base_url: str | None = None,
                     model: str | None = None) -> LLMSettings | None:
    """The typed key (else OPENAI_API_KEY), base URL (else OPENAI_BASE_URL) and model; None without a key."""
    key = (api_key or "").strip() or os.environ.get(KEY_ENV, "").strip()
    if not key:
        return None
    return LLMSettings(api_key=key, base_url=(base_url or "").strip() or os.environ.get(BASE_URL_ENV) or None,
                       model=(model or "").strip() or os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


def context_summary(session: Session) -> str:
    """What the person has right now (decision, dataset, split, option, run), in a few lines for the system prompt."""
    lines = []
    if session.decision is not None:
        d = session.decision
        given = ", ".join(f"{k}={v}" for k, v in d.answers.items()) or "none"
        objective = (d.recommendation or {}).get("objective")
        then = (d.recommendation or {}).get("then_objective")
        learns = f", objective {objective}" + (f" then {then} from the {objective} run" if then else "") \
            if objective else ""
        lines.append(f"- Decide step recommended: {d.approach} (method {d.method}){learns}; answers given: {given}. "
                     "advise_approach starts from these answers: pass only what the person says differently.")
    if session.dataset is not None:
        lines.append(f"- Checked dataset: {session.dataset.n_examples:,} valid examples, "
                     f"{session.dataset.n_errors:,} errors, format {session.report.get('format')}.")
    else:
        lines.append("- No dataset checked yet.")
    if session.split is not None:
        lines.append(f"- Split into {session.split.counts()} examples.")
    if session.option:
        lines.append(f"- Chosen estimate option: {session.option.get('label')} (cost {session.option.get('cost_usd')}, "
                     f"objective {session.option.get('objective') or 'sft'}).")
    if session.run_id:
        lines.append(f"- Current training run: {session.run_id} (start_from for a DPO run after it, SFT then DPO).")
    if session.model_ids:
        lines.append(f"- Arena models this person registered: {', '.join(session.model_ids)} (train_on_votes takes one).")
    if session.pending_action:
        lines.append(f"- Waiting for the person's confirmation: {session.pending_action.get('summary')}")
    return "\n".join(lines)


def system_prompt(session: Session) -> str:
    return (
        "You are the assistant inside ftassist, an app that guides people through fine-tuning LLMs: Decide "
        "(fine-tune or RAG), Data (check and split a dataset), Estimate (cost, memory, time), Train, Arena "
        "(compare models). Answer briefly and concretely in Markdown.\n"
        "Rules: every number about cost, data or training must come from a tool result; quote the numbers and "
        "the assumptions the tool states. For concepts use explain_topic. Tools that change the person's work "
        "(checking the data, estimating, starting a run, training on votes) are only proposed when you call them: the person then "
        "presses Confirm. Never claim such an action ran.\n\nThe person's current state:\n"
        + context_summary(session) +
        "\n\nGuidance topics (explain_topic):\n" + knowledge.overview()
    )


def history_messages(history: list | None) -> list[dict]:
    """Gradio `messages` history -> OpenAI messages (text only, user/assistant roles, the last HISTORY_TURNS)."""
    out = []
    for m in history or []:
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in content
                               if isinstance(c, (dict, str)))
        if isinstance(content, dict):
            content = content.get("text") or ""
        if isinstance(content, str) and content.strip():
            out.append({"role": m["role"], "content": content})
    return out[-HISTORY_TURNS:]


def make_client(settings: LLMSettings) -> "openai.OpenAI":  # noqa: F821 - imported when called
    import openai  # the SDK is imported on the LLM path only, never at app start

    return openai.OpenAI(api_key=settings.api_key, base_url=settings.base_url, max_retries=1, timeout=60.0)


def _tool_call_dict(tc: Any) -> dict:
    return {"id": tc.id, "type": "function",
            "function": {"name": tc.function.name, "arguments": tc.function.arguments or "{}"}}


def chat(ctx: Context, message: str, history: list | None, session: Session, settings: LLMSettings,
         max_iterations: int = MAX_ITERATIONS, client: Any = None) -> Reply:
    """One assistant turn through the LLM with tools; raises LLMError (key-free message) when the model fails."""
    import openai  # the SDK is imported on the LLM path only, never at app start

    before = session.pending_action
    messages: list[dict] = [{"role": "system", "content": system_prompt(session)}, *history_messages(history),
                            {"role": "user", "content": message}]
    calls: list[dict] = []
    client = client or make_client(settings)
    text = None
    try:
        offered = tools.schemas()
        for _ in range(max(1, int(max_iterations))):
            resp = client.chat.completions.create(model=settings.model, messages=messages, tools=offered,
                                                  tool_choice="auto")
            if not getattr(resp, "choices", None):
                raise LLMError("the model returned no answer")
            msg = resp.choices[0].message
            if not msg.tool_calls:
                text = msg.content or ""
                break
            messages.append({"role": "assistant", "content": msg.content or None,
                             "tool_calls": [_tool_call_dict(tc) for tc in msg.tool_calls]})
            for tc in msg.tool_calls:
                outcome = actions.use(ctx, tc.function.name, tc.function.arguments, session)
                session = outcome.session
                calls.append({"name": tc.function.name, "arguments": tc.function.arguments, "result": outcome.result})
                messages.append({"role": "tool", "tool_call_id": tc.id, "content": tools.result_for_llm(outcome.result)})
    except openai.APIError as exc:
        detail = getattr(exc, "message", None) or str(exc)
        status = getattr(exc, "status_code", None)
        raise LLMError(scrub(f"{type(exc).__name__}{f' {status}' if status else ''}: {detail}",
                             settings.api_key, limit=300)) from None
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise LLMError(scrub(f"{type(exc).__name__}: {exc}", settings.api_key, limit=300)) from None
    if text is None:  # the cap: answer with what the tools returned
        found = [c["result"].get("text") or json.dumps(c["result"])[:500] for c in calls[-3:]]
        text = (f"(I stopped after {max_iterations} rounds of tool calls.) Here is what I found:\n\n"
                + "\n\n".join(found))
    pending = session.pending_action
    if pending and pending != before and "Confirm" not in text:
        text += f"\n\n**Waiting for your confirmation**: {pending['summary']} Press **Confirm** to run it."
    text = scrub(text, settings.api_key)
    log.info("assistant LLM turn: model=%s tools=%s", settings.model, [c["name"] for c in calls])
    return Reply(text, session, "llm", calls, used_llm=True)
