"""Use cases that answer questions: guidance topics, the checked dataset, a cost, a price, a run's loss.

Why here and not in the assistant: they are what a person asks about their work, answered from
the stations and the session, so the CLI (or a tab) can ask them too; the assistant only offers
them to its LLM as tools and quotes their `text`. Each result carries the figures (for the LLM to
quote) and a Markdown `text` (what the no-key path shows as is).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from ftassist.plan import knowledge
from ftassist.train import loss_rules as loss
from ftassist.formatting import format_duration, format_money
from ftassist.plan import estimate, guide, hardware, pricing
from ftassist.train.spec import JobSpec

from . import planning, training
from .context import Context, NotFound, UseCaseError
from .registry import use_case
from .session import Session

DEFAULT_TOKENS_PER_EXAMPLE = 500  # a guess for a cost question asked before any dataset is checked
TopicId = Literal[tuple(knowledge.topic_ids())]  # type: ignore[valid-type]


# -- guidance -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Guidance:
    topic: str
    title: str
    text: str


@use_case(assistant=True)
def explain_topic(ctx: Context, topic: TopicId) -> Guidance:
    """The app's guidance on one topic: fine-tuning vs RAG, methods, pitfalls (overfitting, catastrophic
    forgetting, poor data, the wrong use case) with remedies, reading loss curves, the data checklist, OpenAI's rules.

    Args:
        topic: which topic
    """
    try:
        found = knowledge.get(topic)
    except KeyError:
        raise NotFound(f"There is no topic {topic!r}; topics: {', '.join(knowledge.topic_ids())}.") from None
    return Guidance(found.id, found.title, knowledge.as_markdown(found))


# -- the approach, from the Decide answers --------------------------------------------------------------
@dataclass(frozen=True)
class Advice:
    approach: str
    method: str | None
    headline: str
    reasons: list[str]
    pitfalls: list[dict[str, str]]
    answers_used: dict[str, Any]  # what the advice rests on: the Decide answers, overridden by the question's
    from_decide_step: list[str]  # which of them came from the Decide step of this session
    defaults_assumed_for: list[str]
    text: str
    objective: str | None = None  # sft | dpo: what the first run learns from (None when not fine-tuning)
    then_objective: str | None = None  # "dpo": SFT first, then DPO from the SFT run


@use_case(assistant=True)
def advise_approach(
    ctx: Context,
    session: Session | None = None,
    needs_current_info: bool | None = None,
    style_or_format: bool | None = None,
    domain_terminology: bool | None = None,
    n_examples: int | None = None,
    budget: Literal["low", "medium", "high"] | None = None,
    hardware: Literal["none", "consumer_gpu", "datacenter_gpu", "multi_gpu"] | None = None,
    data_can_leave: bool | None = None,
    high_volume: bool | None = None,
    tried_prompting: bool | None = None,
    openai_customer: bool | None = None,
    model_does_task: bool | None = None,
    has_preference_data: bool | None = None,
) -> Advice:
    """Fine-tuning, retrieval (RAG), both, or prompt engineering first, which method (OpenAI, LoRA, QLoRA,
    full) and which objective (SFT, DPO, or SFT then DPO), with reasons and pitfalls. Starts from the answers
    given in the Decide step; pass only what the person says differently. Uses the checked dataset's size when
    there is one.

    Args:
        session: the person's session (its Decide answers and checked dataset)
        needs_current_info: the answers depend on facts that change or live in documents (product docs, policies)
        style_or_format: the goal is a writing style, tone or output format
        domain_terminology: specialised vocabulary the base model handles badly
        n_examples: how many good examples the person has (ignored when a dataset was checked)
        budget: training budget
        hardware: GPUs available
        data_can_leave: the data may be sent to a provider such as OpenAI
        high_volume: latency and inference cost at scale matter
        tried_prompting: a good prompt with a few examples was already tried and fell short
        openai_customer: the person's organisation is an active OpenAI fine-tuning customer (OpenAI takes no
            one else's jobs, and nobody's after 2027-01-06)
        model_does_task: the model already does the task in the right format, and people prefer some of its answers
        has_preference_data: there are pairs of a better and a worse answer to the same prompt, or arena votes
            (with model_does_task: DPO; without: SFT first, then DPO)
    """
    session = session or Session()
    decided = dict(session.decision.answers) if session.decision is not None else {}
    said = {k: v for k, v in dict(
        needs_current_info=needs_current_info, style_or_format=style_or_format,
        domain_terminology=domain_terminology, n_examples=n_examples, budget=budget, hardware=hardware,
        data_can_leave=data_can_leave, high_volume=high_volume, tried_prompting=tried_prompting,
        openai_customer=openai_customer, model_does_task=model_does_task,
        has_preference_data=has_preference_data).items()
        if v is not None}
    answers = {k: v for k, v in {**decided, **said}.items() if v is not None and v != ""}
    advice = planning.recommend_approach(ctx, answers, session.report)
    decision = advice.decision
    from_decide = sorted(k for k in answers if k in decided and k not in said)
    text = advice.markdown
    if from_decide:
        text = ("Starting from your answers in the Decide step"
                + (" and what you just said" if said else "") + f".\n\n{text}")
    recommendation = decision.recommendation
    return Advice(decision.approach, decision.method, decision.headline, list(recommendation.get("reasons") or []),
                  [{"name": p["name"], "remedy": p["remedy"]} for p in recommendation.get("pitfalls") or []],
                  answers, from_decide, [q.key for q in guide.QUESTIONS if q.key not in answers], text,
                  recommendation.get("objective"), recommendation.get("then_objective"))


# -- the checked dataset --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetSummary:
    checked: bool
    text: str
    n_examples: int = 0
    n_errors: int = 0
    n_warnings: int = 0
    error_counts: dict[str, int] = field(default_factory=dict)
    checklist: list[dict[str, Any]] = field(default_factory=list)
    token_stats: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] | None = None


@use_case(assistant=True)
def dataset_summary(ctx: Context, session: Session | None = None) -> DatasetSummary:
    """The checked dataset of this session: examples, errors by code with their lines, checklist results, token
    statistics, whether it was split into train/validation, and what to do next.

    Args:
        session: the person's session (its checked dataset and split)
    """
    session = session or Session()
    report = session.report
    if not report:
        return DatasetSummary(False, "No dataset has been checked in this session yet. Upload one in the **Data** "
                                     "tab (or press *Try with sample data*).\n\n"
                                     + knowledge.as_markdown(knowledge.get("data_quality")))
    n = int(report.get("n_examples") or 0)
    errors = report.get("errors") or []
    counts = report.get("error_counts") or {}
    warnings = report.get("warnings") or []
    checklist = report.get("checklist") or []
    stats = ((report.get("tokens") or {}).get("stats") or {}).get("total") or {}
    lines = [f"**{n:,} valid examples** out of {report.get('n_records', n):,} records "
             f"({report.get('format') or 'unknown'} format), {len(errors):,} error(s), {len(warnings):,} warning(s)."]
    if counts:
        lines.append("\n**Errors**")
        for code, count in list(counts.items())[:6]:
            where = [str(e.get("line")) for e in errors if e.get("code") == code][:5]
            first = next((e for e in errors if e.get("code") == code), {})
            lines.append(f"- `{code}` x{count} (lines {', '.join(where)}): {first.get('message', '')}"
                         + (f"; fix: {first['hint']}" if first.get("hint") else ""))
    if checklist:
        lines.append("\n**Checklist**")
        icon = {"pass": "✅", "warn": "⚠️", "fail": "❌"}
        lines += [f"- {icon.get(item.get('status'), '')} {item.get('title', item.get('id'))}: {item.get('summary', '')}"
                  for item in checklist]
    if stats:
        lines.append(f"\n**Tokens per example**: mean {stats.get('mean', 0):,.0f}, median {stats.get('median', 0):,.0f}, "
                     f"95% under {stats.get('p95', 0):,.0f}, longest {stats.get('max', 0):,}.")
    split = session.split
    if split is not None:
        lines.append(f"\nSplit: {split.counts()} examples.")
    next_steps = []
    if errors:
        next_steps.append("fix the errors listed above (or press **Fix & split** in the Data tab to drop invalid records)")
    if any(i.get("status") == "fail" for i in checklist):
        next_steps.append("resolve the failing checklist items before paying for training")
    if split is None:
        next_steps.append("press **Fix & split** to hold out a validation set (needed to see overfitting)")
    if n and n < 50:
        next_steps.append(f"collect more examples: {n} is few (50-100 good ones is a sensible start)")
    if next_steps:
        lines.append("\n**Next**: " + "; ".join(next_steps) + ".")
    return DatasetSummary(
        True, "\n".join(lines), n, len(errors), len(warnings), dict(counts),
        [{"id": i.get("id"), "status": i.get("status"), "summary": i.get("summary")} for i in checklist],
        dict(stats), {"n_train": split.n_train, "n_valid": split.n_valid} if split is not None else None)


# -- cost and prices ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostQuote:
    inputs: dict[str, Any]
    rows: list[dict[str, Any]]
    recommendation: str
    assumption: str  # what the figures rest on, in words (the person can change it)
    text: str


def _token_means(report: dict | None) -> tuple[int | None, int | None]:
    """(mean tokens per example, mean reply tokens) of a checked report; Nones without one."""
    tokens = (report or {}).get("tokens") or {}
    per = tokens.get("per_example") or []
    if not per:
        return None, None
    mean = max(1, round(sum(per) / len(per)))
    replies = tokens.get("assistant_per_example") or []
    reply_mean = round(sum(replies) / len(replies)) if replies else None
    return mean, (min(reply_mean, mean) if reply_mean is not None else None)


@use_case(assistant=True)
def estimate_cost(
    ctx: Context,
    session: Session | None = None,
    n_examples: int | None = None,
    tokens_per_example: int | None = None,
    model: str | None = None,
    epochs: int | None = None,
    include_self_hosted: bool = False,
    method: Literal["lora", "qlora", "full"] | None = None,
    gpu: str | None = None,
) -> CostQuote:
    """Training cost (and time, for self-hosted options) by the Estimate step's code. Without n_examples and
    tokens_per_example it uses the checked dataset's exact token counts; otherwise N examples of T tokens each,
    T being the checked dataset's mean, else 500.

    Args:
        session: the person's session (its checked dataset and the method the Decide step suggested)
        n_examples: number of training examples
        tokens_per_example: average tokens per example (prompt plus answer)
        model: an OpenAI model (e.g. gpt-4.1-mini) or an open base model (e.g. Qwen/Qwen2.5-7B); empty for all OpenAI models
        epochs: epochs; empty for OpenAI's auto rule
        include_self_hosted: also compare LoRA/QLoRA/full on each GPU
        method: only this self-hosted method (implies include_self_hosted)
        gpu: only this GPU for self-hosted options, e.g. H100, A100 80GB, RTX 4090, T4 (implies include_self_hosted)
    """
    session = session or Session()
    report = session.report
    mean, reply_mean = _token_means(report)
    exact = n_examples is None and tokens_per_example is None and mean is not None
    if exact:
        quick: dict[str, Any] = {}
    else:
        n = n_examples if n_examples is not None else (report or {}).get("n_examples")
        if not n:
            raise UseCaseError("How many examples? Ask e.g. 'how much for 5,000 examples on gpt-4.1-mini?', or check "
                               "your dataset in the Data tab for exact counts.")
        if tokens_per_example:
            per, reply, why = int(tokens_per_example), None, "as you said"
        elif mean is not None:
            per, reply, why = mean, reply_mean, "the mean of your checked dataset"
        else:
            per, reply, why = DEFAULT_TOKENS_PER_EXAMPLE, None, "a default guess: no dataset checked yet"
        quick = {"n_examples": int(n), "avg_tokens": per, "output_tokens": reply}
        how = ("leave out the number of examples to use your checked dataset's exact counts" if mean is not None
               else "check your dataset in the Data tab for exact counts")
        assumption = (f"{int(n):,} examples x **{per:,} tokens per example** ({why}). To change it, say e.g. "
                      f"\"with 800 tokens each\", or {how}")
    options: dict[str, Any] = {"epochs": epochs or "auto", "allow_network": False,
                               "include_self_hosted": bool(include_self_hosted)}
    if model:
        try:
            options["openai_models"] = [pricing.get_price(model).model]
        except ValueError:
            try:
                arch = hardware.resolve_model(model, allow_network=False)
            except ValueError:
                raise UseCaseError(f"I don't know the model {model!r}. OpenAI models: "
                                   f"{', '.join(pricing.model_names())}; open models: a catalogue id such as "
                                   "Qwen/Qwen2.5-7B or meta-llama/Llama-3.1-8B.") from None
            options.update(include_openai=False, include_self_hosted=True, base_models=[arch.name])
    try:
        if method:
            options.update(include_self_hosted=True, methods=[method])
        if gpu:
            options.update(include_self_hosted=True, gpus=[hardware.find_gpu(gpu).name])
    except ValueError as exc:
        raise UseCaseError(str(exc)) from None
    if (method or gpu) and not model:
        options["include_openai"] = False
    result = planning.estimate_options(ctx, session, use_dataset=exact, options=options, **quick)
    table = result.table
    if exact:
        assumption = f"{result.counted} ({table.inputs['total_tokens'] / max(1, table.inputs['n_examples']):,.0f} " \
                     "tokens per example on average)"
    n_counted = int(table.inputs["n_examples"])
    rows = [r for r in table.rows if r.fits is not False]
    openai_rows = [r for r in rows if r.kind == "openai"]
    lines: list[str] = []
    if model and len(openai_rows) == 1 and not options["include_self_hosted"]:
        r = openai_rows[0]
        lines.append(f"**{format_money(r.cost_usd, 'billed per hour')}** to fine-tune **{r.model}** on {n_counted:,} "
                     f"examples ({r.epochs} epochs, {r.trained_tokens:,} trained tokens).")
        lines += [f"- {r.how.get('epochs', '')}", f"- billed tokens per epoch: {r.how.get('billing_tokens', '')}",
                  f"- cost: {r.how.get('training_cost_usd', '')}"]
        if r.inference_cost_month_usd is not None:
            lines.append(f"- using it afterwards: {r.how.get('inference_cost_month_usd', '')}")
        if r.note:
            lines.append(f"- note: {r.note}")
    else:
        lines += [f"**{table.recommendation}**", ""]
        lines += [f"- {r.label}: **{format_money(r.cost_usd, 'billed per hour')}** ({r.epochs} epochs, "
                  f"{r.trained_tokens:,} tokens)" for r in openai_rows]
        hosted = sorted((r for r in rows if r.kind == "self_hosted" and r.cost_usd is not None),
                        key=lambda r: r.cost_usd)[:5]
        lines += [f"- {r.label}: **{format_money(r.cost_usd)}**, about {estimate.duration(r.hours)} "
                  f"({r.memory_gb:.0f} GB of {r.gpu_memory_gb:g} GB)" for r in hosted]
        lines.append(f"\n{table.inputs['epochs_how']}.")
    lines.append(f"\nAssumed: {assumption}.")
    data_rows = [{"id": r.id, "label": r.label, "cost_usd": r.cost_usd, "epochs": r.epochs,
                  "trained_tokens": r.trained_tokens, "hours": r.hours, "fits": r.fits,
                  "recommended": r.recommended} for r in rows][:20]
    return CostQuote(dict(table.inputs), data_rows, table.recommendation, assumption, "\n".join(lines))


@dataclass(frozen=True)
class Price:
    model: str
    training: float | None  # USD per 1M training tokens (None when billed per hour)
    training_per_hour: float | None
    input: float | None
    cached_input: float | None
    output: float | None
    example_limit: int
    date: str
    source: str
    text: str


@use_case(assistant=True)
def model_price(ctx: Context, model: str) -> Price:
    """An OpenAI model's fine-tuning prices (USD per 1M tokens) and its per-example token limit.

    Args:
        model: the model name or alias, e.g. gpt-4.1-mini or gpt-4o-mini-2024-07-18
    """
    try:
        p = pricing.get_price(model)
    except ValueError as exc:
        raise NotFound(str(exc)) from None
    if p.billed_per_hour:
        train = f"${p.training_per_hour:g} per hour of training (reinforcement fine-tuning)"
    else:
        train = f"${p.training:g} per 1M training tokens"
    text = (f"**{p.model}**: training {train}; using the tuned model: input ${p.input:g}, cached input "
            f"${p.cached_input:g}, output ${p.output:g} per 1M tokens; at most {p.example_limit:,} tokens per example "
            f"(prices of {p.date}, {p.source}).")
    return Price(p.model, p.training, p.training_per_hour, p.input, p.cached_input, p.output, p.example_limit,
                 str(p.date), str(p.source), text)


# -- a training run -------------------------------------------------------------------------------------
def _run(ctx: Context, session: Session | None, run_id: str | None) -> tuple[training.RunDetails, str] | None:
    """(the run asked about, why this one): `run_id`, else the session's run, else the newest (None: no run)."""
    chosen = run_id or (session.run_id if session is not None else None)
    if not chosen and not training.list_runs(ctx, limit=1):
        return None
    run = training.show_run(ctx, chosen, log_lines=0)
    return run, "" if chosen else "the most recent run (none was started in this session)"


