"""The app's functions as the assistant's tools, shared by the no-key path and the LLM path.

Why one registry: the intent matcher and the LLM must give the same answer to the same
question, so both call these functions, which call the same core code as the tabs
(`guide.recommend`, `estimate.estimate_all`, `pricing.get_price`, the checked report,
`jobs.loss_points`). Each tool takes the session dict first (never shown to the LLM) and
returns a JSON-able dict with a Markdown `text`; the OpenAI `tools` schemas are generated
from the signatures and the docstrings' `Args:` sections, so they cannot drift apart.
A tool may change the session it is given (only `propose_action` does): callers pass a copy.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from typing import Any, Callable, Literal, Union

from . import knowledge

DEFAULT_TOKENS_PER_EXAMPLE = 500
MAX_RESULT_CHARS = 6000  # what one tool result may add to the LLM's context

TOOLS: dict[str, Callable[..., dict]] = {}


def tool(fn: Callable[..., dict]) -> Callable[..., dict]:
    TOOLS[fn.__name__] = fn
    return fn


# --------------------------------------------------------------------------- helpers


def scrub(text: str, secret: str | None = None) -> str:
    """Remove an API key (the given one, and anything shaped like one) from text shown or logged."""
    text = str(text)
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"\b(sk-[A-Za-z0-9_\-]{8,})", "sk-***", text)


def _money(x: float | None) -> str:
    if x is None:
        return "billed per hour"
    return f"${x:,.2f}" if x >= 0.01 else f"${x:.2g}"


def _report(session: dict | None) -> dict | None:
    r = (session or {}).get("report")
    return r if isinstance(r, dict) and r else None


def _token_means(report: dict | None) -> tuple[int | None, int | None]:
    """(mean tokens per example, mean reply tokens) of a checked report, rounded; Nones without one."""
    if not report:
        return None, None
    tokens = report.get("tokens") or {}
    per = tokens.get("per_example") or []
    if not per:
        return None, None
    mean = round(sum(per) / len(per))
    asst = tokens.get("assistant_per_example") or []
    out = round(sum(asst) / len(asst)) if asst else None
    return max(1, mean), (min(out, mean) if out is not None else None)


# --------------------------------------------------------------------------- the tools


@tool
def recommend_approach(
    session: dict,
    needs_current_info: bool | None = None,
    style_or_format: bool | None = None,
    domain_terminology: bool | None = None,
    n_examples: int | None = None,
    budget: Literal["low", "medium", "high"] | None = None,
    hardware: Literal["none", "consumer_gpu", "datacenter_gpu", "multi_gpu"] | None = None,
    data_can_leave: bool | None = None,
    high_volume: bool | None = None,
    tried_prompting: bool | None = None,
) -> dict:
    """Decide between fine-tuning, retrieval (RAG), both, or prompt engineering first, and pick the method
    (OpenAI, LoRA, QLoRA, full), with the reasons and pitfalls; uses the checked dataset's size when there is one.

    Args:
        needs_current_info: the answers depend on facts that change or live in documents (product docs, policies)
        style_or_format: the goal is a writing style, tone or output format
        domain_terminology: specialised vocabulary the base model handles badly
        n_examples: how many good examples the person has (ignored when a dataset was checked)
        budget: training budget
        hardware: GPUs available
        data_can_leave: the data may be sent to a provider such as OpenAI
        high_volume: latency and inference cost at scale matter
        tried_prompting: a good prompt with a few examples was already tried and fell short
    """
    from ftassist.plan import guide

    given = {k: v for k, v in dict(needs_current_info=needs_current_info, style_or_format=style_or_format,
                                    domain_terminology=domain_terminology, n_examples=n_examples, budget=budget,
                                    hardware=hardware, data_can_leave=data_can_leave, high_volume=high_volume,
                                    tried_prompting=tried_prompting).items() if v is not None}
    rec = guide.recommend(guide.Answers.from_dict(given), _report(session))
    assumed = [q.key for q in guide.QUESTIONS if q.key not in given]
    text = rec.to_markdown()
    return {"approach": rec.approach, "method": rec.method, "headline": rec.headline(), "reasons": rec.reasons,
            "pitfalls": [{"name": p.name, "remedy": p.remedy} for p in rec.pitfalls], "answers_used": given,
            "defaults_assumed_for": assumed, "text": text}


@tool
def estimate_cost(
    session: dict,
    n_examples: int | None = None,
    tokens_per_example: int | None = None,
    model: str | None = None,
    epochs: int | None = None,
    include_self_hosted: bool = False,
    method: Literal["lora", "qlora", "full"] | None = None,
    gpu: str | None = None,
) -> dict:
    """Training cost (and time for self-hosted options) computed by the Estimate step's code. Without n_examples and
    tokens_per_example it uses the checked dataset's exact token counts; otherwise N examples of T tokens each, T being
    the checked dataset's mean, else 500.

    Args:
        n_examples: number of training examples
        tokens_per_example: average tokens per example (prompt plus answer)
        model: an OpenAI model (e.g. gpt-4.1-mini) or an open base model (e.g. Qwen/Qwen2.5-7B); empty for all OpenAI models
        epochs: epochs; empty for OpenAI's auto rule
        include_self_hosted: also compare LoRA/QLoRA/full on each GPU
        method: only this self-hosted method (implies include_self_hosted)
        gpu: only this GPU for self-hosted options, e.g. H100, A100 80GB, RTX 4090, T4 (implies include_self_hosted)
    """
    from ftassist.plan import estimate as est
    from ftassist.plan import hardware as hw
    from ftassist.plan import pricing

    report = _report(session)
    mean, mean_out = _token_means(report)
    if n_examples is None and tokens_per_example is None and mean is not None:
        tin = est.tokens_from_report(report)
        assumption = (f"exact token counts of your checked dataset ({tin.n:,} examples, {tin.total:,} tokens, "
                      f"{tin.total / tin.n:,.0f} per example on average)")
    else:
        n = n_examples if n_examples is not None else (report or {}).get("n_examples")
        if not n:
            raise ValueError("How many examples? Ask e.g. 'how much for 5,000 examples on gpt-4.1-mini?', or check "
                             "your dataset in the Data tab for exact counts.")
        if tokens_per_example:
            t, out, why = int(tokens_per_example), None, "as you said"
        elif mean is not None:
            t, out, why = mean, mean_out, "the mean of your checked dataset"
        else:
            t, out, why = DEFAULT_TOKENS_PER_EXAMPLE, None, "a default guess: no dataset checked yet"
        tin = est.tokens_quick(int(n), t, out)
        how = ("leave out the number of examples to use your checked dataset's exact counts" if mean is not None
               else "check your dataset in the Data tab for exact counts")
        assumption = (f"{int(n):,} examples x **{t:,} tokens per example** ({why}). To change it, say e.g. "
                      f"\"with 800 tokens each\", or {how}")
    opts: dict[str, Any] = {"epochs": epochs or "auto", "allow_network": False,
                            "include_self_hosted": bool(include_self_hosted)}
    if model:
        try:
            opts["openai_models"] = [pricing.get_price(model).model]
        except ValueError:
            try:
                arch = hw.resolve_model(model, allow_network=False)
            except ValueError:
                names = ", ".join(pricing.model_names())
                raise ValueError(f"I don't know the model {model!r}. OpenAI models: {names}; open models: "
                                 "a catalogue id such as Qwen/Qwen2.5-7B or meta-llama/Llama-3.1-8B.") from None
            opts.update(include_openai=False, include_self_hosted=True, base_models=[arch.name])
    if method:
        opts.update(include_self_hosted=True, methods=[method])
    if gpu:
        opts.update(include_self_hosted=True, gpus=[hw.find_gpu(gpu).name])
    if (method or gpu) and not model:
        opts["include_openai"] = False
    prefer = ((session or {}).get("guide") or {}).get("method")
    if prefer:
        opts["prefer"] = prefer
    table = est.estimate_all(tin, est.EstimateOptions.from_dict(opts))
    rows = [r for r in table.rows if r.fits is not False]
    lines: list[str] = []
    openai_rows = [r for r in rows if r.kind == "openai"]
    if model and len(openai_rows) == 1 and not opts["include_self_hosted"]:
        r = openai_rows[0]
        lines.append(f"**{_money(r.cost_usd)}** to fine-tune **{r.model}** on {tin.n:,} examples "
                     f"({r.epochs} epochs, {r.trained_tokens:,} trained tokens).")
        lines += [f"- {r.how.get('epochs', '')}", f"- billed tokens per epoch: {r.how.get('billing_tokens', '')}",
                  f"- cost: {r.how.get('training_cost_usd', '')}"]
        if r.inference_cost_month_usd is not None:
            lines.append(f"- using it afterwards: {r.how.get('inference_cost_month_usd', '')}")
        if r.note:
            lines.append(f"- note: {r.note}")
    else:
        lines.append(f"**{table.recommendation}**")
        lines.append("")
        for r in openai_rows:
            lines.append(f"- {r.label}: **{_money(r.cost_usd)}** ({r.epochs} epochs, {r.trained_tokens:,} tokens)")
        hosted = sorted((r for r in rows if r.kind == "self_hosted" and r.cost_usd is not None),
                        key=lambda r: r.cost_usd)[:5]
        for r in hosted:
            lines.append(f"- {r.label}: **{_money(r.cost_usd)}**, about {est.duration(r.hours)} "
                         f"({r.memory_gb:.0f} GB of {r.gpu_memory_gb:g} GB)")
        lines.append(f"\n{table.inputs['epochs_how']}.")
    lines.append(f"\nAssumed: {assumption}.")
    data_rows = [{"id": r.id, "label": r.label, "cost_usd": r.cost_usd, "epochs": r.epochs,
                  "trained_tokens": r.trained_tokens, "hours": r.hours, "fits": r.fits,
                  "recommended": r.recommended} for r in rows][:20]
    return {"inputs": table.inputs, "rows": data_rows, "recommendation": table.recommendation,
            "assumption": assumption, "text": "\n".join(lines)}


@tool
def model_price(session: dict, model: str) -> dict:
    """An OpenAI model's fine-tuning prices (USD per 1M tokens) and per-example token limit.

    Args:
        model: the model name or alias, e.g. gpt-4.1-mini or gpt-4o-mini-2024-07-18
    """
    from ftassist.plan import pricing

    p = pricing.get_price(model)
    if p.billed_per_hour:
        train = f"${p.training_per_hour:g} per hour of training (reinforcement fine-tuning)"
    else:
        train = f"${p.training:g} per 1M training tokens"
    text = (f"**{p.model}**: training {train}; using the tuned model: input ${p.input:g}, cached input "
            f"${p.cached_input:g}, output ${p.output:g} per 1M tokens; at most {p.example_limit:,} tokens per example "
            f"(prices of {p.date}, {p.source}).")
    return {**{k: v for k, v in p.to_dict().items() if k != "overridden"}, "text": text}


@tool
def dataset_summary(session: dict) -> dict:
    """The checked dataset of this session: examples, errors by code with lines, checklist results, token statistics
    and whether it was split into train/validation."""
    report = _report(session)
    if not report:
        text = "No dataset has been checked in this session yet."
        if (session or {}).get("dataset_path"):
            text += " A dataset is uploaded: I can run the check on it (ask me 'check my data')."
        else:
            text += " Upload one in the **Data** tab (or press *Try with sample data*)."
        text += "\n\n" + knowledge.as_markdown(knowledge.get("data_quality"))
        return {"checked": False, "text": text}
    n = report.get("n_examples", 0)
    errors = report.get("errors") or []
    counts = report.get("error_counts") or {}
    warnings = report.get("warnings") or []
    checklist = report.get("checklist") or []
    stats = ((report.get("tokens") or {}).get("stats") or {}).get("total") or {}
    lines = [f"**{n:,} valid examples** out of {report.get('n_records', n):,} records "
             f"({report.get('format') or 'unknown'} format), {len(errors):,} error(s), {len(warnings):,} warning(s)."]
    if counts:
        lines.append("\n**Errors**")
        for code, c in list(counts.items())[:6]:
            where = [str(e.get("line")) for e in errors if e.get("code") == code][:5]
            first = next((e for e in errors if e.get("code") == code), {})
            lines.append(f"- `{code}` x{c} (lines {', '.join(where)}): {first.get('message', '')}"
                         + (f"; fix: {first['hint']}" if first.get("hint") else ""))
    if checklist:
        lines.append("\n**Checklist**")
        icon = {"pass": "✅", "warn": "⚠️", "fail": "❌"}
        for item in checklist:
            lines.append(f"- {icon.get(item.get('status'), '')} {item.get('title', item.get('id'))}: "
                         f"{item.get('summary', '')}")
    if stats:
        lines.append(f"\n**Tokens per example**: mean {stats.get('mean', 0):,.0f}, median {stats.get('median', 0):,.0f}, "
                     f"95% under {stats.get('p95', 0):,.0f}, longest {stats.get('max', 0):,}.")
    clean = (session or {}).get("clean") or {}
    if clean:
        lines.append(f"\nSplit: {clean.get('n_train', '?')} train / {clean.get('n_valid', '?')} validation examples.")
    nxt = []
    if errors:
        nxt.append("fix the errors listed above (or press **Fix & split** in the Data tab to drop invalid records)")
    if any(i.get("status") == "fail" for i in checklist):
        nxt.append("resolve the failing checklist items before paying for training")
    if not clean:
        nxt.append("press **Fix & split** to hold out a validation set (needed to see overfitting)")
    if n and n < 50:
        nxt.append(f"collect more examples: {n} is few (50-100 good ones is a sensible start)")
    if nxt:
        lines.append("\n**Next**: " + "; ".join(nxt) + ".")
    return {"checked": True, "n_examples": n, "n_errors": len(errors), "error_counts": counts,
            "n_warnings": len(warnings),
            "checklist": [{"id": i.get("id"), "status": i.get("status"), "summary": i.get("summary")} for i in checklist],
            "token_stats": stats, "split": clean or None, "text": "\n".join(lines)}


def _current_job(session: dict | None, job_id: str | None) -> dict | None:
    from ftassist.train import jobs

    job_id = job_id or (session or {}).get("job_id")
    latest_note = ""
    if not job_id:
        latest = jobs.list_jobs(limit=1)
        if not latest:
            return None
        job_id = latest[0]["id"]
        latest_note = "the most recent run (none was started in this session)"
    job = jobs.get_job(job_id)
    if job is None:
        raise ValueError(f"No training run {job_id!r}: the Train tab lists the runs.")
    if job.get("status") == "running":
        try:
            jobs.ingest(job_id)  # the newest events, so the answer is about now
            job = jobs.get_job(job_id) or job
        except Exception:  # noqa: BLE001 - answering from what is stored is fine
            pass
    job["which"] = latest_note
    return job


@tool
def diagnose_loss(session: dict, job_id: str | None = None) -> dict:
    """Why a training run's loss went up (or did not go down): reads the run's train and validation loss series and
    says whether it is overfitting, a learning-rate spike, divergence or a flat curve, with the numbers and remedies.

    Args:
        job_id: the run; empty for this session's current run (else the most recent one)
    """
    from ftassist.train import jobs

    from . import loss

    job = _current_job(session, job_id)
    if job is None:
        return {"job_id": None, "findings": [],
                "text": "There is no training run yet, so here is how to read the curves once there is one:\n\n"
                        + knowledge.as_markdown(knowledge.get("loss_curves"))}
    points = jobs.loss_points(job["id"])
    spec = job.get("spec") or {}
    lr = spec.get("learning_rate")
    if lr is None and spec:
        try:
            from ftassist.train.spec import JobSpec

            lr = JobSpec.from_dict(spec).resolved_learning_rate if spec.get("backend", "local") == "local" else None
        except (TypeError, ValueError):
            lr = None
    epoch_at_step = {}
    for e in jobs.job_events(job["id"], ("log", "eval")):
        if e.get("step") is not None and e.get("epoch") is not None:
            epoch_at_step[int(e["step"])] = float(e["epoch"])
    n_examples = ((session or {}).get("clean") or {}).get("n_train") or (_report(session) or {}).get("n_examples")
    findings = loss.diagnose(points, learning_rate=lr, epochs=spec.get("num_epochs"),
                             early_stopping_patience=spec.get("early_stopping_patience"),
                             n_examples=n_examples, epoch_at_step=epoch_at_step)
    n_train = sum(1 for p in points if p["series"] == "train")
    n_valid = len(points) - n_train
    head = (f"Run `{job['id']}`{' (' + job['which'] + ')' if job.get('which') else ''} "
            f"({job.get('method')} on {job.get('base_model')}, {job.get('status')}): "
            f"{n_train} training and {n_valid} validation loss points.\n\n")
    return {"job_id": job["id"], "status": job.get("status"),
            "findings": [{"kind": f.kind, "summary": f.summary, "remedies": f.remedies, "numbers": f.numbers}
                         for f in findings],
            "text": head + loss.to_markdown(findings)}


@tool
def job_status(session: dict, job_id: str | None = None) -> dict:
    """A training run's status, progress, losses, and the error with what to do when it failed.

    Args:
        job_id: the run; empty for this session's current run (else the most recent one)
    """
    from ftassist.train import jobs

    job = _current_job(session, job_id)
    if job is None:
        return {"job_id": None, "text": "No training run yet. Check and split a dataset, then start one in the "
                                        "**Train** tab (or ask me to start a run with tiny-random)."}
    p = jobs.progress(job["id"])
    parts = [f"Run `{job['id']}`{' (' + job['which'] + ')' if job.get('which') else ''}: **{job['status']}** "
             f"({job.get('backend')}, {job.get('method')} on "
             f"{job.get('base_model')})."]
    if p.get("total_steps"):
        parts.append(f"Step {p.get('step') or 0:,} of {p['total_steps']:,}"
                     + (f" ({p['fraction']:.0%})" if p.get("fraction") is not None else "")
                     + (f", about {p['eta_s'] / 60:.0f} min left" if p.get("eta_s") and job["status"] == "running" else "")
                     + ".")
    if job.get("first_loss") is not None and job.get("final_loss") is not None:
        parts.append(f"Training loss {job['first_loss']:.3f} → {job['final_loss']:.3f}"
                     + (f"; best validation loss {job['best_eval_loss']:.3f}" if job.get("best_eval_loss") is not None
                        else "") + ".")
    if job.get("error"):
        parts.append(f"Error: {job['error']}." + (f" What to do: {job['hint']}" if job.get("hint") else ""))
    if job.get("output_model"):
        parts.append(f"Output: `{job['output_model']}` (compare it with the base model in the Arena).")
    keep = ("id", "status", "backend", "base_model", "method", "error", "hint", "output_model", "first_loss",
            "final_loss", "best_eval_loss", "total_steps", "last_step")
    return {**{k: job.get(k) for k in keep}, "progress": p, "text": " ".join(parts)}


@tool
def explain_topic(session: dict, topic: Literal[tuple(knowledge.topic_ids())]) -> dict:  # type: ignore[valid-type]
    """The app's guidance on one topic: fine-tuning vs RAG, methods, pitfalls (overfitting, catastrophic forgetting,
    poor data, the wrong use case) with remedies, reading loss curves, the data quality checklist, OpenAI's rules.

    Args:
        topic: which topic
    """
    t = knowledge.get(topic)
    return {"topic": t.id, "title": t.title, "text": knowledge.as_markdown(t)}


@tool
def propose_action(
    session: dict,
    action: Literal["check", "estimate", "train"],
    base_model: str | None = None,
    method: Literal["lora", "qlora", "full"] | None = None,
    num_epochs: float | None = None,
    max_steps: int | None = None,
    use_chosen_option: bool = False,
) -> dict:
    """Propose an action for the person to confirm (nothing runs until they press Confirm): check the uploaded
    dataset, estimate every option for the checked dataset, or start a training run (tiny-random by default).

    Args:
        action: check | estimate | train
        base_model: train only: the base model (default tiny-random, a tiny model that trains in seconds on a CPU)
        method: train only: lora, qlora or full
        num_epochs: train only: epochs
        max_steps: train only: stop after this many steps
        use_chosen_option: train only: use the option chosen in the Estimate step (model, method, epochs)
    """
    from . import actions

    new, proposal = actions.propose(session, action, base_model=base_model, method=method, num_epochs=num_epochs,
                                    max_steps=max_steps, use_chosen_option=use_chosen_option)
    session.clear()
    session.update(new)
    return {"proposed": True, "action": action, "summary": proposal["summary"],
            "text": f"I can do this for you: {proposal['summary']}\n\nPress **Confirm** to run it, or **Cancel**."}


# --------------------------------------------------------------------------- schemas and calls

_PY_TO_JSON = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema_for(tp: Any) -> dict:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _schema_for(inner[0]) if len(inner) == 1 else {"anyOf": [_schema_for(a) for a in inner]}
    if origin is Literal:
        values = list(typing.get_args(tp))
        return {"type": "string", "enum": values}
    if tp in _PY_TO_JSON:
        return {"type": _PY_TO_JSON[tp]}
    return {"type": "string"}


def _arg_docs(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {arg: description}) from a docstring with an `Args:` section."""
    doc = inspect.cleandoc(doc or "")
    head, _, rest = doc.partition("Args:")
    args: dict[str, str] = {}
    current = None
    for line in rest.splitlines():
        m = re.match(r"\s*(\w+):\s*(.*)", line)
        if m and line.startswith(" " * 4) and not line.startswith(" " * 8):
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
    return " ".join(head.split()), args


