"""How the assistant uses a tool: at once, or as a proposal the person confirms.

Why two steps: a use case registered with `confirm=True` changes the person's work or costs time
or money (a check that replaces the report, a training run), so neither the LLM nor the intent
matcher runs it: it becomes `session.pending_action` ({"use_case", "arguments", "summary"}) and
the panel shows a Confirm button; `confirm` then runs it with `registry.call`, exactly as the
CLI or a tab would. Nothing here imports gradio; errors come back as messages, never raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ftassist.data.clean import CleanResult
from ftassist.redact import scrub
from ftassist.usecases import arena, data, training
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Dataset, Session

from . import tools

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One tool use: its JSON result (with "error" when it failed) and the session after it."""

    result: dict
    session: Session

    @property
    def failed(self) -> bool:
        return "error" in self.result


def use(ctx: Context, name: str, arguments: dict | str | None, session: Session) -> Outcome:
    """Run tool `name`, or propose it when its use case needs the person's confirmation."""
    try:
        case = tools.find(name)
        parsed = tools.parse_arguments(case, arguments)
        if case.confirm:
            return propose(session, name, parsed)
        return Outcome(tools.as_result(tools.run(ctx, case, parsed, session)), session)
    except UseCaseError as exc:
        return Outcome({"error": str(exc)}, session)


def _summary(case_summary: str, arguments: dict[str, Any]) -> str:
    shown = [f"{k.replace('_', ' ')} {v}" for k, v in arguments.items() if v not in (None, "", False)]
    return case_summary.rstrip(".") + (f" ({', '.join(shown)})" if shown else "") + "."


def propose(session: Session, name: str, arguments: dict[str, Any], summary: str | None = None) -> Outcome:
    """`session` waiting for the person to confirm use case `name`; nothing runs. `summary`: the sentence shown
    above the Confirm button (default: the use case's first docstring line and the arguments)."""
    case = tools.find(name)
    summary = summary or _summary(case.summary, arguments)
    proposal = {"use_case": name, "arguments": arguments, "summary": summary}
    text = f"I can do this for you: {summary}\n\nPress **Confirm** to run it, or **Cancel**."
    return Outcome({"proposed": True, "use_case": name, "summary": summary, "text": text}, session.proposed(proposal))


def cancel(session: Session) -> tuple[str, Session]:
    had = session.pending_action is not None
    return ("Cancelled: nothing was run." if had else "There was nothing waiting for confirmation."), \
        session.proposed(None)


def confirm(ctx: Context, session: Session, api_key: str | None = None) -> tuple[str, Session]:
    """Run the pending use case; returns (Markdown message, the session after it). The proposal is consumed.

    `api_key` (typed in the page) is handed to a use case that takes one (an OpenAI run) and is never stored.
    """
    proposal = session.pending_action
    session = session.proposed(None)
    if not proposal or not proposal.get("use_case"):
        return "There is nothing to confirm: ask me to check the data, estimate or start a run.", session
    name = proposal["use_case"]
    try:
        case = tools.find(name)
        result = tools.run(ctx, case, dict(proposal.get("arguments") or {}), session, api_key)
    except UseCaseError as exc:
        return f"Could not run it: {scrub(exc, api_key)}", session
    except (OSError, ValueError, KeyError) as exc:  # a file that vanished since the proposal, a bad stored proposal
        log.warning("confirmed %s failed: %s", name, scrub(f"{type(exc).__name__}: {exc}", api_key))
        return f"Could not run it: {scrub(exc, api_key)}", session
    session = after(session, name, proposal.get("arguments") or {}, result)
    shown = tools.as_result(result)
    text = shown.get("text") or shown.get("message") or ""
    if isinstance(result, data.CheckResult):  # what the Data tab shows after a check
        text = use(ctx, "dataset_summary", {}, session).result.get("text", "")
    return scrub(f"Done: {proposal.get('summary', name)}" + (f"\n\n{text}" if text else ""), api_key), session


def after(session: Session, name: str, arguments: dict[str, Any], result: Any) -> Session:
    """The session once a confirmed use case ran: the one it returns, else the step it completed (as the tab
    that does the same step would record it)."""
    returned = result if isinstance(result, Session) else getattr(result, "session", None)
    if isinstance(returned, Session):
        return returned.proposed(None)
    if isinstance(result, data.CheckResult):
        return session.checked(Dataset(path=result.path, report=result.report, model=arguments.get("model")))
    if isinstance(result, CleanResult):
        return session.split_into(data.split_of(result))
    if isinstance(result, training.RunStarted):
        return session.selected_run(result.run_id)
    if isinstance(result, arena.RegisteredModel):
        return session.registered_model(result.id)
    if isinstance(result, arena.RemovedModel):
        return session.forgot_model(result.id)
    return session
