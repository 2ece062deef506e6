"""The Train step's use cases: start a run, follow it, stop it, and what the form starts from.

Every front end goes through these: the Train tab, `ftassist train` / `ftassist jobs` (through
the running app's socket when there is one, so a run the CLI starts is the app's run and shows
there at once), and the assistant. The job manager (`ftassist.train.jobs`) does the work; here
each request is checked, phrased for the person and answered with a typed result.

Reads ingest the runs' events first (`jobs.tick`), so an answer is about now whoever asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ftassist.data import preference_pairs as pairs
from ftassist.plan import pricing, providers
from ftassist.redact import scrub
from ftassist.train import jobs, lineage
from ftassist.train.spec import (DPO_BETA, METHODS, OBJECTIVES, OPENAI_DEFAULTS, TINY_RANDOM, JobSpec,
                                 looks_like_openai_model)

from .context import Context, NotFound, UseCaseError
from .registry import use_case
from .session import Session

FINAL_STATUSES = jobs.FINAL_STATUSES
NO_DATASET = ("There is no dataset yet: upload and check one in the Data tab (or press 'Try with sample data'), "
              "then start the run.")


# -- results ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One training run as the database knows it (after its latest events were ingested)."""

    id: str
    status: str  # queued | running | succeeded | failed | cancelled | interrupted
    backend: str
    base_model: str
    method: str
    run_dir: str
    pid: int | None = None
    external_id: str | None = None  # the provider's job id (OpenAI)
    output_model: str | None = None  # what the Arena registers: a model folder or an ft: id
    output_dir: str | None = None
    error: str | None = None
    hint: str | None = None
    total_steps: int | None = None
    last_step: int | None = None
    first_loss: float | None = None
    final_loss: float | None = None
    best_eval_loss: float | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    objective: str = "sft"  # sft (chats) | dpo (preference pairs)


@dataclass(frozen=True)
class Progress:
    """Where a run is: step of total, fraction done, time left, speed, and the last logged loss."""

    status: str | None
    step: int = 0
    total_steps: int | None = None
    fraction: float | None = None
    eta_s: float | None = None
    tokens_per_s: float | None = None
    loss: float | None = None
    epoch: float | None = None


@dataclass(frozen=True)
class RunDetails(Run):
    """A run with its progress and the last lines of its worker.log."""

    progress: Progress | None = None
    log_tail: str = ""
    # A DPO run's last reward metrics: rewards/margins, rewards/accuracies (train) and their eval_ versions.
    preference: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float
    series: str  # train | validation
    epoch: float | None = None


@dataclass(frozen=True)
class PreferencePoint:
    """A DPO run's reward margin or preference accuracy at a step (`metric`: margin | accuracy)."""

    step: int
    value: float
    series: str  # e.g. "reward margin (train)", "preference accuracy (validation)"
    metric: str


@dataclass(frozen=True)
class RunSummary:
    """What the step bar shows of the session's run."""

    run_id: str | None
    status: str | None = None
    fraction: float | None = None
    output_model: str | None = None


@dataclass(frozen=True)
class RunView:
    """Everything the Train tab's monitor shows at once: the run, its loss curve and every run."""

    run: RunDetails | None
    points: list[LossPoint]
    runs: list[Run]
    preference: list[PreferencePoint] = field(default_factory=list)  # DPO runs: margin and accuracy by step


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    status: str  # running, or queued behind the running local run
    run_dir: str
    output_dir: str | None
    pid: int | None
    message: str  # one sentence for the person


@dataclass(frozen=True)
class TrainingDefaults:
    """The Train form's starting values, all of them coherent with one another (never an OpenAI backend
    with a local base model): the data from the Data step, the rest from the chosen Estimate option."""

    train_file: str
    valid_file: str
    backend: Literal["local", "hf-jobs", "together", "openai"]
    base_model: str  # the open base model (tiny-random unless a local, Jobs or Together option names one)
    openai_model: str  # the OpenAI model (the option's when it is an OpenAI one)
    method: str  # lora | qlora | full
    num_epochs: float | None  # None: the preset (local) or "auto" (OpenAI)
    source: str  # where the files come from, in words ("" without data)
    key: str  # changes exactly when the data or the option changes (the form refills only then)
    openai_model_warning: str = ""  # "MODEL shuts down on DATE (N days)" when it does within 90 days, to show beside it
    flavor: str = ""  # the Hugging Face Jobs flavor of a Jobs option ("": the cheapest that fits)
    objective: str = "sft"  # sft | dpo: the chosen option's, else the data's (preference pairs: dpo)
    dpo_beta: float = DPO_BETA
    start_from: str = ""  # a DPO run: the session's finished SFT run on the same kind of backend ("": the base)
    objective_warning: str = ""  # the option's objective does not fit the data, in words (what to do)


