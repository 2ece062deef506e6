"""The Together AI backend: hosted fine-tuning of open models, billed per token.

It runs inside the worker process like the OpenAI backend and reports through the same events
file (`ftassist.train.events`), in the same order: check the base model (its limits: a wrong
model or key fails here, before any data leaves the machine), upload the files and wait for
Together's server-side check (a refused file ends the run with the check's own words), show
Together's price estimate, create the job, then poll the job, its events (-> `message` and
`checkpoint`) and its metrics (`train/loss` -> `log`, `eval/...loss` -> `eval`) until it ends,
and finish with the output model's name (the arena calls it on Together's OpenAI-compatible
endpoint, see `ftassist.arena.models.run_model_config`).

Preference tuning (spec.objective "dpo"): the canonical pairs are converted to Together's preference
rows (`ftassist.data.preference_pairs`) in the run folder and those are uploaded; the job is created with
training_method "dpo" and the spec's dpo_beta, and, when spec.start_from names an earlier Together job or
its output model (SFT first, then DPO), from that checkpoint (`from_checkpoint`) instead of the bare base
model.

The key comes from the caller (the session) or TOGETHER_API_KEY and lives only in the client:
never in the spec, the events, the log or an error (every text that could carry it goes through
`scrub`). Rate limits, 5xx and connection errors are retried by the SDK itself (`max_retries`,
with its backoff and the server's Retry-After); each 429 is reported as a warning event first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from ftassist.formatting import format_money
from ftassist.redact import scrub
from ftassist.train.spec import count_records
from ftassist.train.stop import StopFlag, sleep_until

KEY_ENV = "TOGETHER_API_KEY"
BASE_URL_ENV = "TOGETHER_BASE_URL"  # the SDK's own setting (an API root: the routes add /v1/...)
DEFAULT_API_ROOT = "https://api.together.ai"  # the SDK's default root (together 3.x)
DEFAULT_POLL_INTERVAL = 15.0  # seconds between status polls (jobs take minutes to hours)
DEFAULT_RETRIES = 5  # the SDK's retries per request: its backoff doubles from 1 s up to 10 s
FILE_CHECK_WAIT_S = 1800.0  # how long the server-side file check may take
SUFFIX_MAX = 40  # "Up to 40 character suffix" (the SDK's create() docstring)
TRAINING_METHODS = ("sft", "dpo")  # training_method of `fine_tuning.create`: it follows spec.objective
PREFERENCE_FILES = {"train": "together_train_pairs.jsonl", "valid": "together_valid_pairs.jsonl"}
FILE_DONE = ("COMPLETED",)
FILE_REFUSED = ("FAILED", "INVALID_FORMAT")
JOB_RUNNING = ("pending", "queued", "running", "compressing", "uploading", "cancel_requested")


class TogetherBackendError(RuntimeError):
    """A failure the person can act on; the message is safe to show (no key in it)."""

    def __init__(self, message: str, *, code: str | None = None, hint: str = ""):
        super().__init__(message)
        self.code = code
        self.hint = hint


# -- keys, clients, addresses ---------------------------------------------------------------
def resolve_api_key(api_key: str | None = None) -> str | None:
    """The key given (from the session), else TOGETHER_API_KEY."""
    key = api_key or os.environ.get(KEY_ENV)
    return key.strip() if key and key.strip() else None


def api_root(settings: dict | None = None) -> str:
    """The API root the run talks to: the spec's `together.base_url`, else TOGETHER_BASE_URL, else Together's."""
    root = (settings or {}).get("base_url") or os.environ.get(BASE_URL_ENV) or DEFAULT_API_ROOT
    return str(root).rstrip("/")


def inference_base_url(settings: dict | None = None) -> str:
    """Where the fine-tuned model answers as an OpenAI-compatible endpoint: `together.inference_base_url`,
    else the API root + /v1 (Together serves both from one host)."""
    given = (settings or {}).get("inference_base_url")
    return str(given).rstrip("/") if given else api_root(settings) + "/v1"


def make_client(api_key: str | None = None, base_url: str | None = None, max_retries: int = DEFAULT_RETRIES,
                timeout: float = 120.0, on_rate_limit: Callable[[int], Any] | None = None):
    """A `together.Together` client; raises TogetherBackendError when there is no key."""
    import together

    key = resolve_api_key(api_key)
    if not key:
        raise TogetherBackendError(f"no API key: set {KEY_ENV} or enter the key in the app.", code="no_api_key",
                                   hint=f"Create a key at https://api.together.ai/settings/api-keys and set {KEY_ENV}.")

    def hook(response) -> None:
        if response.status_code == 429 and on_rate_limit is not None:
            on_rate_limit(response.status_code)

    http_client = together.DefaultHttpxClient(event_hooks={"response": [hook]})
    return together.Together(api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout,
                             http_client=http_client)


# -- errors ---------------------------------------------------------------------------------
def describe_error(exc: BaseException, secrets: tuple = ()) -> TogetherBackendError:
    """Turn an SDK exception into a one-line message that says what to do (keys scrubbed)."""
    import together

    if isinstance(exc, TogetherBackendError):
        return TogetherBackendError(scrub(exc, *secrets), code=exc.code, hint=exc.hint)
    message = scrub(_api_message(exc), *secrets, limit=500)
    if isinstance(exc, together.AuthenticationError):
        return TogetherBackendError(
            f"Together refused the key, or the account has no credit left (401): check {KEY_ENV} and the billing "
            "settings", code="invalid_api_key",
            hint=f"Set a valid key in {KEY_ENV} (or the app's key field); add credit at https://api.together.ai/settings/billing.")
    if isinstance(exc, together.PermissionDeniedError):
        return TogetherBackendError(f"the key may not do this (403): {message}", code="permission_denied",
                                    hint="Use a key of an account (or project) allowed to fine-tune.")
    if isinstance(exc, together.RateLimitError):
        return TogetherBackendError(f"still rate limited after several retries (429): {message}", code="rate_limit",
                                    hint="Wait a minute and start again.")
    if isinstance(exc, together.APIConnectionError):
        return TogetherBackendError(f"could not reach Together: {message}", code="connection",
                                    hint=f"Check the network and the API address ({BASE_URL_ENV} or the spec's together.base_url).")
    if isinstance(exc, together.NotFoundError):
        return TogetherBackendError(f"Together does not know this (404): {message}", code="not_found",
                                    hint="Check the base model: it must be one Together fine-tunes "
                                         "(https://docs.together.ai/docs/fine-tuning/supported-models).")
    if isinstance(exc, together.APIStatusError):
        return TogetherBackendError(f"Together refused the request ({exc.status_code}): {message}",
                                    code=str(exc.status_code),
                                    hint="Fix what the message names (model, file, setting) and start again.")
    if isinstance(exc, ValueError):  # the SDK checks the settings against the model's limits before sending
        return TogetherBackendError(f"the settings do not fit this model: {message}", code="invalid_settings",
                                    hint="Change the setting named (LoRA rank, batch size, epochs...) and start again.")
    return TogetherBackendError(scrub(f"{type(exc).__name__}: {exc}", *secrets, limit=500))


def _api_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return " ".join(str(getattr(exc, "message", None) or exc).split())


# -- the request ----------------------------------------------------------------------------
def validate_suffix(suffix: str | None) -> str | None:
    """The suffix, stripped (None when empty); it becomes part of the model name, at most 40 characters."""
    suffix = (suffix or "").strip() or None
    if suffix and len(suffix) > SUFFIX_MAX:
        raise TogetherBackendError(f"the suffix is {len(suffix)} characters long: Together allows at most {SUFFIX_MAX}.",
                                   code="invalid_settings")
    return suffix


def training_method(spec) -> str:
    """Together's training method for `spec`: its objective ("sft" or "dpo"), which together.training_method
    may only repeat (spec.validate refuses a mismatch)."""
    settings = dict(getattr(spec, "together", None) or {})
    objective = getattr(spec, "objective", "sft") or "sft"
    method = settings.get("training_method") or objective
    if method not in TRAINING_METHODS or method != objective:
        raise TogetherBackendError(f"together.training_method {method!r} does not match the objective {objective!r}: "
                                   "leave it empty (it follows the objective).", code="invalid_settings")
    return method


def _method_arguments(spec) -> dict[str, Any]:
    """The training method's part of `fine_tuning.create`: SFT with train_on_inputs, or DPO with its beta."""
    settings = dict(getattr(spec, "together", None) or {})
    if training_method(spec) == "dpo":
        return {"training_method": "dpo", "dpo_beta": float(spec.dpo_beta)}
    return {"training_method": "sft", "train_on_inputs": settings.get("train_on_inputs", "auto")}


