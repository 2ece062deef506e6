"""Use cases of the arena: the models compared, blind battles and votes, ratings, the LLM judge,
and the votes in and out.

The rules live here or in the arena station (`ftassist.arena`), never in a front end: a model
enters the registry only after it loaded or answered (`register_model`); the model a run made is
registered only from a run that succeeded (`register_run_model`); a removed model keeps its votes
and leaves the battles served (`remove_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from ftassist.arena import battles as arena_battles
from ftassist.arena import limits as arena_limits
from ftassist.arena import models as arena_models

from .context import Context, NotFound, UseCaseError
from .registry import use_case
from .session import Session

ModelKind = Literal["hf", "hf_adapter", "openai", "openai_compatible"]
Choice = Literal["A", "B", "tie", "bothbad"]


class VotingTooFast(UseCaseError):
    """A voter hit the rate limit: a warning to show, not a failure."""


class SignInRequired(UseCaseError):
    """The arena asks voters to sign in (FTASSIST_ARENA_SIGN_IN=required) and this one has not."""


@dataclass(frozen=True)
class RegisteredModel:
    id: str
    kind: str
    display_name: str
    config: dict[str, Any]
    created_at: str | None = None
    removed_at: str | None = None

    @classmethod
    def from_row(cls, row: dict) -> "RegisteredModel":
        return cls(id=row["id"], kind=row["kind"], display_name=row["display_name"], config=row["config"],
                   created_at=row.get("created_at"), removed_at=row.get("removed_at"))


@dataclass(frozen=True)
class RemovedModel:
    id: str
    display_name: str
    votes_kept: int  # the votes that name it, kept and shown as "(removed)"


@dataclass(frozen=True)
class BattlesGenerated:
    battles: int
    flagged: int
    errors: list[dict[str, Any]]  # {"prompt": index, "model": id, "error": text}


@dataclass(frozen=True)
class Leaderboard:
    rows: list[dict[str, Any]]  # best first: model, model_id, rating, ci_low, ci_high, wins, losses, ties, votes, ...
    votes: int
    flagged_votes: int = 0  # kept but left out: they broke a voting rule (too fast, a burst, an unreviewed prompt)
    # each row also has `evaluation` (its newest stored measures, else None and `evaluation_note`) and `judge`;
    # here: the judge's agreement with the human majority overall, and the models never evaluated
    judge: dict[str, Any] | None = None
    not_evaluated: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LeaderboardSummary:
    """What the Leaderboard tab shows."""

    rows: list[dict[str, Any]]
    votes: int
    models: list[str]  # display names, in the pairwise table's order
    pairwise: dict[str, dict[str, dict[str, Any]]]  # row model -> column model -> {"rate": 0..1, "n": votes}
    headline: dict[str, Any] | None  # two models: the fine-tuned one's win rate, interval, and "verdict"
    flagged_votes: int = 0  # kept but left out: they broke a voting rule
    judge: dict[str, Any] | None = None  # as in Leaderboard
    not_evaluated: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JudgeResult:
    judge: str
    judged: int
    failed: int
    errors: list[dict[str, Any]]  # {"battle_id", "error"} for the calls that failed (not stored: retried later)
    agreement: dict[str, Any]
    leaderboard: list[dict[str, Any]]


@dataclass(frozen=True)
class FileWritten:
    path: str
    count: int


@dataclass(frozen=True)
class VotesImported:
    imported: int
    rows: int
    errors: list[str] = field(default_factory=list)  # "line N: what is wrong"


@dataclass(frozen=True)
class FlaggedVoters:
    voters: list[dict[str, Any]]


@dataclass(frozen=True)
class ArenaCounts:
    models: int
    removed_models: int
    battles: int
    flagged_battles: int
    votes: int
    voters: int
    flagged_voters: int
    flagged_votes: int = 0
    pending_prompts: int = 0  # voters' own prompts waiting for the admin's review


@dataclass(frozen=True)
class VoterPrompts:
    review: str  # pending | approved | rejected
    prompts: list[dict[str, Any]]  # battle_id, prompt, answer_a, answer_b, asked_at, votes


@dataclass(frozen=True)
class ReviewedPrompt:
    battle_id: str
    review: str  # approved | rejected
    prompt: str
    votes_counted: int


# -- helpers -----------------------------------------------------------------------------------------
def _model(ctx: Context, model: str) -> dict:
    found = arena_models.find_model(ctx.store, (model or "").strip())
    if found is None:
        raise NotFound(f"No model {model!r} in the arena: `ftassist arena models` lists them.")
    return found


def _checked_add(ctx: Context, kind: str, name: str, config: dict) -> RegisteredModel:
    """Validate, check that the model loads or answers, then register it and re-check the battles for
    answers that now give a model away."""
    try:
        clean = arena_models.validate_config(kind, config)
        arena_models.ensure_name_free(ctx.store, name)  # before a load that may take a while
        arena_models.check_model(kind, clean)
        model_id = arena_models.add_model(ctx.store, kind, name, clean)
    except arena_models.ModelError as exc:
        raise UseCaseError(f"Not added: {exc}") from None
    arena_battles.reflag_battles(ctx.store)
    return RegisteredModel.from_row(arena_models.get_model(ctx.store, model_id))


# -- the models ----------------------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def register_model(ctx: Context, kind: ModelKind, display_name: str, config: dict) -> RegisteredModel:
    """Add a model to the arena, after checking that it loads (local) or answers (API) within seconds.

    Args:
        kind: hf (Hub id or local folder), hf_adapter (base_model + adapter_dir), openai, or
            openai_compatible (base_url + model of a vLLM/Ollama/TGI server).
        display_name: The name the leaderboard shows (unique among the models in use).
        config: The model's settings, e.g. {"model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"};
            API keys are never stored: give the NAME of the environment variable that holds one.
    """
    return _checked_add(ctx, kind, display_name, config)


@use_case(assistant=True, confirm=True)
def register_run_model(ctx: Context, run_id: str, display_name: str | None = None) -> RegisteredModel:
    """Add the model a training run produced to the arena; only a run that succeeded has one.

    Args:
        run_id: The run (job id) the person selected, e.g. in the Train step.
        display_name: The name the leaderboard shows; by default "fine-tuned RUN_ID".
    """
    if not (run_id or "").strip():
        raise UseCaseError("No run selected: pick a run that succeeded in the Train step (or give its id).")
    from ftassist.train import jobs  # the train station: loaded only when a run is asked for

    run = jobs.get_job(ctx.store, run_id.strip())
    if run is None:
        raise NotFound(f"No run {run_id!r}: `ftassist jobs` lists them.")
    if run["status"] != "succeeded":
        raise UseCaseError(f"The run {run['id']} is {run['status']}: only a run that succeeded produced a model "
                           "to add. Pick a succeeded run in the Train step.")
    try:
        kind, config = arena_models.run_model_config(run["run_dir"])
    except arena_models.ModelError as exc:
        raise UseCaseError(f"Not added: {exc}") from None
    return _checked_add(ctx, kind, display_name or f"fine-tuned {run['id']}", config)


@use_case(assistant=True, confirm=True)
def rename_model(ctx: Context, model: str, new_name: str) -> RegisteredModel:
    """Give an arena model a new display name; its battles and votes follow it.

    Args:
        model: The model's id or current display name.
        new_name: The new display name.
    """
    row = _model(ctx, model)
    try:
        return RegisteredModel.from_row(arena_models.rename_model(ctx.store, row["id"], new_name))
    except arena_models.ModelError as exc:
        raise UseCaseError(str(exc)) from None


@use_case(assistant=True, confirm=True)
def remove_model(ctx: Context, model: str) -> RemovedModel:
    """Take a model out of the arena: no battle with it is served again; its votes are kept and the
    leaderboard shows it as "(removed)".

    Args:
        model: The model's id or display name.
    """
    removed = arena_models.remove_model(ctx.store, _model(ctx, model)["id"])
    return RemovedModel(id=removed["id"], display_name=removed["display_name"], votes_kept=removed["votes_kept"])


@use_case(assistant=True)
def list_models(ctx: Context, include_removed: bool = False) -> list[RegisteredModel]:
    """The models registered in the arena, oldest first.

    Args:
        include_removed: Also list the models taken out (their removed_at is set).
    """
    return [RegisteredModel.from_row(r) for r in arena_models.list_models(ctx.store, include_removed=include_removed)]


@use_case(assistant=True)
def list_judges(ctx: Context) -> list[RegisteredModel]:
    """The registered models that can judge battles (API models only)."""
    return [m for m in list_models(ctx) if m.kind in arena_models.API_KINDS]


# -- battles and votes -------------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def generate_battles(ctx: Context, models: list[str], prompts_path: str | None = None, n: int | None = None,
                     seed: int = 0, temperature: float | None = None, max_new_tokens: int | None = None,
                     session: Session | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> BattlesGenerated:
    """Pre-generate blind battles: every model answers every prompt, one battle per prompt and pair.

    Args:
        models: Two or more model ids or display names.
        prompts_path: A prompt file (.txt one a line, .jsonl chat or prompt rows); by default the
            validation split of the session.
        n: Use a random sample of this many prompts.
        seed: The seed of that sample.
        temperature: Sampling temperature (default: each model's own, else 0.7).
        max_new_tokens: The longest answer, in tokens.
        session: The person's session (its validation split is the default prompt file).
        progress: Called with (done, total, message) as each model finishes (front ends only).
    """
    ids = [_model(ctx, name)["id"] for name in models]
    if len(set(ids)) < 2:
        raise UseCaseError("Pick at least two different models to compare.")
    path = prompts_path
    if not path and session is not None and session.split is not None and session.split.valid:
        path = session.split.valid
    if not path:
        raise UseCaseError("Give a prompt file, or prepare a validation split in the Data step first.")
    sampling = {k: v for k, v in (("temperature", temperature), ("max_new_tokens", max_new_tokens)) if v is not None}
    try:
        prompts = arena_battles.load_prompts(path, n=n, seed=seed)
        result = arena_battles.pregenerate(ctx.store, prompts, ids, sampling=sampling or None, progress=progress)
    except (ValueError, arena_models.ModelError) as exc:  # ModelError is a ValueError; both say what to fix
        raise UseCaseError(str(exc)) from None
    return BattlesGenerated(battles=result["battles"], flagged=result["flagged"], errors=result["errors"])


def _vote_error(exc: arena_battles.VoteError) -> UseCaseError:
    return VotingTooFast(str(exc)) if isinstance(exc, arena_battles.RateLimited) else UseCaseError(str(exc))


def voting_rules() -> arena_limits.VotingRules:
    """The voting rules the settings give (FTASSIST_ARENA_*), or a UseCaseError saying which setting is wrong."""
    try:
        return arena_limits.VotingRules.from_environment()
    except ValueError as exc:
        raise UseCaseError(f"The arena's settings are wrong: {exc}") from None


def _allowed(signed_in: bool) -> arena_limits.VotingRules:
    rules = voting_rules()
    if rules.sign_in == "required" and not signed_in:
        raise SignInRequired("This arena asks voters to sign in with Hugging Face first: use the "
                             "\"Sign in with Hugging Face\" button, then start a round.")
    return rules


@use_case
def next_battle(ctx: Context, voter: str, address: str | None = None,
                signed_in: bool = False) -> arena_battles.BattleView | None:
    """A battle this voter has not seen (prompt and two anonymous answers), or None when none is left.

    Args:
        voter: The voter's id (signed cookie, Hugging Face account, or session).
        address: The voter's hashed client address, for the limits per address.
        signed_in: Whether the voter signed in with Hugging Face.
    """
    rules = _allowed(signed_in)
    try:
        return arena_battles.next_battle(ctx.store, voter, address=address, rules=rules)
    except arena_battles.VoteError as exc:
        raise _vote_error(exc) from None


@use_case
def link_voter(ctx: Context, account: str, alias: str) -> None:
    """Record that a browser's anonymous voter is the person signed in as `account`: a battle voted on as
    either is then not served to the other, and a vote by the other on it does not count.

    Args:
        account: The signed-in voter's id (a keyed hash of the Hugging Face account).
        alias: The same browser's anonymous voter id (its signed cookie).
    """
    from ftassist.arena import voters as arena_voters

    arena_voters.link_alias(ctx.store, account, alias)


@use_case
def vote(ctx: Context, token: str, voter: str, choice: Choice, address: str | None = None,
         signed_in: bool = False) -> arena_battles.Reveal:
    """Record a vote on the battle served under `token`, then reveal the two models' names.

    A vote that breaks a voting rule (before the reading time, past the address's rate, part of a
    one-sided burst, on an own prompt not yet reviewed) is kept but flagged, and left out of the ratings.

    Args:
        token: The opaque token the battle was served under.
        voter: The voter's id.
        choice: A (left is better), B, tie, or bothbad.
        address: The voter's hashed client address.
        signed_in: Whether the voter signed in with Hugging Face.
    """
    rules = _allowed(signed_in)
    try:
        return arena_battles.vote(ctx.store, token, voter, choice, address=address, rules=rules)
    except arena_battles.VoteError as exc:
        raise _vote_error(exc) from None


@use_case
def skip_battle(ctx: Context, voter: str, token: str | None = None, address: str | None = None,
                signed_in: bool = False) -> arena_battles.BattleView | None:
    """Skip the battle on screen (it is not shown to this voter again) and serve the next one.

    Args:
        voter: The voter's id.
        token: The token of the battle skipped; an unknown or missing one just serves the next battle.
        address: The voter's hashed client address.
        signed_in: Whether the voter signed in with Hugging Face.
    """
    _allowed(signed_in)
    if token:
        try:
            arena_battles.skip(ctx.store, token, voter)
        except arena_battles.VoteError:
            pass  # an old or foreign token: nothing to skip, move on
    return next_battle(ctx, voter, address=address, signed_in=signed_in)


@use_case
def ask_own_prompt(ctx: Context, prompt: str, voter: str, address: str | None = None,
                   signed_in: bool = False) -> arena_battles.BattleView:
    """Two random arena models answer the voter's own prompt now, served blind like any battle.

    The calls come out of the address's hourly and the arena's daily budget; the prompt is shown to
    other voters only once the admin approves it.

    Args:
        prompt: The voter's question.
        voter: The voter's id.
        address: The voter's hashed client address.
        signed_in: Whether the voter signed in with Hugging Face.
    """
    rules = _allowed(signed_in)
    try:
        return arena_battles.battle_for_prompt(ctx.store, prompt, voter, address=address, rules=rules)
    except arena_battles.VoteError as exc:
        raise _vote_error(exc) from None
    except Exception:  # noqa: BLE001 - the voter gets no traceback, and no model name, from a failure
        raise UseCaseError("The models could not answer right now; try again later.") from None


@use_case(assistant=True)
def voter_prompts(ctx: Context, review: Literal["pending", "approved", "rejected"] = "pending") -> VoterPrompts:
    """Voters' own questions waiting for review (or those approved or rejected), with both answers.

    Args:
        review: Which ones: pending (default), approved or rejected.
    """
    try:
        return VoterPrompts(review=review, prompts=arena_battles.voter_prompts(ctx.store, review))
    except ValueError as exc:
        raise UseCaseError(str(exc)) from None


@use_case(assistant=True, confirm=True)
def review_voter_prompt(ctx: Context, battle_id: str, approve: bool) -> ReviewedPrompt:
    """Approve a voter's own question (other voters may then get it, and its votes count) or reject it.

    Args:
        battle_id: The battle of that question (from voter_prompts).
        approve: True to approve, False to reject.
    """
    try:
        return ReviewedPrompt(**arena_battles.review_prompt(ctx.store, battle_id, bool(approve)))
    except arena_battles.VoteError as exc:
        raise NotFound(str(exc)) from None


# -- ratings -----------------------------------------------------------------------------------------
@use_case(assistant=True)
def leaderboard(ctx: Context, rounds: int = 1000) -> Leaderboard:
    """The arena's ratings: Bradley-Terry with 95% bootstrap intervals, Elo, wins, losses, ties, and beside
    them each model's newest stored automatic measures and the LLM judge's rating and agreement with people.

    Args:
        rounds: Bootstrap rounds for the intervals (0: none).
    """
    from ftassist.arena import ratings as arena_ratings  # scipy: loaded when a figure is asked for

    from . import leaderboard_measures

    votes = arena_ratings.votes_frame(ctx.store)
    rows = arena_ratings.leaderboard(votes, rounds=max(0, int(rounds)), names=arena_ratings.display_names(ctx.store))
    rows, judge, not_evaluated = leaderboard_measures.beside_votes(ctx, rows, max(0, int(rounds)))
    return Leaderboard(rows=rows, votes=len(votes), flagged_votes=arena_battles.flagged_vote_count(ctx.store),
                       judge=judge, not_evaluated=not_evaluated)


@use_case(assistant=True)
def leaderboard_summary(ctx: Context, rounds: int = 1000) -> LeaderboardSummary:
    """Everything the Leaderboard shows: the ratings, the pairwise win rates, with two models whether the
    fine-tuned one is better, worse, or not yet told apart, and beside the ratings the stored automatic
    measures and the LLM judge's.

    Args:
        rounds: Bootstrap rounds for the intervals (0: none).
    """
    from ftassist.arena import ratings as arena_ratings  # scipy: loaded when a figure is asked for

    from . import leaderboard_measures

    try:
        data = arena_ratings.summary(ctx.store, rounds=max(0, int(rounds)))
    except ValueError as exc:
        raise UseCaseError(f"Could not compute the leaderboard: {exc}") from None
    rates, counts = data["pairwise"], data["pairwise_counts"]
    names = [str(m) for m in rates.index]
    pairwise = {str(r): {str(c): {"rate": None if r == c or not counts.loc[r, c] else float(rates.loc[r, c]),
                                  "n": int(counts.loc[r, c])} for c in rates.columns} for r in rates.index}
    head = data["headline"]
    if head is not None:
        verdict = ("better" if head["win_rate_low"] > 0.5 else "worse" if head["win_rate_high"] < 0.5
                   else "undecided")
        head = dict(head, verdict=verdict)
    rows, judge, not_evaluated = leaderboard_measures.beside_votes(ctx, data["leaderboard"], max(0, int(rounds)))
    return LeaderboardSummary(rows=rows, votes=int(data["votes"]), models=names, pairwise=pairwise,
                              headline=head, flagged_votes=arena_battles.flagged_vote_count(ctx.store),
                              judge=judge, not_evaluated=not_evaluated)


# -- the LLM judge ---------------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def judge_battles(ctx: Context, judge: str | None = None, model: str | None = None, base_url: str | None = None,
                  api_key_env: str | None = None, battle_ids: list[str] | None = None, redo: bool = False,
                  use_reference: bool = False, rounds: int = 1000) -> JudgeResult:
    """Have an LLM judge the battles (each in both orders), kept apart from the human votes, and
    say how often it agrees with people.

    Args:
        judge: A registered API model (id or name) to judge with.
        model: Or: the judge's model name at an endpoint (with base_url) or on OpenAI.
        base_url: The OpenAI-compatible server of `model`, e.g. http://localhost:8000/v1.
        api_key_env: NAME of the environment variable with that judge's key.
        battle_ids: Only these battles (default: all).
        redo: Judge again battles this judge already has a verdict on.
        use_reference: Show the judge the reference answer when there is one.
        rounds: Bootstrap rounds for the judge's ratings.
    """
    from ftassist.arena import judge as arena_judge

    if judge:
        spec: str | dict = _model(ctx, judge)["id"]
    elif model:
        spec = {"kind": "openai_compatible" if base_url else "openai", "model": model}
        spec.update({k: v for k, v in (("base_url", base_url), ("api_key_env", api_key_env)) if v})
    else:
        raise UseCaseError("Pick the judge: a registered API model (judge), or a model name at an endpoint "
                           "(model with base_url).")
    try:
        resolved = arena_judge.resolve_judge(ctx.store, spec)
        results = arena_judge.judge_battles(ctx.store, resolved, battle_ids, redo=redo, use_reference=use_reference)
    except arena_models.ModelError as exc:
        raise UseCaseError(str(exc)) from None
    name = arena_judge.judge_name(resolved)
    failed = [r for r in results if r["error"]]
    return JudgeResult(
        judge=name, judged=len(results) - len(failed), failed=len(failed),
        errors=[{"battle_id": r["battle_id"], "error": r["error"]} for r in failed],
        agreement=arena_judge.human_judge_agreement(ctx.store, judge_model=name),
        leaderboard=arena_judge.judge_leaderboard(ctx.store, name, rounds=max(0, int(rounds))),
    )


# -- votes in and out ---------------------------------------------------------------------------------
def _out_path(ctx: Context, out: str | None, default_name: str) -> Path:
    return Path(out).expanduser() if out else ctx.settings.exports_dir / default_name


@use_case(assistant=True)
def export_votes(ctx: Context, out: str | None = None, format: Literal["csv", "parquet"] | None = None) -> FileWritten:
    """Write every vote (display names, ids, removed-model marks) as CSV or Parquet.

    Args:
        out: The file to write (default: arena_votes.csv in the exports folder).
        format: csv or parquet (default: from the file's suffix).
    """
    from ftassist.arena import export as arena_export  # pandas: loaded when used

    path = _out_path(ctx, out, f"arena_votes.{format or 'csv'}")
    try:
        count = arena_export.export_votes(ctx.store, path, fmt=format)
    except ValueError as exc:
        raise UseCaseError(str(exc)) from None
    return FileWritten(path=str(path), count=count)


@use_case(assistant=True)
def export_dpo(ctx: Context, out: str | None = None, plain: bool = False) -> FileWritten:
    """Write a DPO preference dataset (prompt, chosen, rejected) from the decisive votes.

    Args:
        out: The file to write (.jsonl, or .parquet; default: arena_dpo.jsonl in the exports folder).
        plain: Plain strings instead of chat messages.
    """
    from ftassist.arena import export as arena_export  # pandas: loaded when used

    path = _out_path(ctx, out, "arena_dpo.jsonl")
    return FileWritten(path=str(path), count=arena_export.export_dpo(ctx.store, path, conversational=not plain))


@use_case(confirm=True)
def import_votes(ctx: Context, path: str, skip_bad: bool = False) -> VotesImported:
    """Import votes from a CSV (model_a, model_b, winner[, voter, timestamp]); with a bad row nothing
    is imported unless skip_bad.

    Args:
        path: The CSV file.
        skip_bad: Import the good rows even when some are bad.
    """
    from ftassist.arena import export as arena_export  # pandas: loaded when used

    try:
        result = arena_export.import_votes(ctx.store, path, skip_bad=skip_bad)
    except ValueError as exc:
        raise UseCaseError(str(exc)) from None
    return VotesImported(imported=result.imported, rows=result.rows, errors=result.error_lines())


@use_case(assistant=True)
def flag_voters(ctx: Context, alpha: float = 0.01, min_votes: int = 10) -> FlaggedVoters:
    """Flag for review the voters whose votes agree with the others' far less often than chance allows.

    Args:
        alpha: The binomial test's significance level.
        min_votes: Voters with fewer votes are not tested.
    """
    return FlaggedVoters(voters=arena_battles.flag_suspicious_voters(ctx.store, alpha=alpha, min_votes=min_votes))


@use_case(assistant=True)
def arena_counts(ctx: Context) -> ArenaCounts:
    """How far the arena is: models, battles, votes, voters, what is flagged, and the prompts to review."""
    return ArenaCounts(**arena_battles.arena_stats(ctx.store), flagged_votes=arena_battles.flagged_vote_count(ctx.store),
                       pending_prompts=len(arena_battles.voter_prompts(ctx.store, "pending", limit=100_000)))