def schema(name: str) -> dict:
    """The OpenAI chat-completions `tools` entry for one tool, from its signature and docstring."""
    fn = TOOLS[name]
    hints = typing.get_type_hints(fn)
    description, docs = _arg_docs(fn.__doc__ or "")
    props: dict[str, dict] = {}
    required: list[str] = []
    for pname, param in inspect.signature(fn).parameters.items():
        if pname == "session":
            continue
        prop = _schema_for(hints.get(pname, str))
        if pname in docs:
            prop["description"] = docs[pname]
        props[pname] = prop
        if param.default is inspect.Parameter.empty:
            required.append(pname)
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": props, "required": required, "additionalProperties": False},
    }}


def schemas() -> list[dict]:
    return [schema(n) for n in TOOLS]


def _coerce(value: Any, prop: dict) -> Any:
    t = prop.get("type")
    if value is None or value == "":
        return None
    if t == "integer" and isinstance(value, str):
        return int(float(value.replace(",", "").replace("_", "")))
    if t == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if t == "number" and isinstance(value, str):
        return float(value.replace(",", ""))
    if t == "boolean" and isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1")
    if "enum" in prop and value not in prop["enum"]:
        raise ValueError(f"must be one of {', '.join(map(str, prop['enum']))}, not {value!r}")
    return value