def _estimate_method(spec) -> dict[str, Any]:
    """The same method as the price estimate takes it."""
    if training_method(spec) == "dpo":
        return {"method": "dpo", "dpo_beta": float(spec.dpo_beta)}
    return {"method": "sft", "train_on_inputs": "auto"}


def start_checkpoint(spec) -> str | None:
    """The Together job id or output model (optionally `:STEP`) a DPO run continues from; None: the base model."""
    start = (getattr(spec, "start_from", None) or "").strip()
    return start or None


def _training_type(spec) -> dict[str, Any]:
    """LoRA (rank, alpha, dropout) or full, as the price estimate takes it."""
    if spec.method == "full":
        return {"type": "Full"}
    return {"type": "Lora", "lora_r": int(spec.lora_r), "lora_alpha": int(spec.lora_alpha),
            "lora_dropout": float(spec.lora_dropout), "lora_trainable_modules": "all-linear"}


def create_arguments(spec, training_file: str, validation_file: str | None) -> dict[str, Any]:
    """`fine_tuning.create`'s arguments from the spec: model, epochs, learning rate, LoRA or full, evals, suffix."""
    settings = dict(spec.together or {})
    args: dict[str, Any] = {
        "training_file": training_file, "model": spec.base_model, "n_epochs": int(spec.num_epochs),
        "lora": spec.method != "full", "suffix": validate_suffix(settings.get("suffix")),
        "batch_size": settings.get("batch_size") or "max", "random_seed": int(spec.seed),
        **_method_arguments(spec),
    }
    checkpoint = start_checkpoint(spec)
    if checkpoint:  # the SDK takes a model or a checkpoint, not both; the limits still come from the base model
        args.update(model=None, from_checkpoint=checkpoint)
    if spec.learning_rate is not None:  # None: Together's default for the model
        args["learning_rate"] = float(spec.learning_rate)
    if args["lora"]:
        args.update(lora_r=int(spec.lora_r), lora_alpha=float(spec.lora_alpha), lora_dropout=float(spec.lora_dropout))
    if validation_file:
        args.update(validation_file=validation_file, n_evals=int(settings.get("n_evals") or 0))
    if spec.max_seq_length:
        args["max_seq_length"] = int(spec.max_seq_length)
    return args