@dataclass(frozen=True)
class RunPlan:
    """The run a session would start: its spec and the sentence that describes it before it starts."""

    spec: dict[str, Any]
    summary: str
    source: str


@dataclass(frozen=True)
class TrainingData:
    """The files a run trains on, made from what the person gave (see `prepare_training_data`)."""

    train_file: str
    valid_file: str | None
    cleaned: bool  # the input went through the Data step's check, clean and split
    n_train: int | None = None
    n_valid: int | None = None
    n_dropped: int = 0
    dropped_path: str | None = None
    kind: str = "chat"  # chat (SFT) | pairs (preference pairs, DPO)


# -- starting a run -------------------------------------------------------------------------------------
@use_case(confirm=True)
def start_run(ctx: Context, spec: dict, api_key: str | None = None) -> RunStarted:
    """Start a training run (or queue it behind the running local run) from its complete settings.

    Args:
        spec: the run's settings (the fields of spec.json: backend, base_model, method, train_file, ...)
        api_key: the OpenAI or Together key for this run only; handed to the worker's environment, never stored
    """
    api_key = (api_key or "").strip() or None
    try:
        job_spec = JobSpec.from_dict(spec or {})
    except (TypeError, ValueError) as exc:
        raise UseCaseError(f"The run's settings cannot be read ({exc}): give the fields of a spec.json.") from None
    if job_spec.backend == "openai":  # one name for the model trained, whichever field was given
        job_spec.base_model = job_spec.openai.get("model") or job_spec.base_model
    if job_spec.backend in ("local", "hf-jobs"):  # the worker's recipe: a local start model, data it can read
        _resolve_start(ctx, job_spec)
        _check_data_fits(job_spec)
    else:  # a provider's job or model to go on from: a run id here becomes the model the provider made
        _resolve_hosted_start(ctx, job_spec)
    try:
        run_id = jobs.start_job(ctx.store, job_spec, ctx.settings.runs_dir, api_key=api_key)
    except jobs.JobError as exc:
        raise UseCaseError(scrub(exc, api_key)) from None
    except OSError as exc:
        raise UseCaseError(f"The run folder could not be written ({exc}): check the data dir's disk and "
                           "permissions.") from None
    row = jobs.get_job(ctx.store, run_id)
    if row["status"] == "failed":
        raise UseCaseError(f"{row.get('error') or 'the worker could not start'}. {row.get('hint') or ''}".strip())
    if row["status"] == "queued":
        message = f"Run {run_id} is queued: it starts when the running local run ends."
    else:
        message = f"Run {run_id} is running."
    return RunStarted(run_id=run_id, status=row["status"], run_dir=row["run_dir"],
                      output_dir=row.get("output_dir") or job_spec.output_dir or None, pid=row.get("pid"),
                      message=message)


@use_case
def training_defaults(ctx: Context, session: Session) -> TrainingDefaults:
    """What the Train form starts from: the Data step's files and the chosen Estimate option's backend,
    model, method and epochs (a local tiny-random LoRA run when no option was chosen).

    Args:
        session: the person's session
    """
    session = Session.of(session)
    files = session.training_files
    train, valid = files if files is not None else ("", None)
    option = session.option or {}
    kind = option.get("kind")
    backend: Literal["local", "hf-jobs", "together", "openai"] = "local"
    base_model, openai_model, method, flavor = TINY_RANDOM, _default_openai_model(), "lora", ""
    if kind == "openai":
        backend, openai_model = "openai", option.get("model") or openai_model
    elif kind in ("self_hosted", "hf_jobs", "together"):  # an open model: here, on a rented GPU, or hosted
        backend = {"hf_jobs": "hf-jobs", "together": "together"}.get(kind, "local")
        base_model = option.get("model") or TINY_RANDOM
        method = option.get("method") if option.get("method") in METHODS else "lora"
        flavor = (option.get("flavor") or "") if kind == "hf_jobs" else ""
    epochs = option.get("epochs") if kind else None
    objective, warning = _objective(session, option, train)
    start_from = _default_start(ctx, session, backend) if objective == "dpo" else ""
    return TrainingDefaults(
        train_file=train or "", valid_file=valid or "", backend=backend, base_model=base_model,
        openai_model=openai_model, method=method, num_epochs=float(epochs) if epochs else None,
        source=_source(session),
        key=json.dumps([train, valid, option.get("id"), kind, option.get("model"), objective, start_from]),
        openai_model_warning=providers.model_warning(openai_model), flavor=flavor, objective=objective,
        start_from=start_from, objective_warning=warning,
    )