def _title(run: training.Run, which: str) -> str:
    return f"Run `{run.id}`" + (f" ({which})" if which else "")


@dataclass(frozen=True)
class LossExplanation:
    run_id: str | None
    status: str | None
    findings: list[dict[str, Any]]
    text: str
    objective: str = "sft"  # sft | dpo: which rules read the run (`loss_rules.diagnose` or `diagnose_dpo`)


@use_case(assistant=True)
def explain_loss(ctx: Context, session: Session | None = None, run_id: str | None = None) -> LossExplanation:
    """Why a training run's loss went up (or did not go down): reads its train and validation loss and says whether
    it is overfitting, a learning-rate spike, divergence or a flat curve, with the numbers and what to change. A DPO
    run is read by its reward metrics: preference accuracy at chance, margins not growing, chosen rewards falling
    with the rejected ones, a loss stuck at ln 2, rewards exploding with a low beta.

    Args:
        session: the person's session (its current run and dataset size)
        run_id: the run; empty for this session's current run (else the most recent one)
    """
    found = _run(ctx, session, run_id)
    if found is None:
        return LossExplanation(None, None, [], "There is no training run yet, so here is how to read the curves once "
                                               "there is one:\n\n" + knowledge.as_markdown(knowledge.get("loss_curves")))
    run, which = found
    points = [dataclasses.asdict(p) for p in training.loss_points(ctx, run.id)]
    spec = run.spec or {}
    learning_rate = spec.get("learning_rate")
    if learning_rate is None and spec.get("backend", "local") == "local":
        try:
            learning_rate = JobSpec.from_dict(spec).resolved_learning_rate
        except (TypeError, ValueError):
            learning_rate = None
    epoch_at_step = {int(p["step"]): float(p["epoch"]) for p in points
                     if p.get("step") is not None and p.get("epoch") is not None}
    session = session or Session()
    n_examples = session.split.n_train if session.split is not None else (
        session.dataset.n_examples if session.dataset is not None else None)
    if run.objective == "dpo":  # the session's pairs are the run's only when it trains on the session's file
        ours = session.training_files is not None and session.training_files[0] == spec.get("train_file")
        return _explain_dpo(ctx, run, which, learning_rate, (n_examples or None) if ours else None)
    findings = loss.diagnose(points, learning_rate=learning_rate, epochs=spec.get("num_epochs"),
                             early_stopping_patience=spec.get("early_stopping_patience"),
                             n_examples=n_examples or None, epoch_at_step=epoch_at_step)
    n_train = sum(1 for p in points if p["series"] == "train")
    head = (f"{_title(run, which)} ({run.method} on {run.base_model}, {run.status}): "
            f"{n_train} training and {len(points) - n_train} validation loss points.\n\n")
    return LossExplanation(run.id, run.status,
                           [{"kind": f.kind, "summary": f.summary, "remedies": f.remedies, "numbers": f.numbers}
                            for f in findings], head + loss.to_markdown(findings))