# -- files ------------------------------------------------------------------------------------
def upload_paths(spec, run_dir: str | Path, writer) -> dict[str, str | None]:
    """The files to upload by role: the spec's own for SFT; for DPO, its pairs converted to Together's
    preference rows in the run folder (a pair that cannot be converted fails the run, naming its line)."""
    from ftassist.data.preference_pairs import ProviderFileError, write_provider_files

    given = {"train": spec.train_file, "valid": getattr(spec, "valid_file", None) or None}
    if training_method(spec) != "dpo":
        return given
    try:
        return write_provider_files(given, run_dir, PREFERENCE_FILES, "Together's", writer.message)
    except ProviderFileError as exc:
        raise TogetherBackendError(str(exc), code="invalid_file", hint=exc.hint) from None


def upload_file(client, path: str | Path, *, should_stop: Callable[[], bool], poll_interval: float = 2.0,
                max_wait: float = FILE_CHECK_WAIT_S) -> str:
    """Upload a JSONL for fine-tuning (the SDK checks its format first), wait for Together's own check; its id."""
    from together.lib import check_file
    from together.lib.types.error import FileTypeError

    path = Path(path)
    try:
        obj = client.files.upload(file=path, purpose="fine-tune", check=True)
    except FileTypeError:
        report = check_file(path, purpose="fine-tune")
        where = f" (line {report['line_number']})" if report.get("line_number") else ""
        raise TogetherBackendError(f"{path.name} was refused by the format check{where}: {report.get('message')}",
                                   code="invalid_file", hint=_FILE_HINT) from None
    start = time.monotonic()
    while (obj.processing_status or "COMPLETED") not in FILE_DONE + FILE_REFUSED:
        if should_stop():
            return obj.id
        if time.monotonic() - start > max_wait:
            raise TogetherBackendError(f"{path.name} was still being checked by Together after {int(max_wait)} s: "
                                       "try again later.", code="file_check_timeout")
        time.sleep(poll_interval)
        obj = client.files.retrieve(obj.id)
    if obj.processing_status in FILE_REFUSED:
        report = obj.validation_report
        detail = (report.error if report is not None and report.error else None) or "no reason given"
        raise TogetherBackendError(f"{path.name} was refused by Together's check ({obj.processing_status}): {detail}",
                                   code="invalid_file", hint=_FILE_HINT)
    return obj.id