def _objective(session: Session, option: dict, train: str | None) -> tuple[str, str]:
    """(objective, warning): the chosen Estimate option's objective (a DPO option starts a DPO run), else what the
    data are (preference pairs: dpo); the warning says when the option's objective does not fit the data."""
    from .planning import data_kind

    kind = data_kind(session) if train else None
    from_data = "dpo" if kind == "pairs" else "sft"
    chosen = option.get("objective") if option.get("objective") in OBJECTIVES else None
    if chosen is None:
        return from_data, ""
    if kind is not None and chosen != from_data:
        what = "preference pairs" if kind == "pairs" else "chats"
        return chosen, (f"The chosen Estimate option trains {chosen.upper()}, but the Data step's file holds {what}: "
                        + ("check a file of preference pairs (prompt, chosen, rejected) in the Data step, or choose "
                           "an SFT option." if chosen == "dpo" else "choose a DPO option in the Estimate step."))
    return chosen, ""


_SAME_MODELS = {"local": ("local", "hf-jobs"), "hf-jobs": ("local", "hf-jobs"), "together": ("together",),
                "openai": ("openai",)}  # which runs' models a run on each backend can start from


def _default_start(ctx: Context, session: Session, backend: str) -> str:
    """The session's run when it is a finished SFT run a DPO run on `backend` can go on from ("" otherwise):
    SFT, then DPO, without looking the run up."""
    if not session.run_id:
        return ""
    row = jobs.get_job(ctx.store, session.run_id)
    if row is None or row["status"] != "succeeded" or (row.get("objective") or "sft") != "sft":
        return ""
    return session.run_id if row["backend"] in _SAME_MODELS.get(backend, ()) else ""


def _default_openai_model() -> str:
    """The spec's default OpenAI model, unless it shuts down within 90 days and a priced model does not."""
    return providers.preferred_model(pricing.model_names(include_rft=False), OPENAI_DEFAULTS["model"])