def call_tool(name: str, arguments: dict | str | None, session: dict) -> dict:
    """Run one tool by name with JSON arguments; errors come back as {"error": message} (never raised).

    `session` is changed in place by tools that propose actions: pass your own copy.
    """
    if name not in TOOLS:
        return {"error": f"unknown tool {name!r}; tools: {', '.join(TOOLS)}"}
    try:
        args = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else (arguments or {})
        if not isinstance(args, dict):
            raise ValueError("the arguments must be a JSON object")
        props = schema(name)["function"]["parameters"]["properties"]
        unknown = set(args) - set(props)
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(sorted(unknown))}; known: {', '.join(props)}")
        clean = {}
        for k, v in args.items():
            try:
                clean[k] = _coerce(v, props[k])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"argument {k}: {exc}") from None
        clean = {k: v for k, v in clean.items() if v is not None}
        return TOOLS[name](session, **clean)
    except Exception as exc:  # noqa: BLE001 - a tool's failure is information for the caller, not a crash
        return {"error": str(exc) or type(exc).__name__}


def result_for_llm(result: dict) -> str:
    """A tool result as the JSON string fed back to the LLM (bounded)."""
    text = json.dumps(result, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_RESULT_CHARS else text[: MAX_RESULT_CHARS - 20] + '..."(truncated)"'
