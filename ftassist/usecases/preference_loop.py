"""The preference loop: the arena's votes on a fine-tuned model train its next version, which then
meets its parent in the arena, so the Leaderboard says whether the votes made it better.

1. `train_on_votes`: the votes on battles with the model become DPO pairs (`arena.export.vote_pairs`:
   ties and "both bad" give no pair; imported votes, flagged battles, flagged votes and flagged voters
   are left out; a battle's majority decides), and with at least `min_votes` pairs a local DPO run
   starts from the model's own run output (`start_from`, same base model). The loop is recorded in
   `preference_loops` (parent model, run id). Too few pairs start nothing and say why, vote by vote.
2. `finish_preference_loops`: once the run succeeded, its model is registered in the arena and
   battles against the parent are generated on the prompts the parent was voted on. Idempotent: a
   loop is finished once (a model already registered from the run is reused; only prompts without a
   battle between the two are generated), and a pass interrupted by a restart is taken up again.
   The app runs it in the background: `training.follow_runs` calls `follow_loops` once at start,
   which keeps a thread alive for as long as the job follower runs.
3. `preference_loops`: every loop with its status and, once battles exist, the new model's win rate
   against its parent with its interval and verdict.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftassist.arena import battles as arena_battles
from ftassist.arena import export as arena_export
from ftassist.arena import models as arena_models
from ftassist.redact import scrub

from .context import Context, NotFound, UseCaseError
from .registry import use_case

log = logging.getLogger(__name__)

DEFAULT_MIN_VOTES = 20
PENDING = ("training", "finishing")
LOCAL_KINDS = ("hf", "hf_adapter")


@dataclass(frozen=True)
class PreferenceRun:
    """What pressing "Train on these votes" did: the run started, or why none did, with the votes' fate."""

    started: bool
    message: str  # one paragraph for the person
    parent_model: str  # the arena model voted on (id)
    parent_name: str
    votes: int  # votes on battles with the model
    usable_votes: int  # votes behind a pair
    pairs: int
    min_votes: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason key -> votes (see arena.export.DROP_REASONS)
    dropped_text: list[str] = field(default_factory=list)  # the same in words, most common first
    rules: str = arena_export.PAIR_RULES
    loop_id: str | None = None
    run_id: str | None = None
    run_status: str | None = None
    pairs_path: str | None = None


@dataclass(frozen=True)
class PreferenceLoop:
    """One loop: the parent, its DPO run, the new model, the battles between them, and the verdict."""

    id: str
    parent_model: str
    parent_name: str
    run_id: str
    status: str  # training | finishing | done | failed
    pairs: int
    votes: int
    usable_votes: int
    child_model: str | None = None
    child_name: str | None = None
    battles: int | None = None
    message: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    # the new model against its parent, from the votes on their battles (ties as half)
    head_to_head: dict[str, Any] | None = None