@use_case(assistant=True)
def plan_run(ctx: Context, session: Session, base_model: str | None = None, method: str | None = None,
             num_epochs: float | None = None, max_steps: int | None = None,
             backend: Literal["local", "hf-jobs", "together", "openai"] | None = None,
             objective: Literal["sft", "dpo"] | None = None, dpo_beta: float | None = None,
             start_from: str | None = None) -> RunPlan:
    """Describe the training run this session would start (nothing starts): the Train form's defaults,
    changed by what is given.

    Args:
        session: the person's session (its split, checked dataset and chosen Estimate option)
        base_model: the model to fine-tune (a Hub id, a local folder, tiny-random, or an OpenAI model); empty: the chosen option's
        method: lora, qlora or full (local runs); empty: the chosen option's, else lora
        num_epochs: passes over the data; empty: the chosen option's, else the preset
        max_steps: stop after this many optimizer steps (a quick trial; local runs)
        backend: local (this machine), hf-jobs (a rented GPU on Hugging Face Jobs), together (Together AI, a Together model id as base_model) or openai; empty: openai for an OpenAI model name, else the chosen option's
        objective: sft (learn the answers of chats) or dpo (prefer the chosen answer of preference pairs); empty: the chosen option's, else dpo when the data are preference pairs
        dpo_beta: DPO's beta (default 0.1; lower lets the model move further from where it starts)
        start_from: a finished run's id (or model folder) to go on from: SFT, then DPO with the SFT model as reference; empty: the session's finished SFT run for a DPO run, else the base model
    """
    defaults = training_defaults(ctx, session)
    if not defaults.train_file:
        raise UseCaseError(NO_DATASET)
    base_model = (base_model or "").strip() or None
    if backend is None:
        backend = ("openai" if looks_like_openai_model(base_model) else "local") if base_model else defaults.backend
    objective = objective or defaults.objective
    if objective not in OBJECTIVES:
        raise UseCaseError(f"Unknown objective {objective!r}: use sft (chats) or dpo (preference pairs).")
    if (start_from or "").strip():
        start = start_from.strip()
    else:  # SFT, then DPO: a DPO run goes on from the session's finished SFT run when it can
        start = _default_start(ctx, Session.of(session), backend) if objective == "dpo" else ""
    epochs = float(num_epochs) if num_epochs else defaults.num_epochs
    spec: dict[str, Any] = {"backend": backend, "train_file": defaults.train_file,
                            "valid_file": defaults.valid_file or None, "objective": objective}
    if objective == "dpo":
        spec["dpo_beta"] = float(dpo_beta) if dpo_beta else defaults.dpo_beta
    if start:
        spec["start_from"] = start
    if backend == "openai":
        model = base_model or defaults.openai_model
        spec.update(base_model=model, method="lora", openai={"model": model})
        if epochs:
            spec["openai"]["n_epochs"] = max(1, round(epochs))
        where = f"OpenAI fine-tuning of {model}, " + (f"{spec['openai']['n_epochs']} epochs" if epochs
                                                       else "epochs chosen by OpenAI")
    else:
        chosen = method or defaults.method
        if chosen not in METHODS:
            raise UseCaseError(f"Unknown method {chosen!r}: use lora, qlora or full.")
        spec.update(base_model=base_model or defaults.base_model, method=chosen)
        if epochs:
            spec["num_epochs"] = epochs
        if max_steps:
            spec["max_steps"] = int(max_steps)
        how = "full fine-tuning" if chosen == "full" else chosen.upper()
        where = (f"{how} on {spec['base_model']}, {spec.get('num_epochs', JobSpec().num_epochs):g} epochs"
                 + (f" (at most {spec['max_steps']} steps)" if spec.get("max_steps") else "")
                 + {"hf-jobs": ", on a rented GPU (Hugging Face Jobs)", "together": ", on Together AI"}.get(backend, ""))
    if objective == "dpo":
        where = f"DPO (beta {spec['dpo_beta']:g}) with " + where + (f", going on from run {start}" if start else "")
    elif start:
        where += f", going on from {start}"
    summary = f"Start a training run: {where}, on {defaults.source}."
    if defaults.objective_warning and objective == defaults.objective:
        summary += f" Note: {defaults.objective_warning}"
    return RunPlan(spec=spec, summary=summary, source=defaults.source)


@use_case(assistant=True, confirm=True)
def start_run_from_session(ctx: Context, session: Session, base_model: str | None = None,
                           method: str | None = None, num_epochs: float | None = None,
                           max_steps: int | None = None, backend: Literal["local", "hf-jobs", "together", "openai"] | None = None,
                           objective: Literal["sft", "dpo"] | None = None, dpo_beta: float | None = None,
                           start_from: str | None = None, api_key: str | None = None) -> RunStarted:
    """Start the training run this session leads to (the Train form's defaults, changed by what is given).

    Args:
        session: the person's session (its split, checked dataset and chosen Estimate option)
        base_model: the model to fine-tune; empty: the chosen option's (tiny-random without one)
        method: lora, qlora or full (local runs); empty: the chosen option's, else lora
        num_epochs: passes over the data; empty: the chosen option's, else the preset
        max_steps: stop after this many optimizer steps (a quick trial; local runs)
        backend: local (this machine), hf-jobs (a rented GPU on Hugging Face Jobs), together (Together AI, a Together model id as base_model) or openai; empty: openai for an OpenAI model name, else the chosen option's
        objective: sft (learn the answers of chats) or dpo (prefer the chosen answer of preference pairs); empty: the chosen option's, else dpo when the data are preference pairs
        dpo_beta: DPO's beta (default 0.1; lower lets the model move further from where it starts)
        start_from: a finished run's id (or model folder) to go on from: SFT, then DPO; empty: the session's finished SFT run for a DPO run, else the base model
        api_key: the OpenAI or Together key for this run only; never stored
    """
    plan = plan_run(ctx, session, base_model=base_model, method=method, num_epochs=num_epochs,
                    max_steps=max_steps, backend=backend, objective=objective, dpo_beta=dpo_beta,
                    start_from=start_from)
    return start_run(ctx, plan.spec, api_key=api_key)