_FILE_HINT = ("Check the file with the Data step (`ftassist check FILE`), fix the line named, and start again; "
              "Together's format: https://docs.together.ai/docs/fine-tuning-data-preparation")


def show_estimate(client, writer, spec, training_file: str, validation_file: str | None, n_evals: int) -> None:
    """Together's own price estimate as a `message` (a warning when it is above the account's limit)."""
    try:
        kwargs: dict[str, Any] = dict(training_file=training_file, model=spec.base_model,
                                      n_epochs=int(spec.num_epochs), n_evals=n_evals,
                                      training_method=_estimate_method(spec), training_type=_training_type(spec))
        if start_checkpoint(spec):
            kwargs["from_checkpoint"] = start_checkpoint(spec)
        if validation_file:
            kwargs["validation_file"] = validation_file
        estimate = client.fine_tuning.estimate_price(**kwargs)
    except Exception as exc:  # the estimate only informs: create() says whether the job may start
        import together

        if isinstance(exc, (together.AuthenticationError, together.PermissionDeniedError)):
            raise
        writer.message(f"Together gave no price estimate: {describe_error(exc)}", level="warning")
        return
    if not getattr(estimate, "estimation_available", False):
        writer.message(f"Together gave no price estimate ({getattr(estimate, 'unavailable_reason', 'no reason')})",
                       level="warning")
        return
    tokens = f"{int(estimate.estimated_train_token_count or 0):,} training"
    if estimate.estimated_eval_token_count:
        tokens += f" + {int(estimate.estimated_eval_token_count):,} evaluation"
    writer.message(f"Together's estimate: {format_money(estimate.estimated_total_price)} for {tokens} tokens")
    if estimate.allowed_to_proceed is False:
        writer.message(f"the estimate is above the account's credit limit ({format_money(estimate.user_limit)}): "
                       "add credit at https://api.together.ai/settings/billing or the job will not start",
                       level="warning")


# -- following the job ------------------------------------------------------------------------
def _event_key(event) -> tuple:
    return (event.created_at, event.type, event.message, event.step)


def _metric_step(row: dict) -> int | None:
    for key in ("train/global_step", "eval/global_step", "global_step", "step"):
        if isinstance(row.get(key), (int, float)):
            return int(row[key])
    return None


def _eval_loss(row: dict) -> float | None:
    for key, value in row.items():
        if key.startswith("eval/") and key.endswith("loss") and isinstance(value, (int, float)):
            return float(value)
    return None


_LOGGED_TRAIN_KEYS = ("train/loss", "train/epoch", "train/learning_rate", "train/global_step")


def _other_train_metrics(row: dict) -> dict[str, float]:
    """Every other numeric train/ metric of a row (a DPO job's reward accuracy and margins, for instance), under
    its name without the prefix and with '/' as '_', so a log event carries what the job reported."""
    return {key[len("train/"):].replace("/", "_"): float(value) for key, value in row.items()
            if key.startswith("train/") and key not in _LOGGED_TRAIN_KEYS
            and isinstance(value, (int, float)) and not isinstance(value, bool)}


