"""The LLM assistant: an OpenAI-compatible chat model with the app's functions as tools.

Why tools rather than a long prompt: the model must not invent dollars or losses, so it is
told what the person has (a short context) and given the same tools as the no-key path
(`tools.schemas()`); it calls them, reads their JSON results and writes the answer. The loop
is capped (MAX_ITERATIONS model calls); past the cap the answer is built from the tool
results already in hand. The API key lives only in the client object of one request: it is
never put in the session, a log, an error message or the reply (`tools.scrub`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from . import actions, knowledge, tools
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


def context_summary(session: dict | None) -> str:
    """What the person has right now (dataset, decision, estimate, job), in a few lines for the system prompt."""
    s = session or {}
    lines = []
    report = s.get("report") or {}
    if report:
        lines.append(f"- Checked dataset: {report.get('n_examples', 0):,} valid examples, "
                     f"{len(report.get('errors') or []):,} errors, format {report.get('format')}.")
    elif s.get("dataset_path"):
        lines.append("- A dataset is uploaded but not checked yet.")
    else:
        lines.append("- No dataset uploaded yet.")
    if s.get("clean"):
        c = s["clean"]
        lines.append(f"- Split into {c.get('n_train', '?')} train / {c.get('n_valid', '?')} validation examples.")
    if s.get("guide"):
        g = s["guide"]
        lines.append(f"- Decide step recommended: {g.get('approach')} (method {g.get('method')}).")
    if s.get("estimate"):
        e = s["estimate"]
        lines.append(f"- Chosen estimate option: {e.get('label')} (cost {e.get('cost_usd')}).")
    if s.get("job_id"):
        lines.append(f"- Current training run: {s['job_id']} (use job_status / diagnose_loss).")
    p = actions.pending(s)
    if p:
        lines.append(f"- Waiting for the person's confirmation: {p['summary']}")
    return "\n".join(lines)


def system_prompt(session: dict | None) -> str:
    return (
        "You are the assistant inside ftassist, an app that guides people through fine-tuning LLMs: Decide "
        "(fine-tune or RAG), Data (check and split a dataset), Estimate (cost, memory, time), Train, Arena "
        "(compare models). Answer briefly and concretely in Markdown.\n"
        "Rules: every number about cost, data or training must come from a tool result (estimate_cost, "
        "model_price, dataset_summary, diagnose_loss, job_status); quote the numbers and the assumptions the tool "
        "states. For concepts use explain_topic. You cannot run anything yourself: to check the data, estimate "
        "or start a training run, call propose_action; the person then presses Confirm. Never claim an action "
        "ran.\n\nThe person's current state:\n" + context_summary(session) +
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


def make_client(settings: LLMSettings):
    import openai

    return openai.OpenAI(api_key=settings.api_key, base_url=settings.base_url, max_retries=1, timeout=60.0)


def _tool_call_dict(tc: Any) -> dict:
    return {"id": tc.id, "type": "function",
            "function": {"name": tc.function.name, "arguments": tc.function.arguments or "{}"}}


def chat(message: str, history: list | None, session: dict | None, settings: LLMSettings,
         max_iterations: int = MAX_ITERATIONS, client: Any = None) -> Reply:
    """One assistant turn through the LLM with tools; raises LLMError (key-free message) when the model fails."""
    import openai

    work = dict(session or {})
    messages: list[dict] = [{"role": "system", "content": system_prompt(work)}, *history_messages(history),
                            {"role": "user", "content": message}]
    calls: list[dict] = []
    client = client or make_client(settings)
    text = None
    try:
        for _ in range(max(1, int(max_iterations))):
            resp = client.chat.completions.create(model=settings.model, messages=messages, tools=tools.schemas(),
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
                result = tools.call_tool(tc.function.name, tc.function.arguments, work)
                calls.append({"name": tc.function.name, "arguments": tc.function.arguments, "result": result})
                messages.append({"role": "tool", "tool_call_id": tc.id, "content": tools.result_for_llm(result)})
    except openai.APIError as exc:
        detail = getattr(exc, "message", None) or str(exc)
        status = getattr(exc, "status_code", None)
        raise LLMError(tools.scrub(f"{type(exc).__name__}{f' {status}' if status else ''}: {detail}",
                                   settings.api_key)[:300]) from None
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise LLMError(tools.scrub(f"{type(exc).__name__}: {exc}", settings.api_key)[:300]) from None
    if text is None:  # the cap: answer with what the tools returned
        found = [c["result"].get("text") or json.dumps(c["result"])[:500] for c in calls[-3:]]
        text = (f"(I stopped after {max_iterations} rounds of tool calls.) Here is what I found:\n\n"
                + "\n\n".join(found))
    p = actions.pending(work)
    if p and p is not (session or {}).get(actions.PENDING_KEY) and "Confirm" not in text:
        text += f"\n\n**Waiting for your confirmation**: {p['summary']} Press **Confirm** to run it."
    text = tools.scrub(text, settings.api_key)
    log.info("assistant LLM turn: model=%s tools=%s", settings.model, [c["name"] for c in calls])
    return Reply(text, work, "llm", calls, used_llm=True)
