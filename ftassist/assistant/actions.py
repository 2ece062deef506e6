"""Actions the assistant may propose and the person confirms: check the data, estimate, start a run.

Why two steps: running a check, replacing the chosen estimate or starting a training run
changes the person's work (and a run costs time or money), so the assistant only *proposes*:
the proposal is stored in the session under PENDING_KEY and the UI shows a Confirm button;
`execute` runs it with the same core functions the tabs call (`check_path`,
`estimate_from_report`, `jobs.start_job`). Nothing here imports gradio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PENDING_KEY = "assistant_pending"
ACTIONS = ("check", "estimate", "train")
LOCAL_METHODS = ("lora", "qlora", "full")


class ActionError(ValueError):
    """The action cannot be proposed or run; the message says what to do first."""


def pending(session: dict | None) -> dict | None:
    return (session or {}).get(PENDING_KEY)


def _train_data(session: dict) -> tuple[str, str | None, str]:
    """(train file, valid file or None, where they come from) for a run from this session."""
    clean = session.get("clean") or {}
    if clean.get("train"):
        valid = clean.get("valid") if clean.get("n_valid", 1) else None
        return clean["train"], valid, (f"the split from the Data step ({clean.get('n_train', '?')} train / "
                                       f"{clean.get('n_valid', '?')} validation examples)")
    if session.get("dataset_path"):
        return session["dataset_path"], None, ("the uploaded dataset, unsplit (no validation set: press Fix & split "
                                               "in the Data tab first to see overfitting)")
    raise ActionError("There is no dataset yet: upload and check one in the Data tab (or press "
                      "'Try with sample data'), then ask me again.")


def propose(session: dict | None, action: str, base_model: str | None = None, method: str | None = None,
            num_epochs: float | None = None, max_steps: int | None = None,
            use_chosen_option: bool = False) -> tuple[dict, dict]:
    """Store a proposal in a copy of the session; returns (session, proposal).

    `proposal` = {"action", "args", "summary"}: `summary` is the sentence shown above the
    Confirm button. Raises ActionError when the session lacks what the action needs.
    """
    session = dict(session or {})
    if action not in ACTIONS:
        raise ActionError(f"Unknown action {action!r}: I can propose {', '.join(ACTIONS)}.")
    args: dict[str, Any] = {}
    if action == "check":
        path = session.get("dataset_path")
        if not path:
            raise ActionError("No dataset uploaded yet: upload one in the Data tab (or use the sample data), "
                              "then ask me to check it.")
        args["path"] = path
        summary = f"Run the dataset check on `{Path(path).name}` (errors, checklist and exact token counts)."
    elif action == "estimate":
        if not (session.get("report") or {}).get("tokens"):
            raise ActionError("No checked dataset yet: the estimate uses its exact token counts. Ask me to check "
                              "the dataset first, or ask e.g. 'how much for 2,000 examples on gpt-4.1-mini?'.")
        prefer = (session.get("guide") or {}).get("method")
        args["prefer"] = prefer
        n = session["report"].get("n_examples", 0)
        summary = (f"Estimate every option (OpenAI models, LoRA/QLoRA/full per GPU) for the checked dataset "
                   f"({n:,} examples) and choose the recommended one for training"
                   + (f", preferring {prefer} as the Decide step suggested" if prefer else "") + ".")
    else:
        train_file, valid_file, source = _train_data(session)
        est = session.get("estimate") or {}
        spec: dict[str, Any] = {"backend": "local", "base_model": base_model or "tiny-random",
                                "train_file": train_file, "valid_file": valid_file}
        if use_chosen_option and est.get("kind") == "openai":
            spec.update(backend="openai", base_model=est["model"], openai={"model": est["model"]}, method="lora")
        elif use_chosen_option and est.get("kind") == "self_hosted" and not base_model:
            spec["base_model"] = est.get("model") or "tiny-random"
        if spec["backend"] == "local":
            m = method or (est.get("method") if est.get("method") in LOCAL_METHODS else None) or "lora"
            if m not in LOCAL_METHODS:
                raise ActionError(f"Unknown method {m!r}: use lora, qlora or full.")
            spec["method"] = m
        if num_epochs:
            spec["num_epochs"] = float(num_epochs)
        elif est.get("epochs") and use_chosen_option:
            spec["num_epochs"] = float(est["epochs"])
        if max_steps:
            spec["max_steps"] = int(max_steps)
        args["spec"] = spec
        where = ("OpenAI fine-tuning of " + spec["base_model"]) if spec["backend"] == "openai" else (
            f"{spec['method'].upper() if spec['method'] != 'full' else 'full fine-tuning'} on {spec['base_model']}")
        summary = (f"Start a training run: {where}, {spec.get('num_epochs', 3):g} epochs"
                   + (f" (at most {spec['max_steps']} steps)" if spec.get("max_steps") else "")
                   + f", on {source}.")
    proposal = {"action": action, "args": args, "summary": summary}
    session[PENDING_KEY] = proposal
    return session, proposal


def cancel(session: dict | None) -> tuple[str, dict]:
    session = dict(session or {})
    had = session.pop(PENDING_KEY, None)
    return ("Cancelled: nothing was run." if had else "There was nothing waiting for confirmation."), session


def execute(session: dict | None, api_key: str | None = None) -> tuple[str, dict]:
    """Run the pending action; returns (Markdown message, updated session). The proposal is consumed.

    `api_key` is only for an OpenAI training run (handed to the worker's environment, never stored).
    Errors come back as a message saying what to do, never as an exception.
    """
    session = dict(session or {})
    proposal = session.pop(PENDING_KEY, None)
    if not proposal:
        return "There is nothing to confirm: ask me to check the data, estimate or start a run.", session
    action, args = proposal["action"], proposal.get("args") or {}
    try:
        if action == "check":
            return _run_check(session, args)
        if action == "estimate":
            return _run_estimate(session, args)
        if action == "train":
            return _run_train(session, args, api_key)
    except ActionError as exc:
        return f"Could not {action}: {exc}", session
    except (ValueError, OSError, KeyError) as exc:
        from .tools import scrub

        return f"Could not {action}: {scrub(str(exc), api_key)}", session
    return f"Unknown action {action!r}: nothing was run.", session


def _run_check(session: dict, args: dict) -> tuple[str, dict]:
    from ftassist.data.check import check_path
    from ftassist.data.load import LoadError

    from .tools import dataset_summary

    path = args["path"]
    model = (session.get("report") or {}).get("model")
    try:
        limit = None
        try:
            from ftassist.commands.data import context_limit_for

            limit = context_limit_for(model)
        except Exception:  # noqa: BLE001 - the limit is a refinement; the check runs without it
            limit = None
        report = check_path(path, model=model, context_limit=limit)
    except LoadError as exc:
        raise ActionError(str(exc)) from None
    session["report"] = report.to_dict()
    session.pop("clean", None)
    return "Done: the dataset is checked (the Data tab shows the same report).\n\n" + dataset_summary(session)["text"], session


def _run_estimate(session: dict, args: dict) -> tuple[str, dict]:
    from ftassist.plan.estimate import EstimateOptions, estimate_from_report

    report = session.get("report")
    if not report:
        raise ActionError("the dataset is not checked any more: check it first.")
    table = estimate_from_report(report, EstimateOptions(prefer=args.get("prefer"), allow_network=False))
    rec = table.recommended
    if rec is not None:
        from dataclasses import asdict

        session["estimate"] = asdict(rec)
    lines = [f"Done: **{table.recommendation}**", "", f"{table.inputs['n_examples']:,} examples, "
             f"{table.inputs['total_tokens']:,} tokens; {table.inputs['epochs_how']}.", ""]
    openai_rows = [r for r in table.rows if r.kind == "openai" and r.cost_usd is not None]
    lines += [f"- {r.label}: ${r.cost_usd:,.2f}" for r in openai_rows]
    fitting = sorted((r for r in table.rows if r.kind == "self_hosted" and r.fits), key=lambda r: r.cost_usd)[:3]
    lines += [f"- {r.label}: ${r.cost_usd:,.2f}, about {r.hours:.2g} h" for r in fitting]
    lines.append("\nThe chosen option is now prefilled in the Train tab; the Estimate tab shows every option.")
    return "\n".join(lines), session


def _run_train(session: dict, args: dict, api_key: str | None) -> tuple[str, dict]:
    from ftassist.train import jobs
    from ftassist.train.spec import JobSpec

    spec = JobSpec.from_dict(args["spec"])
    for key in ("train_file", "valid_file"):
        value = getattr(spec, key)
        if value and not Path(value).is_file():
            raise ActionError(f"{key} {value} no longer exists: check and split the dataset again.")
    try:
        job_id = jobs.start_job(spec, api_key=api_key)
    except jobs.JobError as exc:
        raise ActionError(str(exc)) from None
    session["job_id"] = job_id
    return (f"Started training run `{job_id}` ({spec.method} on {spec.base_model}). Follow it in the Train tab; "
            "ask me 'how is my training going?' or 'why did my loss go up?' at any time."), session