@use_case
def prepare_training_data(ctx: Context, path: str, valid: str | None = None, valid_fraction: float = 0.1,
                          seed: int = 42) -> TrainingData:
    """The files to train on from what was given: a folder from `ftassist clean` or a chat JSONL with its
    validation file are used as they are; any other dataset is checked, cleaned and split first.

    Args:
        path: a dataset file, or a folder holding train.jsonl (and valid.jsonl); absolute
        valid: a validation chat JSONL (path is then used as is); absolute
        valid_fraction: the share held out for validation when splitting
        seed: the split's random seed
    """
    given = Path(path)
    if given.is_dir():
        train = given / "train.jsonl"
        if not train.is_file():
            raise UseCaseError(f"{given}: a folder must hold train.jsonl (and valid.jsonl) from `ftassist clean`.")
        held_out = given / "valid.jsonl"
        use_valid = str(held_out) if held_out.is_file() and held_out.stat().st_size else valid
        return TrainingData(train_file=str(train), valid_file=use_valid, cleaned=False,
                            kind=pairs.file_kind(train) or "chat")
    if not given.is_file():
        raise NotFound(f"{path}: no such file")
    if valid is not None:
        kind = pairs.file_kind(given)
        if kind is None or (kind == "chat" and given.suffix.lower() != ".jsonl"):  # the SFT worker reads chat JSONL
            raise UseCaseError(f"{path}: with a validation file, give chat JSONL files (run `ftassist clean` first) "
                               "or preference-pair files.")
        return TrainingData(train_file=str(given), valid_file=valid, cleaned=False, kind=kind)
    # chats and preference pairs alike: the Data step's clean and split (pairs: no prompt on both sides)
    from ftassist.data.clean import clean_file
    from ftassist.data.load import LoadError

    try:
        result = clean_file(given, ctx.settings.prepared_dir / jobs.new_job_id(), valid_fraction=valid_fraction,
                            seed=seed)
    except (LoadError, ValueError, OSError) as exc:
        raise UseCaseError(f"{path}: {exc}") from None
    if not result.n_train:
        raise UseCaseError(f"{path}: no usable examples after cleaning: run `ftassist check {path}` to see why.")
    dropped = (result.n_dropped_invalid + result.n_dropped_duplicates + result.n_dropped_empty
               + result.n_dropped_identical)
    return TrainingData(train_file=str(result.train_path), valid_file=str(result.valid_path) if result.n_valid else None,
                        cleaned=True, n_train=result.n_train, n_valid=result.n_valid, n_dropped=dropped,
                        dropped_path=str(result.dropped_path) if dropped else None,
                        kind="pairs" if result.kind == "preference" else "chat")


# -- following and stopping -------------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def cancel_run(ctx: Context, run_id: str, timeout: float = 10.0) -> Run:
    """Stop a training run: a queued one is dropped, a running one saves what it has and ends.

    Args:
        run_id: the run to stop
        timeout: seconds to wait for a clean stop before the worker is killed
    """
    before = _row(ctx, run_id)
    if before["status"] in FINAL_STATUSES:
        raise UseCaseError(f"Run {run_id} already ended ({before['status']}): nothing to cancel.")
    return _run(jobs.cancel_job(ctx.store, run_id, timeout=timeout))


@use_case(assistant=True)
def list_runs(ctx: Context, limit: int = 200) -> list[Run]:
    """The training runs, newest first, each with its status, steps and losses.

    Args:
        limit: at most this many runs
    """
    jobs.tick(ctx.store)
    return [_run(row) for row in jobs.list_jobs(ctx.store, limit=limit)]


@use_case(assistant=True)
def show_run(ctx: Context, run_id: str | None = None, log_lines: int = 30) -> RunDetails:
    """A training run's status, progress, losses, output model, and the error with what to do when it failed.

    Args:
        run_id: the run; empty for the most recent one
        log_lines: how many of the last worker.log lines to include
    """
    jobs.tick(ctx.store)
    return _details(ctx, _resolve(ctx, run_id), log_lines)


@use_case
def run_summary(ctx: Context, run_id: str | None = None) -> RunSummary:
    """The session's run in a few words for the step bar: status, fraction done, output model.

    Args:
        run_id: the session's run; empty when it has none
    """
    if not run_id:
        return RunSummary(run_id=None)
    jobs.ingest(ctx.store, run_id)
    row = jobs.get_job(ctx.store, run_id)
    if row is None:
        return RunSummary(run_id=run_id)
    fraction = jobs.progress(ctx.store, run_id).get("fraction")
    return RunSummary(run_id=run_id, status=row["status"], fraction=fraction, output_model=row.get("output_model"))


