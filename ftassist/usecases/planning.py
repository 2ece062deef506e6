"""Use cases of the Decide and Estimate steps, and the sample-data run that goes through Data and Estimate.

Why the train split matters here: once a dataset is split, training sees only the train file
(the validation examples are held out, duplicates and invalid records are gone), so the cost of
training is the cost of that file, not of the raw records the check counted.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ftassist import config
from ftassist.plan import estimate as est
from ftassist.plan import guide, providers

from . import data
from .context import Context, UseCaseError
from .registry import use_case
from .session import Dataset, Decision, Session

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "data" / "sample" / "sample_chat.jsonl"
SAMPLE_BASE_MODEL = "HuggingFaceTB/SmolLM2-135M"  # the smallest catalogue model, for the sample's estimate
SAMPLE_GPU = "T4"
SAMPLE_RUN_MODEL = "tiny-random"  # the offline model the sample run trains


# -- Decide -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Advice:
    """The Decide step's result: the decision to keep in the session, and the advice to show."""

    decision: Decision
    markdown: str


@use_case(assistant=True)
def recommend_approach(ctx: Context, answers: dict[str, Any], report: dict[str, Any] | None = None) -> Advice:
    """Advise whether to fine-tune at all (or use RAG or prompting), and how, with reasons and pitfalls.

    Args:
        answers: the questionnaire's answers by key: needs_current_info, style_or_format, domain_terminology,
            n_examples, budget (low|medium|high), hardware (none|consumer_gpu|datacenter_gpu|multi_gpu),
            data_can_leave, openai_customer, high_volume, tried_prompting, model_does_task (the model already does
            the task and format; people prefer some answers), has_preference_data (pairs of a better and a worse
            answer, or arena votes). A missing answer keeps its default. The advice names the objective: SFT,
            DPO, or SFT first and then DPO.
        report: the checked dataset's report: its size and quality replace the guessed number of examples.
    """
    unknown = sorted(set(answers) - {q.key for q in guide.QUESTIONS})
    if unknown:
        raise UseCaseError(f"Unknown answer(s): {', '.join(unknown)}. The questions are: "
                           + ", ".join(q.key for q in guide.QUESTIONS) + ".")
    try:
        filled = guide.Answers.from_dict(answers)
        recommendation = guide.recommend(filled, report)
    except (ValueError, TypeError) as exc:
        raise UseCaseError(str(exc)) from None
    decision = Decision(answers=dataclasses.asdict(filled), approach=recommendation.approach,
                        method=recommendation.method, headline=recommendation.headline(),
                        recommendation=recommendation.to_dict())
    return Advice(decision=decision, markdown=recommendation.to_markdown())


# -- Estimate -----------------------------------------------------------------------------------------
@dataclass
class EstimateResult:
    """Every option side by side, and what was counted to price them."""

    table: est.EstimateTable
    counted: str  # which examples the figures are for, in words (the train split, a file, a guess)
    prefer: str | None = None  # the method the Decide step suggested, which the recommendation prefers
    warnings: list[str] = field(default_factory=list)
    objective: str = "sft"  # sft | dpo: what was estimated (given, else `default_objective` of the session)
    objective_why: str = ""  # why that objective, in words, when it was not given

    @property
    def recommended(self) -> dict[str, Any] | None:
        row = self.table.recommended
        return dataclasses.asdict(row) if row is not None else None


@dataclass(frozen=True)
class ObjectiveChoice:
    """What a session's run learns from, and why: the Estimate and Train steps start from it."""

    objective: str  # sft | dpo
    why: str
    then_objective: str | None = None  # "dpo": the Decide step recommends SFT first, then DPO


def data_kind(session: Session | None) -> str | None:
    """"pairs" or "chat" for the session's data (the split, else the checked dataset); None without data.

    The checked report says it (its format is "preference" for pairs); a report without a format, as the
    first versions kept, is answered by peeking at the training file."""
    if session is None or (session.dataset is None and session.split is None):
        return None
    report = session.report or {}
    if report.get("format") == "preference" or report.get("preference"):
        return "pairs"
    if report.get("format"):
        return "chat"
    files = session.training_files
    if files is None:
        return None
    from ftassist.data.preference_pairs import file_kind

    return file_kind(files[0])