class _Follower:
    """What the poll loop has seen of one job: events, metrics, losses, the step reached."""

    def __init__(self, client, writer, job_id: str, secrets: tuple):
        self.client, self.writer, self.job_id, self.secrets = client, writer, job_id, secrets
        self.seen: set[tuple] = set()
        self.metrics_from = 0
        self.metrics_ok = True
        self.step: int | None = None
        self.total_steps: int | None = None
        self.first_loss = self.final_loss = self.best_eval = None
        self.last_error: str | None = None

    def poll(self, job) -> None:
        for event in self.client.fine_tuning.list_events(self.job_id).data or []:
            key = _event_key(event)
            if key in self.seen:
                continue
            self.seen.add(key)
            self.total_steps = event.total_steps or self.total_steps
            text = scrub(event.message, *self.secrets)
            if event.type == "job_error":
                self.last_error = text
            if event.type == "checkpoint_save" and event.step is not None:
                self.writer.checkpoint(step=int(event.step), path=event.checkpoint_path or f"{self.job_id}:{event.step}")
            else:
                level = event.level or "info"
                level = "warning" if "warn" in level else "error" if "error" in level else "info"
                self.writer.message(text, level=level)
        if self.metrics_ok:
            self._metrics(job)

    def _metrics(self, job) -> None:
        import together

        try:
            rows = self.client.fine_tuning.list_metrics(self.job_id, global_step_from=self.metrics_from).metrics or []
        except together.NotFoundError:  # an API without the metrics route: status and events only
            self.metrics_ok = False
            return
        eta = None
        if job.progress is not None and job.progress.estimate_available:
            eta = float(job.progress.seconds_remaining)
        for row in rows:
            step = _metric_step(row)
            if step is None or step < self.metrics_from:
                continue
            if isinstance(row.get("train/loss"), (int, float)):
                loss = float(row["train/loss"])
                self.first_loss = loss if self.first_loss is None else self.first_loss
                self.final_loss = loss
                self.step = step
                self.writer.log(step=step, total_steps=self.total_steps, epoch=row.get("train/epoch"), loss=loss,
                                learning_rate=row.get("train/learning_rate"), eta_s=eta, **_other_train_metrics(row))
            eval_loss = _eval_loss(row)
            if eval_loss is not None:
                self.best_eval = eval_loss if self.best_eval is None else min(self.best_eval, eval_loss)
                self.writer.eval(step=step, eval_loss=eval_loss)
        if rows:
            self.metrics_from = max(self.metrics_from, max((_metric_step(r) or 0) for r in rows) + 1)