@use_case(assistant=True)
def loss_points(ctx: Context, run_id: str) -> list[LossPoint]:
    """A run's training and validation loss by step (with the epoch when logged), for its curve.

    Args:
        run_id: the run
    """
    _row(ctx, run_id)
    return [LossPoint(**point) for point in jobs.loss_points(ctx.store, run_id)]


@use_case
def run_view(ctx: Context, run_id: str | None = None, log_lines: int = 30, history: int = 100) -> RunView:
    """Everything the Train tab's monitor shows: the run (default: the most recent), its curve and all runs.

    Args:
        run_id: the run to show; empty for the most recent one
        log_lines: how many of the last worker.log lines to include
        history: at most this many runs in the list
    """
    jobs.tick(ctx.store)
    runs = [_run(row) for row in jobs.list_jobs(ctx.store, limit=history)]
    run_id = run_id or (runs[0].id if runs else None)
    if not run_id or jobs.get_job(ctx.store, run_id) is None:
        return RunView(run=None, points=[], runs=runs)
    points = [LossPoint(**point) for point in jobs.loss_points(ctx.store, run_id)]
    run = _details(ctx, run_id, log_lines)
    preference = _preference_points(ctx, run_id) if run.objective == "dpo" else []
    return RunView(run=run, points=points, runs=runs, preference=preference)


@use_case(assistant=True)
def preference_points(ctx: Context, run_id: str) -> list[PreferencePoint]:
    """A DPO run's reward margin (how much more the model prefers the chosen answer than the reference does) and
    preference accuracy (the share of pairs where it prefers the chosen one), train and validation, by step.

    Args:
        run_id: the run
    """
    _row(ctx, run_id)
    return _preference_points(ctx, run_id)


@use_case
def follow_runs(ctx: Context) -> bool:
    """Follow every run in the background (ingest their events, move the queue, notice dead workers)
    whether or not a browser is open; the app calls it once at start. Returns True."""
    jobs.start_ingest_loop(ctx.store)
    from . import preference_loop  # a run trained on arena votes: its model meets its parent when it ends

    preference_loop.follow_loops(ctx)
    return True


# -- helpers ------------------------------------------------------------------------------------------------
def _source(session: Session) -> str:
    if session.split is not None and session.split.train:
        return f"the split from the Data step ({session.split.counts()} examples)"
    if session.dataset is not None and session.dataset.mapping:
        return "none yet: the checked dataset is mapped field by field; press Fix & split in the Data tab to write it"
    if session.dataset is not None:
        return ("the checked dataset, unsplit (no validation set: press Fix & split in the Data tab first to see "
                "overfitting)")
    return ""


# The DPO metrics the Train tab draws: TRL's key, the series' words, and which chart line it is.
_PREFERENCE_SERIES = {"rewards/margins": ("reward margin", "margin"),
                      "rewards/accuracies": ("preference accuracy", "accuracy")}


def _preference_points(ctx: Context, run_id: str) -> list[PreferencePoint]:
    out: list[PreferencePoint] = []
    for event in jobs.job_events(ctx.store, run_id, types=("log", "eval")):
        prefix, where = ("eval_", "validation") if event.get("type") == "eval" else ("", "train")
        step = event.get("step")
        for key, (words, metric) in _PREFERENCE_SERIES.items():
            value = event.get(prefix + key)
            if isinstance(step, int) and isinstance(value, (int, float)):
                out.append(PreferencePoint(step=step, value=float(value), series=f"{words} ({where})", metric=metric))
    return out


def dpo_log(ctx: Context, run_id: str) -> tuple[list[dict], list[dict]]:
    """A DPO run's logged rows (train, validation): each a step with its loss and TRL's reward metrics, as
    `train.loss_rules.diagnose_dpo` reads them."""
    _row(ctx, run_id)
    train: list[dict] = []
    valid: list[dict] = []
    for event in jobs.job_events(ctx.store, run_id, types=("log", "eval")):
        (valid if event.get("type") == "eval" else train).append(event)
    return train, valid


def _last_preference(ctx: Context, run_id: str) -> dict[str, float]:
    """The last logged value of each DPO reward metric (train and eval_), for `show_run` and the CLI."""
    last: dict[str, float] = {}
    for event in jobs.job_events(ctx.store, run_id, types=("log", "eval")):
        for key, value in event.items():
            if "rewards/" in key and isinstance(value, (int, float)):
                last[key] = float(value)
    return last