# -- starting ------------------------------------------------------------------------------------------
@use_case(assistant=True, confirm=True)
def train_on_votes(ctx: Context, model: str, min_votes: int = DEFAULT_MIN_VOTES, dpo_beta: float | None = None,
                   num_epochs: float | None = None, max_steps: int | None = None) -> PreferenceRun:
    """Train the next version of a fine-tuned arena model on the votes it got (DPO, a local run that
    starts from the model's own run), then pit it against the model in the arena.

    Args:
        model: The fine-tuned arena model voted on (id or display name); it must come from a local run.
        min_votes: Start only with at least this many usable preference pairs (one per battle).
        dpo_beta: DPO's beta (default 0.1; lower lets the model move further from where it starts).
        num_epochs: Passes over the pairs (default: the run preset's).
        max_steps: Stop after this many optimizer steps (a quick trial).
    """
    parent = arena_models.find_model(ctx.store, (model or "").strip())
    if parent is None:
        raise NotFound(f"No model {model!r} in the arena: `ftassist arena models` lists them.")
    spec = _dpo_spec(parent)  # refuses a model that no local run made, before any vote is read
    min_votes = max(1, int(min_votes))
    pending = ctx.store.query_rows(
        "SELECT run_id FROM preference_loops WHERE parent_model = ? AND status IN ('training', 'finishing')",
        [parent["id"]])
    if pending:
        raise UseCaseError(f"{parent['display_name']} is already training on its votes (run {pending[0][0]}): "
                           "wait for that run to end; its model then meets this one in the arena.")
    made = arena_export.vote_pairs(ctx.store, parent["id"], system_prompt=parent["config"].get("system_prompt"))
    counts = dict(parent_model=parent["id"], parent_name=parent["display_name"], votes=made.votes,
                  usable_votes=made.usable, pairs=len(made.pairs), min_votes=min_votes, dropped=made.dropped,
                  dropped_text=made.dropped_text())
    fate = _fate(made)
    if len(made.pairs) < min_votes:
        message = (f"Not started: {len(made.pairs)} usable preference pair(s) from the votes on "
                   f"{parent['display_name']}, and at least {min_votes} are needed. {fate} Collect more votes "
                   "(share the arena), or lower the minimum.")
        return PreferenceRun(started=False, message=message, **counts)
    loop_id = uuid.uuid4().hex[:12]
    pairs_path = arena_export.write_pairs(made.pairs, ctx.settings.prepared_dir / f"votes-{loop_id}" / "pairs.jsonl")
    spec.update(train_file=str(pairs_path), valid_file=None)
    if dpo_beta is not None:
        spec["dpo_beta"] = float(dpo_beta)
    if num_epochs:
        spec["num_epochs"] = float(num_epochs)
    if max_steps:
        spec["max_steps"] = int(max_steps)
    from . import training  # the Train step's use case starts (or queues) the run and phrases its refusals

    started = training.start_run(ctx, spec)
    ctx.store.execute(
        "INSERT INTO preference_loops (id, parent_model, run_id, pairs, votes, usable_votes, pairs_path)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [loop_id, parent["id"], started.run_id, len(made.pairs), made.votes, made.usable, str(pairs_path)])
    message = (f"{started.message} It trains {parent['display_name']} on {len(made.pairs)} preference pairs "
               f"(DPO, beta {spec['dpo_beta']:g}). {fate} When it ends, its model joins the arena with battles "
               f"against {parent['display_name']} on the prompts voted on, so the Leaderboard shows whether "
               "the votes made it better.")
    return PreferenceRun(started=True, message=message, loop_id=loop_id, run_id=started.run_id,
                         run_status=started.status, pairs_path=str(pairs_path), **counts)


def _fate(made: arena_export.VotePairs) -> str:
    """What became of the votes, in one or two sentences."""
    text = f"Of {made.votes} vote(s), {made.usable} made pairs"
    dropped = made.dropped_text()
    return text + (f"; left out: {'; '.join(dropped)}." if dropped else ".")


def _dpo_spec(parent: dict) -> dict[str, Any]:
    """The DPO run's settings from the parent's own run: same base model and method, starting from its output."""
    from ftassist.train.spec import JobSpec

    name, config = parent["display_name"], parent["config"]
    run_dir = config.get("run_dir")
    if parent["kind"] not in LOCAL_KINDS:
        raise UseCaseError(f"{name} is an API model ({parent['kind']}): training on votes runs here, from a "
                           "model folder. Pick a model a local run fine-tuned (`ftassist arena add-model "
                           "--from-run RUN_ID` registers one).")
    if not run_dir or not (Path(run_dir) / "spec.json").is_file():
        raise UseCaseError(f"{name} was not fine-tuned by a run here, so there is no run to continue: pick a model "
                           "registered from a training run (`ftassist arena add-model --from-run RUN_ID`).")
    parent_spec = JobSpec.load(run_dir)
    if parent_spec.backend != "local":
        raise UseCaseError(f"{name} was trained on {parent_spec.backend}: training on votes starts a local run "
                           "from a model folder here.")
    from ftassist.train.lineage import StartError, inspect_start

    start_from = config["adapter_dir"] if parent["kind"] == "hf_adapter" else config["model"]
    try:
        base = inspect_start(start_from).base_model  # the base it was trained on (tiny-random: the worker copies it)
    except StartError as exc:
        raise UseCaseError(f"{name} cannot be trained further: {exc}") from None
    keep = ("method", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "max_seq_length",
            "per_device_batch_size", "gradient_accumulation_steps", "seed")
    spec = {key: getattr(parent_spec, key) for key in keep}
    spec.update(backend="local", base_model=base, objective="dpo", dpo_beta=JobSpec().dpo_beta,
                start_from=start_from)
    return spec


# -- finishing -----------------------------------------------------------------------------------------
_finish_lock = threading.Lock()  # one finishing pass at a time per process (the follower, or a direct call)


@use_case
def finish_preference_loops(ctx: Context) -> list[PreferenceLoop]:
    """Take every loop whose run ended one step further: a failed run fails its loop; a succeeded run's
    model is registered and meets its parent in new battles. Safe to call any number of times; returns
    the loops."""
    if _finish_lock.acquire(blocking=False):
        try:
            _finish_pending(ctx)
        finally:
            _finish_lock.release()
    return preference_loops(ctx)


def _finish_pending(ctx: Context) -> None:
    from ftassist.train import jobs

    rows = ctx.store.query("SELECT * FROM preference_loops WHERE status IN ('training', 'finishing')"
                           " ORDER BY created_at")
    if not rows:
        return
    jobs.tick(ctx.store)  # the runs' latest events (the app's follower does it too: harmless)
    for loop in rows:
        job = jobs.get_job(ctx.store, loop["run_id"])
        if job is None:
            _end(ctx, loop["id"], "failed", f"its run {loop['run_id']} is gone")
        elif job["status"] in ("failed", "cancelled", "interrupted"):
            why = f": {job['error']}" if job.get("error") else ""
            _end(ctx, loop["id"], "failed", f"its run {job['id']} {job['status']}{why}")
        elif job["status"] == "succeeded":
            ctx.store.execute("UPDATE preference_loops SET status = 'finishing' WHERE id = ?", [loop["id"]])
            try:
                _meet_parent(ctx, loop, job)
            except Exception as exc:  # a loop that cannot finish says why; the others go on
                log.exception("preference loop %s could not finish", loop["id"])
                _end(ctx, loop["id"], "failed", scrub(f"{type(exc).__name__}: {exc}", limit=500))


def _meet_parent(ctx: Context, loop: dict, job: dict) -> None:
    """Register the run's model (once) and generate its battles against the parent on the voted prompts."""
    from . import arena as arena_cases

    parent_id = loop["parent_model"]
    child_id = loop["child_model"] or _model_of_run(ctx, job["run_dir"])
    if child_id is None:
        parent = arena_models.find_model(ctx.store, parent_id)
        parent_name = parent["display_name"] if parent else parent_id
        child_id = arena_cases.register_run_model(ctx, job["id"], f"{parent_name} + votes ({job['id']})").id
    ctx.store.execute("UPDATE preference_loops SET child_model = ? WHERE id = ?", [child_id, loop["id"]])
    prompts = [prompt for (prompt,) in ctx.store.query_rows(
        "SELECT DISTINCT b.prompt FROM battles b JOIN votes v ON v.battle_id = b.id"
        " WHERE ? IN (b.model_a, b.model_b) AND b.flagged_reason IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM battles m WHERE m.prompt = b.prompt"
        " AND ((m.model_a = ? AND m.model_b = ?) OR (m.model_a = ? AND m.model_b = ?)))"
        " ORDER BY b.prompt", [parent_id, parent_id, child_id, child_id, parent_id])]
    errors: list[dict] = []
    if prompts:
        result = arena_battles.pregenerate(ctx.store, prompts, [parent_id, child_id])
        errors = result["errors"]
    (count,), = ctx.store.query_rows(
        "SELECT count(*) FROM battles WHERE (model_a = ? AND model_b = ?) OR (model_a = ? AND model_b = ?)",
        [parent_id, child_id, child_id, parent_id])
    message = (f"{count} battles against the parent are ready for votes"
               + (f"; {len(errors)} answers failed (first: {errors[0]['error']})" if errors else ""))
    _end(ctx, loop["id"], "done" if count else "failed", message, battles=int(count))


def _model_of_run(ctx: Context, run_dir: str) -> str | None:
    """The arena model already registered from this run folder (a person may have added it), if any."""
    wanted = Path(run_dir).resolve()
    for row in arena_models.list_models(ctx.store):
        source = row["config"].get("run_dir")
        if source and Path(source).resolve() == wanted:
            return row["id"]
    return None


def _end(ctx: Context, loop_id: str, status: str, message: str, battles: int | None = None) -> None:
    ctx.store.execute(
        "UPDATE preference_loops SET status = ?, message = ?, battles = coalesce(?, battles),"
        " finished_at = current_timestamp WHERE id = ?", [status, message, battles, loop_id])


# -- following in the background -------------------------------------------------------------------------
_follower: dict[str, Any] = {"thread": None, "stop": None}


def follow_loops(ctx: Context, interval: float = 2.0) -> threading.Thread:
    """Finish loops in a daemon thread for as long as the job follower (`jobs.start_ingest_loop`) runs:
    `training.follow_runs` calls this once when the app starts. Idempotent."""
    from ftassist.train import jobs

    thread = _follower.get("thread")
    if thread is not None and thread.is_alive():
        return thread
    ingest_thread = jobs.start_ingest_loop(ctx.store)  # the running one: it is what this thread follows
    stop = threading.Event()

    def run() -> None:
        while ingest_thread.is_alive():
            try:
                finish_preference_loops(ctx)
            except Exception:  # the follower never dies of one bad pass
                log.exception("preference loops: a finishing pass failed")
            if stop.wait(interval):
                return

    thread = threading.Thread(target=run, name="ftassist-preference-loops", daemon=True)
    _follower.update(thread=thread, stop=stop)
    thread.start()
    return thread


def stop_following(timeout: float = 30.0) -> None:
    """Stop the background thread (tests; the app's ends with the process)."""
    stop, thread = _follower.get("stop"), _follower.get("thread")
    if stop is not None:
        stop.set()
    if thread is not None:
        thread.join(timeout)
    _follower.update(thread=None, stop=None)


# -- reading --------------------------------------------------------------------------------------------
@use_case(assistant=True)
def preference_loops(ctx: Context) -> list[PreferenceLoop]:
    """The runs trained on arena votes, newest first: status, the new model, its battles against its parent,
    and, once those have votes, whether it beats the parent (win rate with its 95% interval)."""
    rows = ctx.store.query(
        "SELECT l.*, coalesce(p.display_name, l.parent_model) AS parent_name, c.display_name AS child_name"
        " FROM preference_loops l LEFT JOIN arena_models p ON p.id = l.parent_model"
        " LEFT JOIN arena_models c ON c.id = l.child_model ORDER BY l.created_at DESC, l.id")
    out = []
    for row in rows:
        head = _head_to_head(ctx, row["child_model"], row["parent_model"]) if row["child_model"] else None
        out.append(PreferenceLoop(
            id=row["id"], parent_model=row["parent_model"], parent_name=row["parent_name"], run_id=row["run_id"],
            status=row["status"], pairs=row["pairs"], votes=row["votes"], usable_votes=row["usable_votes"],
            child_model=row["child_model"], child_name=row["child_name"], battles=row["battles"],
            message=row["message"], created_at=_text(row["created_at"]), finished_at=_text(row["finished_at"]),
            head_to_head=head))
    return out


def _head_to_head(ctx: Context, child: str, parent: str) -> dict[str, Any] | None:
    from ftassist.arena import ratings

    df = ratings.votes_frame(ctx.store)
    mine = df[((df["model_a"] == child) & (df["model_b"] == parent)) | ((df["model_a"] == parent)
                                                                       & (df["model_b"] == child))]
    if mine.empty:
        return None
    head = ratings.headline(mine, child, parent)
    verdict = ("better" if head["win_rate_low"] > 0.5 else "worse" if head["win_rate_high"] < 0.5 else "undecided")
    return {key: head[key] for key in ("wins", "losses", "ties", "votes", "win_rate", "win_rate_low",
                                       "win_rate_high")} | {"verdict": verdict}


def _text(value: Any) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if hasattr(value, "isoformat") else value


__all__ = ["PreferenceLoop", "PreferenceRun", "finish_preference_loops", "follow_loops", "preference_loops",
           "stop_following", "train_on_votes"]