def _explain_dpo(ctx: Context, run: training.RunDetails, which: str, learning_rate: float | None,
                 n_pairs: int | None) -> LossExplanation:
    """A DPO run read by the DPO rules: its loss starts at ln 2 and the reward metrics say what it learns."""
    train, valid = training.dpo_log(ctx, run.id)
    spec = run.spec or {}
    beta = spec.get("dpo_beta") or JobSpec().dpo_beta
    findings = loss.diagnose_dpo(train, valid, beta=float(beta), learning_rate=learning_rate, n_pairs=n_pairs)
    start = f", from run {spec['start_from']}" if spec.get("start_from") else ""
    head = (f"{_title(run, which)} (DPO, beta {float(beta):g}, {run.method} on {run.base_model}{start}, {run.status}): "
            f"{sum(1 for e in train if e.get('loss') is not None)} training and {len(valid)} validation points.\n\n")
    return LossExplanation(run.id, run.status,
                           [{"kind": f.kind, "summary": f.summary, "remedies": f.remedies, "numbers": f.numbers}
                            for f in findings], head + loss.to_markdown(findings), objective="dpo")


@dataclass(frozen=True)
class RunProgress:
    run_id: str | None
    status: str | None
    text: str
    run: training.RunDetails | None = None


@use_case(assistant=True)
def run_progress(ctx: Context, session: Session | None = None, run_id: str | None = None) -> RunProgress:
    """How a training run is going: status, step and time left, losses, and when it failed the error with what to do.

    Args:
        session: the person's session (its current run)
        run_id: the run; empty for this session's current run (else the most recent one)
    """
    found = _run(ctx, session, run_id)
    if found is None:
        return RunProgress(None, None, "No training run yet. Check and split a dataset, then start one in the "
                                       "**Train** tab (or ask me to start a run with tiny-random).")
    run, which = found
    p = run.progress or training.Progress(status=run.status)
    parts = [f"{_title(run, which)}: **{run.status}** ({run.backend}, {run.method} on {run.base_model})."]
    if p.total_steps:
        parts.append(f"Step {p.step or 0:,} of {p.total_steps:,}"
                     + (f" ({p.fraction:.0%})" if p.fraction is not None else "")
                     + (f", about {format_duration(p.eta_s)} left" if p.eta_s and run.status == "running" else "")
                     + ".")
    if run.first_loss is not None and run.final_loss is not None:
        parts.append(f"Training loss {run.first_loss:.3f} → {run.final_loss:.3f}"
                     + (f"; best validation loss {run.best_eval_loss:.3f}" if run.best_eval_loss is not None else "")
                     + ".")
    if run.error:
        parts.append(f"Error: {run.error}." + (f" What to do: {run.hint}" if run.hint else ""))
    if run.output_model:
        parts.append(f"Output: `{run.output_model}` (compare it with the base model in the Arena).")
    return RunProgress(run.id, run.status, " ".join(parts), run)