def default_objective(session: Session | None) -> ObjectiveChoice:
    """What to estimate and train when the person has not said: the checked data decide (a file of preference
    pairs trains DPO, chats train SFT), else the Decide recommendation's objective, else SFT."""
    recommendation = (session.decision.recommendation or {}) if session is not None and session.decision else {}
    then = recommendation.get("then_objective")
    kind = data_kind(session)
    if kind == "pairs":
        return ObjectiveChoice("dpo", "the checked dataset holds preference pairs", None)
    if kind == "chat":
        why = "the checked dataset holds chats"
        if then == "dpo":
            why += " (the Decide step recommends SFT first, then DPO on preference pairs)"
        return ObjectiveChoice("sft", why, then)
    if recommendation.get("objective") in ("sft", "dpo"):
        return ObjectiveChoice(recommendation["objective"], "the Decide step recommends it", then)
    return ObjectiveChoice("sft", "no preference pairs and no Decide recommendation", None)


@use_case(assistant=True)
def estimate_options(
    ctx: Context,
    session: Session | None = None,
    use_dataset: bool = True,
    path: str | None = None,
    example: str | None = None,
    n_examples: int | None = None,
    avg_tokens: float | None = None,
    output_tokens: float | None = None,
    options: dict[str, Any] | None = None,
) -> EstimateResult:
    """Estimate the cost, memory and time of every way to fine-tune: this machine's GPU, Hugging Face Jobs flavors,
    Together AI and OpenAI, side by side with full/LoRA/QLoRA on each catalogue GPU.

    The counts come from, in order: a dataset file given by `path`; the session's train split (what training
    will see) or else its checked dataset; one pasted example repeated `n_examples` times; or quick mode,
    `n_examples` examples of about `avg_tokens` tokens. With options objective "dpo" the data are preference
    pairs (prompt, chosen, rejected), each counted as prompt + chosen + prompt + rejected; in quick mode
    `n_examples` is then the number of pairs and `avg_tokens` a pair's tokens.

    Args:
        session: the person's session: its dataset or split, and the method the Decide step suggested.
        use_dataset: use the session's dataset counts when there are some (false: the numbers given instead).
        path: a dataset file to check and estimate (instead of the session's dataset).
        example: one example (a chat JSON object with a messages list) to count exactly.
        n_examples: how many examples (quick mode, or how many like the pasted example).
        avg_tokens: quick mode: the average tokens per example.
        output_tokens: quick mode: the average reply tokens per example (default: a quarter of the example).
        options: what to compare (EstimateOptions fields): openai_models, epochs, training_price, prices,
            base_models, methods, gpus, gpu_prices, seq_len, batch_size, lora_rank, mfu, requests_per_month,
            include_openai, include_self_hosted, include_hf_jobs, include_together, flavors (Hugging Face Jobs
            flavors), together_rate (USD per 1M tokens), objective (sft for chats, dpo for preference pairs;
            default: dpo when the session's data are preference pairs, sft for chats, else the Decide step's),
            precompute_reference (full DPO without a second model copy), prefer, openai_customer (true for an active OpenAI
            fine-tuning customer; default: the Decide answer), today (YYYY-MM-DD the availability is judged on),
            local_gpus (default: the GPUs found on this machine).
    """
    if path:
        data.readable(ctx, path)  # before any byte of it is read, whichever objective reads it
    options = dict(options or {})
    objective_why = ""
    if not options.get("objective"):  # not said: the session's data, else the Decide recommendation
        decided = Session(decision=session.decision) if session is not None else None
        default = default_objective(session if use_dataset and not path else decided)
        if path:  # the file given decides, as a checked dataset would
            from ftassist.data.preference_pairs import file_kind

            kind = file_kind(path) if Path(path).is_file() else None
            if kind is not None:
                words = "preference pairs" if kind == "pairs" else "chats"
                default = ObjectiveChoice("dpo" if kind == "pairs" else "sft", f"{Path(path).name} holds {words}")
        options["objective"], objective_why = default.objective, default.why
    try:
        chosen = est.EstimateOptions.from_dict(options)
    except (ValueError, TypeError) as exc:
        raise UseCaseError(str(exc)) from None
    if chosen.prefer is None and session is not None and session.decision is not None:
        chosen = dataclasses.replace(chosen, prefer=session.decision.method)
    if chosen.openai_customer is None and session is not None and session.decision is not None:
        # the Decide answer says whether OpenAI rows are open to this person
        chosen = dataclasses.replace(chosen, openai_customer=session.decision.answers.get("openai_customer"))
    if chosen.local_gpus is None:  # the rows "on this machine" are for the GPUs really here
        chosen = dataclasses.replace(chosen, local_gpus=list(config.detect_hardware().get("gpus") or []))
    if chosen.objective == "sft" and use_dataset and not path and data_kind(session) == "pairs":
        raise UseCaseError("The checked dataset holds preference pairs: estimate them with the objective dpo "
                           "(DPO), or check a file of chats for SFT.")
    model = _counting_model(chosen)
    warnings: list[str] = []
    try:
        if chosen.objective == "dpo":
            tokens = _pair_input(session if use_dataset else None, path, example, n_examples, avg_tokens,
                                 output_tokens, model)
        else:
            tokens = _token_input(ctx, session if use_dataset else None, path, example, n_examples, avg_tokens,
                                  output_tokens, model, warnings)
        table = est.estimate_all(tokens, chosen)
    except UseCaseError:
        raise
    except KeyError as exc:  # a name the catalogues do not know
        raise UseCaseError(f"Unknown name: {exc.args[0]}.") from None
    except (ValueError, OSError) as exc:
        raise UseCaseError(str(exc)) from None
    then = default_objective(session).then_objective if session is not None else None
    if chosen.objective == "sft" and then == "dpo":
        warnings.append("The Decide step recommends SFT first, then DPO: this is the SFT run; once it is trained, "
                        "check a file of preference pairs and estimate the DPO run (objective dpo), which starts "
                        "from the SFT run")
    return EstimateResult(table=table, counted=tokens.note, prefer=chosen.prefer, warnings=warnings,
                          objective=chosen.objective, objective_why=objective_why)