def _resolve_start(ctx: Context, spec: JobSpec) -> None:
    """Turn spec.start_from (a run id, a run folder or a model folder) into the start model's folder, and name
    the base model it goes with; UseCaseError says what to give instead."""
    value = (spec.start_from or "").strip()
    if not value:
        spec.start_from = None
        return
    folder = Path(value).expanduser()
    row = jobs.get_job(ctx.store, value) if not folder.exists() else None
    if row is not None:
        if row["status"] != "succeeded":
            raise UseCaseError(f"Run {value} is {row['status']}: start from a run that finished.")
        if row["backend"] in ("openai", "together"):
            raise UseCaseError(f"Run {value} trained on {'OpenAI' if row['backend'] == 'openai' else 'Together AI'}, "
                               "which keeps its model: a local run cannot start from it. Start from a local or "
                               "Hugging Face Jobs run.")
        folder = Path(row.get("output_model") or row.get("output_dir") or "")
    elif (folder / "spec.json").is_file() and not any((folder / f).is_file() for f in ("config.json",
                                                                                       lineage.ADAPTER_CONFIG)):
        from ftassist.arena import models as arena_models  # a run folder: its finished model, as the Arena reads it

        try:
            kind, config = arena_models.run_model_config(folder)
        except arena_models.ModelError as exc:
            raise UseCaseError(str(exc)) from None
        folder = Path(config.get("adapter_dir") or config.get("model") or "")
    elif not folder.exists():
        raise UseCaseError(f"start_from {value!r} is neither a run id nor a folder: give a finished run's id "
                           "(`ftassist jobs`) or its model folder.")
    try:
        start = lineage.inspect_start(folder)
    except lineage.StartError as exc:
        raise UseCaseError(str(exc)) from None
    spec.start_from = start.folder
    given = (spec.base_model or "").strip()
    if start.kind == "model":  # the whole model is the base (tiny-random keeps its name, and its presets)
        if not (given == TINY_RANDOM and start.run_base_model == TINY_RANDOM):
            spec.base_model = start.folder
        return
    expected = start.base_model
    if given and given not in (TINY_RANDOM, expected):
        raise UseCaseError(f"start_from {start.folder} is a LoRA adapter trained on {expected}: it cannot go on "
                           f"{given}. Leave the base model empty or give {expected}.")
    spec.base_model = expected


def _resolve_hosted_start(ctx: Context, spec: JobSpec) -> None:
    """A Together or OpenAI run's start_from given as an ftassist run id becomes that run's remote output model
    (Together's output model name, an OpenAI `ft:` model), which is what the provider continues from; anything
    else (a Together job id or model name, an `ft:` model) goes through as given. UseCaseError says what to give
    when the run cannot be continued there."""
    value = (spec.start_from or "").strip()
    spec.start_from = value or None
    row = jobs.get_job(ctx.store, value) if value else None
    if row is None:
        return
    names = {"openai": "OpenAI", "together": "Together AI", "local": "this machine", "hf-jobs": "Hugging Face Jobs"}
    here = names.get(spec.backend, spec.backend)
    if row["status"] != "succeeded":
        raise UseCaseError(f"Run {value} is {row['status']}: start from a run that finished.")
    if row["backend"] != spec.backend:
        raise UseCaseError(f"Run {value} trained on {names.get(row['backend'], row['backend'])}, and a run on {here} "
                           f"can only go on from a model {here} made: start from a {here} run, or run this one "
                           f"where run {value} ran.")
    model = row.get("output_model") or (row.get("external_id") if spec.backend == "together" else None)
    if not model:
        raise UseCaseError(f"Run {value} finished without naming its model on {here}: give the model "
                           + ("(ft:...)" if spec.backend == "openai" else "name or job id (ft-...)") + " itself.")
    spec.start_from = model
    if spec.backend == "together" and (spec.base_model in ("", TINY_RANDOM, None)):
        spec.base_model = row.get("base_model") or spec.base_model  # the model the earlier job tuned


def _check_data_fits(spec: JobSpec) -> None:
    """Refuse a file that does not fit the objective: chats for DPO, preference pairs for SFT."""
    for path in (spec.train_file, spec.valid_file):
        if not path:
            continue
        kind = pairs.file_kind(path)
        if spec.objective == "dpo" and kind == "chat":
            raise UseCaseError(f'{path} holds chats ({{"messages": ...}}), but a DPO run trains on preference pairs. '
                               f"{pairs.PAIR_HINT} To train on these chats, use objective sft.")
        if spec.objective != "dpo" and kind == "pairs":
            raise UseCaseError(f"{path} holds preference pairs (prompt, chosen, rejected): train on them with "
                               "objective dpo (`ftassist train FILE --method dpo`), or give chats "
                               '({"messages": ...}) for SFT.')