# -- end to end -------------------------------------------------------------------------------
def run_job(spec, run_dir: str | Path, writer, stop: StopFlag | Callable[[], bool] | None = None, *,
            client=None, api_key: str | None = None, poll_interval: float | None = None) -> dict:
    """Run `spec` as a Together fine-tuning job end to end, reporting through `writer` (EventWriter).

    `stop` (the worker's StopFlag, or any callable) says when to cancel: the remote job is cancelled
    and the run ends `cancelled`. Never raises for API errors: every failure is one `failed` event.
    Returns {"status", "external_id", "output_model", "error"}.
    """
    settings = dict(getattr(spec, "together", None) or {})
    poll = float(poll_interval if poll_interval is not None else settings.get("poll_interval")
                 or os.environ.get("FTASSIST_TOGETHER_POLL_INTERVAL") or DEFAULT_POLL_INTERVAL)
    own_stop = stop is None
    flag = StopFlag() if own_stop else stop
    if own_stop:
        flag.install()
    secrets: tuple = (api_key, resolve_api_key(api_key))
    result: dict[str, Any] = {"status": None, "external_id": None, "output_model": None, "error": None}

    def on_rate_limit(status: int) -> None:
        writer.message(f"rate limited by Together ({status}): the SDK retries after a pause", level="warning")

    def cancelled(step: int | None) -> dict:
        writer.cancelled(step=step, output_dir=None)
        result["status"] = "cancelled"
        return result

    job_id: str | None = None
    follower: _Follower | None = None
    try:
        if client is None:
            client = make_client(api_key, base_url=api_root(settings),
                                 max_retries=int(settings.get("max_retries", DEFAULT_RETRIES)),
                                 on_rate_limit=on_rate_limit)
        # The limits first: a wrong key or model fails here, before the data is uploaded.
        limits = client.fine_tuning.model_limits(model_name=spec.base_model)
        files: dict[str, str | None] = {"train": None, "valid": None}
        for role, path in upload_paths(spec, run_dir, writer).items():
            if path and not flag():
                writer.message(f"uploading {Path(path).name} to Together (purpose fine-tune), then its check")
                files[role] = upload_file(client, path, should_stop=flag, poll_interval=min(poll, 2.0))
        if flag():
            return cancelled(None)
        args = create_arguments(spec, files["train"], files["valid"])
        show_estimate(client, writer, spec, files["train"], files["valid"], args.get("n_evals", 0))
        if flag():
            return cancelled(None)
        job = client.fine_tuning.create(**args, model_limits=limits)
        job_id = job.id
        result["external_id"] = job_id
        writer.started(
            pid=os.getpid(), total_steps=None, num_examples=count_records(spec.train_file), method=spec.method,
            base_model=spec.base_model, device="together", backend="together", external_id=job_id,
            num_valid_examples=count_records(getattr(spec, "valid_file", None)), training_file=files["train"],
            validation_file=files["valid"], n_epochs=args["n_epochs"], n_evals=args.get("n_evals", 0),
            learning_rate=job.learning_rate if job.learning_rate is not None else args.get("learning_rate"),
            lora_r=args.get("lora_r"), lora_alpha=args.get("lora_alpha"), training_method=args["training_method"],
            objective=args["training_method"], dpo_beta=args.get("dpo_beta"),
            from_checkpoint=args.get("from_checkpoint"),
        )
        follower = _Follower(client, writer, job_id, secrets)
        announced: str | None = None
        while True:
            if flag():
                try:
                    client.fine_tuning.cancel(job_id)
                    writer.message(f"cancelled the Together job {job_id}")
                except Exception as exc:  # noqa: BLE001 - report, still end the run as cancelled
                    writer.message(f"could not cancel {job_id}: {describe_error(exc, secrets)}; cancel it at "
                                   "https://api.together.ai/jobs", level="error")
                return cancelled(follower.step)
            job = client.fine_tuning.retrieve(job_id)
            if job.status != announced:
                writer.message(f"Together job {job_id}: {job.status}")
                announced = job.status
            follower.poll(job)
            if job.status == "completed":
                return _finish(writer, result, job, follower, settings)
            if job.status == "error":
                reason = follower.last_error or "the job failed (Together gave no reason)"
                result.update(status="failed", error=reason)
                writer.write("failed", reason=reason, hint="Read Together's message; fix what it names and start again.",
                             log_tail="", code="job_error", external_id=job_id)
                return result
            if job.status == "cancelled":
                return cancelled(follower.step)
            sleep_until(poll, flag)
    except Exception as exc:  # noqa: BLE001 - every failure ends the run with a message, not a traceback
        err = describe_error(exc, secrets)
        if job_id and flag():
            try:
                client.fine_tuning.cancel(job_id)
            except Exception:  # noqa: BLE001 - best effort: we are already failing
                writer.message(f"could not cancel the Together job {job_id}: cancel it at https://api.together.ai/jobs",
                               level="error")
            return cancelled(follower.step if follower else None)
        result.update(status="failed", error=str(err))
        writer.write("failed", reason=str(err), hint=err.hint, log_tail="", code=err.code, external_id=job_id)
        return result
    finally:
        if own_stop:
            flag.restore()


def _finish(writer, result: dict, job, follower: _Follower, settings: dict) -> dict:
    model = job.x_model_output_name
    if not model:
        result.update(status="failed", error="the job completed without an output model name")
        writer.failed(reason=result["error"], hint="Look the job up at https://api.together.ai/jobs.")
        return result
    result.update(status="succeeded", output_model=model)
    writer.finished(
        output_dir=model, output_model=model, external_id=job.id, final_loss=follower.final_loss,
        first_loss=follower.first_loss, best_eval_loss=follower.best_eval, step=follower.step,
        inference_base_url=inference_base_url(settings),
        metrics={"token_count": job.token_count, "total_price": job.total_price, "param_count": job.param_count,
                 "epochs_completed": job.epochs_completed, "total_steps": follower.total_steps,
                 "adapter_output_name": job.adapter_object_name, "output_model": model},
    )
    return result