def _counting_model(chosen: est.EstimateOptions) -> str | None:
    """The model whose tokens a dataset file is counted for: the open base model named when its own tokenizer
    is on this machine (its rows become exact; OpenAI rows then say they are approximate), else the OpenAI
    model named, else the base model named (o200k, approximate for it), else none (o200k)."""
    from ftassist.data.tokens import has_own_tokenizer

    base = (chosen.base_models or [None])[0]
    if has_own_tokenizer(base):
        return base
    return (chosen.openai_models or chosen.base_models or [None])[0]


def _token_input(ctx: Context, session: Session | None, path: str | None, example: str | None,
                 n_examples: int | None, avg_tokens: float | None, output_tokens: float | None,
                 model: str | None, warnings: list[str]) -> est.TokenInput:
    quick = n_examples is not None or avg_tokens is not None or bool(example and example.strip())
    if path:
        if quick:
            raise UseCaseError("Give either a dataset file or the number of examples and their tokens, not both.")
        checked = data.check_dataset(ctx, path, model=model)
        return _from_report(checked.report, warnings)
    if session is not None and session.split is not None and session.split.train:
        return _from_train_split(session, model)
    if session is not None and session.dataset is not None and (session.report.get("tokens") or {}).get("per_example"):
        return _from_report(session.report, warnings)
    if example and example.strip():
        return est.tokens_from_example(example.strip(), n_examples or 1, model)
    if not quick:
        raise UseCaseError("Nothing to estimate: check a dataset first, or give the number of examples and "
                           "their average tokens (quick mode).")
    return est.tokens_quick(n_examples or 0, avg_tokens or 0, output_tokens)