def _row(ctx: Context, run_id: str) -> dict:
    row = jobs.get_job(ctx.store, run_id) if run_id else None
    if row is None:
        raise NotFound(f"There is no run {run_id!r}: `ftassist jobs` and the Train tab list the runs.")
    return row


def _resolve(ctx: Context, run_id: str | None) -> str:
    if run_id:
        return run_id
    latest = jobs.list_jobs(ctx.store, limit=1)
    if not latest:
        raise NotFound("There is no training run yet: start one in the Train tab or with `ftassist train FILE`.")
    return latest[0]["id"]


_RUN_FIELDS = tuple(f.name for f in fields(Run))


def _run(row: dict, kind: type[Run] = Run, **extra: Any) -> Run:
    values = {name: row.get(name) for name in _RUN_FIELDS if name != "spec"}
    values["objective"] = values.get("objective") or (row.get("spec") or {}).get("objective") or "sft"
    for name in ("created_at", "started_at", "finished_at"):
        value = values.get(name)
        values[name] = value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else value
    return kind(**values, spec=row.get("spec") or {}, **extra)


def _details(ctx: Context, run_id: str, log_lines: int) -> RunDetails:
    row = _row(ctx, run_id)
    progress = Progress(**jobs.progress(ctx.store, run_id))
    tail = jobs.log_tail(ctx.store, run_id, max_lines=log_lines) if log_lines > 0 else ""
    preference = _last_preference(ctx, run_id) if (row.get("objective") or "sft") == "dpo" else {}
    return _run(row, RunDetails, progress=progress, log_tail=tail, preference=preference)


# -- resuming ----------------------------------------------------------------------------------------------
RESUMABLE = ("failed", "cancelled", "interrupted")


@use_case(assistant=True, confirm=True)
def resume_run(ctx: Context, run_id: str, api_key: str | None = None) -> RunStarted:
    """Go on with a run that was cancelled, failed or interrupted (a restart, a preemption): a new run with
    the same settings and data starts from the stopped run's last checkpoint (weights, optimizer, schedule
    and step), so the steps already trained are not paid for twice.

    Args:
        run_id: the stopped run to go on with
        api_key: the Hugging Face token for a run on Hugging Face Jobs, for this run only; never stored
    """
    jobs.ingest(ctx.store, run_id)  # its latest events: a checkpoint written while it stopped counts
    row = _row(ctx, run_id)
    if row["status"] == "succeeded":
        raise UseCaseError(f"Run {run_id} already finished: there is nothing left to train. Start a new run to "
                           "train longer.")
    if row["status"] not in RESUMABLE:
        raise UseCaseError(f"Run {run_id} is still {row['status']}: cancel it first, or wait for it to end.")
    if row["backend"] in ("openai", "together"):
        raise UseCaseError(f"Run {run_id} ran on {'OpenAI' if row['backend'] == 'openai' else 'Together AI'}, "
                           "which keeps its checkpoints on its side: a stopped job there cannot be resumed from "
                           "here. Start a new run (or fine-tune further from its checkpoint model in the "
                           "provider's dashboard).")
    checkpoint = jobs.last_checkpoint(ctx.store, run_id)
    if checkpoint is None:
        where = ("no checkpoint was uploaded to the Hub before it stopped" if row["backend"] == "hf-jobs"
                 else "it stopped before its first checkpoint, or its checkpoint folders were deleted")
        raise UseCaseError(f"Run {run_id} cannot be resumed: {where}. Start it again from the beginning.")
    spec = dict(row.get("spec") or {})
    if spec.get("output_dir") == str(Path(row["run_dir"]) / "model"):
        spec["output_dir"] = ""  # the run's own folder by default: the new run gets its own
    spec.update(resume_from_checkpoint=checkpoint["path"], resumed_from=run_id)
    started = start_run(ctx, spec, api_key=api_key)
    step = checkpoint.get("step")
    goes_on = f"goes on with run {run_id}" + (f" from step {step}" if step is not None else "")
    return RunStarted(run_id=started.run_id, status=started.status, run_dir=started.run_dir,
                      output_dir=started.output_dir, pid=started.pid,
                      message=f"{started.message} It {goes_on}.")