def _pair_input(session: Session | None, path: str | None, example: str | None, n_examples: int | None,
                avg_tokens: float | None, output_tokens: float | None, model: str | None) -> est.TokenInput:
    """Preference pairs' counts: a pairs file (`path`, else the session's train split or checked dataset), one
    pasted pair repeated `n_examples` times, or quick mode (`avg_tokens` a pair's prompt + chosen + prompt +
    rejected)."""
    from ftassist.data.load import LoadError
    from ftassist.data.preference_pairs import PairError, count_pairs, pair_from_record, read_pairs

    quick = n_examples is not None or avg_tokens is not None or bool(example and example.strip())
    files = [path] if path else []
    if session is not None and not path:
        if session.split is not None and session.split.train:
            files.append(session.split.train)
        if session.dataset is not None:
            files.append(session.dataset.path)
    files = [f for f in files if f and (path or Path(f).is_file())]
    try:
        if files:
            if path and quick:
                raise UseCaseError("Give either a pairs file or the number of pairs and their tokens, not both.")
            # the checked dataset itself (not split yet) is read through the field mapping it was checked with
            mapped = session is not None and session.dataset is not None and files[0] == session.dataset.path
            pairs = read_pairs(files[0], session.dataset.mapping if mapped else None)
            return est.tokens_from_pairs(count_pairs(pairs, model), files[0])
        if example and example.strip():
            try:
                record = json.loads(example)
            except ValueError:
                raise UseCaseError('The pasted pair is not JSON: paste one line like {"prompt": [...], "chosen": '
                                   '[...], "rejected": [...]}.') from None
            counts = count_pairs([pair_from_record(record, 1)] * max(1, int(n_examples or 1)), model)
            return est.tokens_from_pairs(counts)
    except PairError as exc:
        where = f"{files[0]} " if files else "the pasted pair: "
        raise UseCaseError(f"{where}{str(exc).rstrip('.')}. DPO trains on preference pairs. {exc.hint}") from None
    except LoadError as exc:
        raise UseCaseError(str(exc)) from None
    if not quick:
        raise UseCaseError("Nothing to estimate: give a preference pairs file, or the number of pairs and their "
                           "average tokens (prompt + chosen + prompt + rejected).")
    return est.tokens_quick(n_examples or 0, avg_tokens or 0, output_tokens, pairs=True)


def _from_report(report: dict[str, Any], warnings: list[str]) -> est.TokenInput:
    n_valid, n_errors = int(report.get("n_examples") or 0), len(report.get("errors") or [])
    if not n_valid:
        raise UseCaseError(f"{report.get('path')}: no valid examples to estimate; check it to see why.")
    if n_errors:
        warnings.append(f"{n_errors:,} record(s) have errors; the estimate covers the {n_valid:,} valid examples")
    return est.tokens_from_report(report)


def _from_train_split(session: Session, model: str | None) -> est.TokenInput:
    """The train file's counts for the model: the examples training will see, not the raw records checked."""
    split = session.split
    train = Path(split.train)
    try:
        stat = train.stat()
    except OSError:
        raise UseCaseError(f"The train split {train} is gone: split the dataset again in the Data step.") from None
    model = model or (session.dataset.model if session.dataset is not None else None)
    tokens = _count_file(str(train), stat.st_mtime_ns, stat.st_size, model)
    if not tokens.per_example:
        raise UseCaseError(f"The train split {train} has no examples: check the dataset and split it again.")
    n_checked = session.dataset.n_examples if session.dataset is not None else None
    held_out = f"; the {split.n_valid:,} validation examples are held out" if split.n_valid else ""
    of = f" (of {n_checked:,} valid examples checked{held_out})" if n_checked is not None else ""
    how = "exact" if tokens.exact else f"approximate ({tokens.encoding}, not {model}'s own tokenizer)"
    return est.TokenInput(
        per_example=list(tokens.per_example), assistant_per_example=list(tokens.assistant_per_example),
        encoding=tokens.encoding, exact=tokens.exact, source="train split", path=str(train),
        note=f"{how} counts of the train split, {len(tokens.per_example):,} examples in {train}{of}")


@lru_cache(maxsize=8)
def _count_file(path: str, mtime_ns: int, size: int, model: str | None):
    """Counted once per version of the file (the mtime and size are part of the key), not on every click."""
    from ftassist.data.check import count_tokens
    from ftassist.data.load import LoadError

    try:
        return count_tokens(path, model=model)
    except LoadError as exc:
        raise UseCaseError(str(exc)) from None


# -- the sample -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleResult:
    """The session with the shipped sample checked, split, estimated and a tiny-random LoRA run chosen."""

    session: Session
    n_examples: int
    n_train: int
    n_valid: int


@use_case(assistant=True, confirm=True)
def try_sample_data(ctx: Context, session: Session | None = None, valid_fraction: float = 0.1,
                    seed: int = 42) -> SampleResult:
    """Try every step on the shipped sample dataset: checked, split, estimated, and a tiny offline LoRA run set up.

    Args:
        session: the person's session (its decision and runs are kept; its dataset is replaced).
        valid_fraction: the share of the sample held out for validation.
        seed: the random seed of the split.
    """
    if not SAMPLE_PATH.is_file():
        raise UseCaseError(f"The sample dataset is missing from this installation ({SAMPLE_PATH}): "
                           "reinstall ftassist.")
    session = session or Session()
    checked = data.check_dataset(ctx, str(SAMPLE_PATH), keep_copy=True)
    cleaned = data.clean_dataset(ctx, checked.path, valid_fraction=valid_fraction, seed=seed)
    session = session.checked(Dataset(path=checked.path, report=checked.report)).split_into(data.split_of(cleaned))
    result = estimate_options(ctx, session, options={
        "base_models": [SAMPLE_BASE_MODEL], "methods": ["lora"], "gpus": [SAMPLE_GPU], "include_openai": False,
        "allow_network": False})
    option = dataclasses.asdict(result.table.rows[0])
    option.update(model=SAMPLE_RUN_MODEL, id=f"lora:{SAMPLE_RUN_MODEL}:cpu",
                  label=f"LoRA {SAMPLE_RUN_MODEL} (sample run on this machine)",
                  note=f"Sample run: costs estimated for {SAMPLE_BASE_MODEL} on one {SAMPLE_GPU}; "
                       f"the run itself uses the tiny offline model.")
    session = session.chose(option).loaded_sample()
    return SampleResult(session=session, n_examples=int(checked.report.get("n_examples") or 0),
                        n_train=cleaned.n_train, n_valid=cleaned.n_valid)


# -- Providers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProviderReport:
    """Where a fine-tune can run, as of one day, for this person."""

    today: str  # YYYY-MM-DD
    openai_customer: bool | None
    providers: list[providers.ProviderStatus]
    shutting_down: list[dict[str, Any]]  # OpenAI base models shutting down within 90 days (or already shut)


@use_case(assistant=True)
def provider_status(ctx: Context, openai_customer: bool | None = None, today: str | None = None) -> ProviderReport:
    """Say which fine-tuning providers this person can use today, until when, and what each costs, with sources.

    Args:
        openai_customer: true if the person's organisation is an active OpenAI fine-tuning customer (it fine-tuned
            and used a fine-tuned model in the past 60 days); empty: unknown, treated as not a customer.
        today: the day to judge availability on, YYYY-MM-DD; empty: the current date.
    """
    try:
        day = providers.as_date(today)
    except ValueError as exc:
        raise UseCaseError(str(exc)) from None
    soon = providers.shutting_down(providers.WARN_WITHIN_DAYS, day, include_past=True)
    return ProviderReport(today=day.isoformat(), openai_customer=openai_customer,
                          providers=providers.status(day, openai_customer),
                          shutting_down=[s.to_dict() for s in soon])
