"""The OpenAI backend: fine-tune through OpenAI's (or Azure's, or a compatible server's) API.

It runs inside the worker process like a local recipe does and reports through the same
events file (`ftassist.train.events`): upload the files (purpose "fine-tune", wait until
processed), create the job (`method` supervised with its hyperparameters), then poll the
job, its events (metrics -> `log`/`eval`) and its checkpoints until it ends, and finish
with the `ft:` model id as the run's output (the arena registers it from there).

The API key comes from the caller (the session) or the environment and lives only in the
client object: it is never written to the spec, the events, the log or an error message;
every message that could carry it goes through `scrub`. Errors are phrased as what the
person can do about them. Rate limits, 5xx and connection errors are retried by the SDK itself
(`max_retries`, with its exponential backoff and the server's Retry-After); a quota error is
also a 429, so a response hook tells the SDK not to retry it (waiting does not add credit) and
reports every other 429 as a warning event, so a slow start is explained.

Preference tuning (spec.objective "dpo", on the models OpenAI's DPO guide lists): the canonical pairs are
converted to OpenAI's preference rows (`ftassist.data.preference_pairs`) in the run folder and those are
uploaded; the job's method is `dpo` with the spec's beta; spec.start_from, an `ft:` model of an earlier run,
is the model the job fine-tunes (SFT first, then DPO).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

from ftassist.redact import scrub
from ftassist.train.spec import OPENAI_SUFFIX_MAX, OPENAI_SUFFIX_PATTERN, count_records
from ftassist.train.stop import StopFlag, sleep_until

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
KEY_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "custom": "OPENAI_API_KEY"}

DEFAULT_POLL_INTERVAL = 10.0  # seconds between status polls (jobs take minutes to hours)
DEFAULT_RETRIES = 6  # the SDK's retries per request: its backoff doubles from 0.5 s up to 8 s
PREFERENCE_FILES = {"train": "openai_train_pairs.jsonl", "valid": "openai_valid_pairs.jsonl"}


class OpenAIBackendError(RuntimeError):
    """A failure the person can act on; the message is safe to show (no key in it)."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None, hint: str = ""):
        super().__init__(message)
        self.code = code
        self.param = param
        self.hint = hint


# -- keys and clients ---------------------------------------------------------------------
def resolve_api_key(provider: str = "openai", api_key: str | None = None) -> str | None:
    """The key given (from the session), else the provider's environment variable."""
    if api_key:
        return api_key.strip()
    env = os.environ.get(KEY_ENV.get(provider, "OPENAI_API_KEY"))
    if not env and provider == "azure":
        env = os.environ.get("OPENAI_API_KEY")
    return env.strip() if env else None


def make_client(
    provider: str = "openai",
    api_key: str | None = None,
    base_url: str | None = None,
    azure_endpoint: str | None = None,
    api_version: str | None = None,
    max_retries: int = DEFAULT_RETRIES,
    timeout: float = 120.0,
    on_rate_limit: Callable[[int | None], Any] | None = None,
):
    """An `openai.OpenAI` (or `AzureOpenAI`) client for `provider`.

    provider: "openai" (base_url optional, e.g. a proxy), "azure" (azure_endpoint and
    api_version required; the SDK then calls {endpoint}/openai/...?api-version=...), or
    "custom" (any server that speaks the fine-tuning API at base_url).
    `max_retries` is the SDK's own retry count (quota errors excepted, see the module docstring);
    `on_rate_limit(status)` is called for each rate-limited response the SDK will retry.
    """
    import openai

    http_client = openai.DefaultHttpxClient(event_hooks={"response": [_rate_limit_hook(on_rate_limit)]})

    key = resolve_api_key(provider, api_key)
    env_name = KEY_ENV.get(provider, "OPENAI_API_KEY")
    if provider == "azure":
        if not azure_endpoint and not base_url:
            azure_endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not azure_endpoint and not base_url:
            raise OpenAIBackendError("Azure OpenAI needs its endpoint (https://NAME.openai.azure.com): set it in the settings or AZURE_OPENAI_ENDPOINT.")
        api_version = api_version or os.environ.get("OPENAI_API_VERSION")
        if not api_version:
            raise OpenAIBackendError("Azure OpenAI needs an api_version (e.g. 2024-10-21): set it in the settings or OPENAI_API_VERSION.")
        if not key:
            raise OpenAIBackendError(f"no API key: set {env_name} or enter the key in the app.")
        kwargs: dict[str, Any] = dict(api_key=key, api_version=api_version, max_retries=max_retries, timeout=timeout,
                                      http_client=http_client)
        if base_url:
            kwargs["base_url"] = base_url
        else:
            kwargs["azure_endpoint"] = azure_endpoint
        return openai.AzureOpenAI(**kwargs)
    if provider not in ("openai", "custom"):
        raise OpenAIBackendError(f"unknown provider {provider!r}: use 'openai', 'azure' or 'custom'.")
    if provider == "custom" and not base_url:
        raise OpenAIBackendError("a custom provider needs base_url (the server's /v1 address).")
    if not key:
        if provider == "custom":
            key = "none"  # many self-hosted servers ignore the key, but the SDK wants one
        else:
            raise OpenAIBackendError(f"no API key: set {env_name} or enter the key in the app.")
    kwargs = dict(api_key=key, max_retries=max_retries, timeout=timeout, http_client=http_client)
    if base_url:
        kwargs["base_url"] = base_url
    return openai.OpenAI(**kwargs)


def _rate_limit_hook(on_rate_limit: Callable[[int | None], Any] | None):
    """An httpx response hook: a quota 429 gets `x-should-retry: false` (the SDK obeys that header),
    any other 429 is reported through `on_rate_limit` before the SDK waits and retries."""

    def hook(response) -> None:
        if response.status_code != 429:
            return
        response.read()
        if _is_quota_error(response):
            response.headers["x-should-retry"] = "false"
        elif on_rate_limit is not None:
            on_rate_limit(response.status_code)

    return hook


def _is_quota_error(response) -> bool:
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    return "insufficient_quota" in (error.get("code"), error.get("type"))


def client_from_spec(spec, api_key: str | None = None, on_rate_limit: Callable[[int | None], Any] | None = None):
    """The client described by `spec.openai` (provider, base_url, azure_endpoint, api_version)."""
    o = dict(getattr(spec, "openai", None) or {})
    return make_client(
        provider=o.get("provider") or "openai",
        api_key=api_key,
        base_url=o.get("base_url"),
        azure_endpoint=o.get("azure_endpoint"),
        api_version=o.get("api_version"),
        max_retries=int(o.get("max_retries", DEFAULT_RETRIES)),
        on_rate_limit=on_rate_limit,
    )


def _client_key(client) -> str | None:
    key = getattr(client, "api_key", None)
    return key if isinstance(key, str) and key and key != "none" else None


# -- errors ---------------------------------------------------------------------------------
def describe_error(exc: BaseException, provider: str = "openai", secrets: tuple = ()) -> OpenAIBackendError:
    """Turn an SDK exception into a one-line message that says what to do (key scrubbed)."""
    import openai

    if isinstance(exc, OpenAIBackendError):
        return OpenAIBackendError(scrub(exc, *secrets), code=exc.code, param=exc.param, hint=exc.hint)
    env_name = KEY_ENV.get(provider, "OPENAI_API_KEY")
    code = getattr(exc, "code", None)
    param = getattr(exc, "param", None)
    message = _api_message(exc)
    if isinstance(exc, openai.AuthenticationError):
        return OpenAIBackendError(
            f"the API key was rejected: check {env_name}", code=code or "invalid_api_key",
            hint=f"Set a valid key in {env_name} (or in the app's key field) and start again.",
        )
    if provider == "openai" and _refused_fine_tuning(exc):
        return _wind_down_error(exc)
    if isinstance(exc, openai.PermissionDeniedError):
        return OpenAIBackendError(
            scrub(f"the API key may not do this (403): {message}", *secrets), code=code,
            hint="Use a key of a project that has fine-tuning access.",
        )
    if isinstance(exc, openai.RateLimitError):
        if code == "insufficient_quota" or getattr(exc, "type", None) == "insufficient_quota":
            return OpenAIBackendError(
                "the account is out of quota (429 insufficient_quota): add credit or raise the usage limit "
                "in the billing settings, then start again",
                code="insufficient_quota", hint="Billing: https://platform.openai.com/settings/organization/billing",
            )
        return OpenAIBackendError(
            scrub(f"still rate limited after several retries (429): {message}", *secrets), code=code or "rate_limit",
            hint="Wait a minute and start again, or lower the request rate.",
        )
    if isinstance(exc, openai.APIConnectionError):
        url = ""
        request = getattr(exc, "request", None)
        if request is not None:
            url = f"{request.url.scheme}://{request.url.host}" + (f":{request.url.port}" if request.url.port else "")
        return OpenAIBackendError(
            scrub(f"could not reach the API{(' at ' + url) if url else ''}: {message}", *secrets), code="connection",
            hint="Check the network and the base URL / Azure endpoint.",
        )
    if isinstance(exc, openai.APIStatusError):
        return OpenAIBackendError(
            scrub(f"the API refused the request ({exc.status_code}{' ' + code if code else ''}): {message}", *secrets),
            code=code, param=param, hint="Fix what the message names (model, file, parameter) and start again.",
        )
    return OpenAIBackendError(scrub(f"{type(exc).__name__}: {exc}", *secrets))


_UNAVAILABLE = re.compile(r"not (?:be )?(?:available|enabled|allowed|permitted|supported|offered)|no longer|"
                          r"unavailable|disabled|discontinued|wound down|winding down|deprecated|not eligible",
                          re.IGNORECASE)


def _refused_fine_tuning(exc: BaseException) -> bool:
    """A 403, or a 4xx whose message says fine-tuning is not available: how OpenAI turns away an organisation
    its fine-tuning wind-down has closed to (see `ftassist providers`)."""
    import openai

    if isinstance(exc, openai.PermissionDeniedError):
        return True
    if not isinstance(exc, openai.APIStatusError) or not 400 <= exc.status_code < 500:
        return False
    message = _api_message(exc)
    return bool(re.search(r"fine[- _]?tun", message, re.IGNORECASE) and _UNAVAILABLE.search(message))


def _wind_down_error(exc: BaseException) -> OpenAIBackendError:
    """One line that names the wind-down and the ways still open, instead of the API's own words."""
    from ftassist.plan import providers

    d = providers.openai_dates()
    status = getattr(exc, "status_code", None)
    return OpenAIBackendError(
        f"OpenAI refused the fine-tuning request ({status}): its self-serve fine-tuning is winding down "
        f"(closed since {d['closed_to_new_organisations_since']} to organisations that never fine-tuned, since "
        f"{d['closed_to_inactive_organisations_since']} to those with no fine-tuned inference in 60 days, and to "
        f"everyone after {d['no_new_jobs_after']}; a key without fine-tuning permission is refused the same way): "
        f"fine-tune an open model with {providers.ALTERNATIVES} instead",
        code="fine_tuning_unavailable",
        hint="Run `ftassist providers` to see what is open to you today, then pick that option in the Estimate step.",
    )


def _api_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(exc, "message", None) or exc)


# -- request building ---------------------------------------------------------------------
def validate_suffix(suffix: str | None) -> str | None:
    """The suffix, stripped (None when empty); raises OpenAIBackendError when it cannot be used.

    It becomes part of the model name (`ft:MODEL:ORG:SUFFIX:ID`): at most 64 characters,
    letters, digits, '.', '_' and '-'.
    """
    if suffix is None:
        return None
    suffix = str(suffix).strip()
    if not suffix:
        return None
    if len(suffix) > OPENAI_SUFFIX_MAX:
        raise OpenAIBackendError(f"the suffix is {len(suffix)} characters long: OpenAI allows at most {OPENAI_SUFFIX_MAX}.", param="suffix")
    if not OPENAI_SUFFIX_PATTERN.match(suffix):
        raise OpenAIBackendError(
            f"the suffix {suffix!r} may only use letters, digits, '.', '_' and '-' (it becomes part of the model name).",
            param="suffix",
        )
    return suffix


def supervised_method(n_epochs: Any = "auto", batch_size: Any = "auto", learning_rate_multiplier: Any = "auto") -> dict:
    """The `method` body of a supervised job; None values are left to the API ("auto")."""
    hyper = {
        k: v
        for k, v in (("n_epochs", n_epochs), ("batch_size", batch_size), ("learning_rate_multiplier", learning_rate_multiplier))
        if v is not None
    }
    return {"type": "supervised", "supervised": {"hyperparameters": hyper}}


def dpo_method(beta: Any = "auto", n_epochs: Any = "auto", batch_size: Any = "auto",
               learning_rate_multiplier: Any = "auto") -> dict:
    """The `method` body of a preference (DPO) job; None values are left to the API ("auto")."""
    hyper = {
        k: v
        for k, v in (("beta", beta), ("n_epochs", n_epochs), ("batch_size", batch_size),
                     ("learning_rate_multiplier", learning_rate_multiplier))
        if v is not None
    }
    return {"type": "dpo", "dpo": {"hyperparameters": hyper}}


def upload_paths(spec, run_dir: str | Path, writer) -> dict[str, str | None]:
    """The files to upload by role: the spec's own for SFT; for DPO, its pairs converted to OpenAI's preference
    rows in the run folder (a pair that cannot be converted fails the run, naming its line)."""
    from ftassist.data.preference_pairs import ProviderFileError, write_provider_files

    given = {"train": spec.train_file, "valid": getattr(spec, "valid_file", None) or None}
    if getattr(spec, "objective", "sft") != "dpo":
        return given
    try:
        return write_provider_files(given, run_dir, PREFERENCE_FILES, "OpenAI's", writer.message)
    except ProviderFileError as exc:
        raise OpenAIBackendError(str(exc), param="training_file", hint=exc.hint) from None


def upload_file(client, path: str | Path, *, poll_interval: float = 2.0, max_wait: float = 1800.0,
                should_stop: Callable[[], bool] | None = None) -> str:
    """Upload a JSONL file for fine-tuning and wait until the API has processed it; returns its id."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise OpenAIBackendError(f"{path.name}: OpenAI fine-tuning takes .jsonl files only.")
    with open(path, "rb") as fh:
        data = fh.read()
    obj = client.files.create(file=(path.name, data), purpose="fine-tune")
    start = time.monotonic()
    while obj.status not in ("processed", "error", "deleted"):
        if should_stop is not None and should_stop():
            return obj.id
        if time.monotonic() - start > max_wait:
            raise OpenAIBackendError(f"{path.name} was still being processed after {int(max_wait)} s: try again later.")
        time.sleep(poll_interval)
        obj = client.files.retrieve(obj.id)
    if obj.status != "processed":
        detail = getattr(obj, "status_details", None) or "no details given"
        raise OpenAIBackendError(f"{path.name} was rejected by the API ({obj.status}): {detail}", param="training_file")
    return obj.id


def create_job(client, *, model: str, training_file: str, validation_file: str | None = None,
               n_epochs: Any = "auto", batch_size: Any = "auto", learning_rate_multiplier: Any = "auto",
               suffix: str | None = None, seed: int | None = None, objective: str = "sft",
               beta: Any = "auto"):
    """Create a supervised (objective "sft") or preference (objective "dpo", with `beta`) fine-tuning job;
    returns the SDK's FineTuningJob."""
    if objective == "dpo":
        method = dpo_method(beta, n_epochs, batch_size, learning_rate_multiplier)
    else:
        method = supervised_method(n_epochs, batch_size, learning_rate_multiplier)
    kwargs: dict[str, Any] = {"model": model, "training_file": training_file, "method": method}
    if validation_file:
        kwargs["validation_file"] = validation_file
    suffix = validate_suffix(suffix)
    if suffix:
        kwargs["suffix"] = suffix
    if seed is not None:
        kwargs["seed"] = int(seed)
    return client.fine_tuning.jobs.create(**kwargs)


def new_events(client, job_id: str, seen: set[str], *, page_size: int = 100) -> list:
    """Events not in `seen`, oldest first (the API lists newest first; we page until a known one)."""
    fresh: list = []
    after: str | None = None
    while True:
        kwargs: dict[str, Any] = {"limit": page_size}
        if after:
            kwargs["after"] = after
        page = client.fine_tuning.jobs.list_events(job_id, **kwargs)
        data = list(page.data or [])
        hit_known = False
        for event in data:
            if event.id in seen:
                hit_known = True
                break
            fresh.append(event)
        if hit_known or not data or page.has_more is False:
            break
        after = data[-1].id
    for event in fresh:
        seen.add(event.id)
    fresh.reverse()
    return fresh


def list_checkpoints(client, job_id: str) -> list:
    """The job's checkpoints, oldest first."""
    page = client.fine_tuning.jobs.checkpoints.list(job_id, limit=100)
    return sorted(page.data or [], key=lambda c: (c.step_number, c.created_at))


def cancel_remote(client, job_id: str):
    return client.fine_tuning.jobs.cancel(job_id)


def list_remote_jobs(client, limit: int = 20) -> list[dict]:
    """The account's recent fine-tuning jobs as plain dicts (for a settings/history view)."""
    page = client.fine_tuning.jobs.list(limit=limit)
    return [
        {"id": j.id, "model": j.model, "status": j.status, "fine_tuned_model": j.fine_tuned_model,
         "created_at": j.created_at, "finished_at": j.finished_at}
        for j in page.data or []
    ]


# -- end to end -----------------------------------------------------------------------------
def run_job(spec, run_dir: str | Path, writer, *, client=None, api_key: str | None = None,
            should_stop: Callable[[], bool] | None = None, poll_interval: float | None = None) -> dict:
    """Run `spec` as an OpenAI fine-tuning job end to end, reporting through `writer` (EventWriter).

    Writes: message (upload, status changes, the API's own notes), started (once the job
    exists, with external_id), log (train loss per step), eval (valid loss), checkpoint
    (checkpoint model ids), then exactly one of finished (output_dir = output_model = the
    `ft:` id), failed (the API's error message as is, with code/param) or cancelled (SIGTERM
    or `should_stop()` -> the remote job is cancelled). Never raises for API errors; returns
    {"status", "external_id", "output_model", "error"}.
    """
    o = dict(getattr(spec, "openai", None) or {})
    provider = o.get("provider") or "openai"
    poll = float(poll_interval if poll_interval is not None else o.get("poll_interval")
                 or os.environ.get("FTASSIST_OPENAI_POLL_INTERVAL") or DEFAULT_POLL_INTERVAL)
    stop = StopFlag(should_stop)
    stop.install()
    secrets: tuple = (api_key,)
    result: dict[str, Any] = {"status": None, "external_id": None, "output_model": None, "error": None}

    def on_rate_limit(status: int | None) -> None:
        writer.message(f"rate limited ({status}): the request is retried after a pause", level="warning")

    job_id: str | None = None
    last_step: int | None = None
    try:
        if client is None:
            client = client_from_spec(spec, api_key=api_key, on_rate_limit=on_rate_limit)
        secrets = (api_key, _client_key(client))
        objective = getattr(spec, "objective", "sft") or "sft"
        start = (getattr(spec, "start_from", None) or "").strip()
        model = start if start.startswith("ft:") else o.get("model") or getattr(spec, "base_model", None)
        suffix = validate_suffix(o.get("suffix"))

        paths = upload_paths(spec, run_dir, writer)
        writer.message(f"uploading {Path(paths['train']).name} (purpose fine-tune)")
        train_id = upload_file(client, paths["train"], should_stop=stop, poll_interval=min(poll, 2.0))
        valid_id = None
        if paths["valid"] and not stop():
            writer.message(f"uploading {Path(paths['valid']).name} (purpose fine-tune)")
            valid_id = upload_file(client, paths["valid"], should_stop=stop, poll_interval=min(poll, 2.0))
        if stop():
            writer.cancelled(step=None, output_dir=None)
            result["status"] = "cancelled"
            return result

        job = create_job(
            client, model=model, training_file=train_id, validation_file=valid_id,
            n_epochs=o.get("n_epochs", "auto"), batch_size=o.get("batch_size", "auto"),
            learning_rate_multiplier=o.get("learning_rate_multiplier", "auto"),
            suffix=suffix, seed=getattr(spec, "seed", None), objective=objective,
            beta=float(getattr(spec, "dpo_beta", 0.1)) if objective == "dpo" else "auto",
        )
        job_id = job.id
        result["external_id"] = job_id
        dpo = {"dpo_beta": float(getattr(spec, "dpo_beta", 0.1))} if objective == "dpo" else {}
        writer.started(
            pid=os.getpid(), total_steps=None, num_examples=count_records(spec.train_file),
            method=getattr(spec, "method", "lora"), base_model=model, device=provider,
            backend="openai", external_id=job_id, provider=provider,
            training_file=train_id, validation_file=valid_id, objective=objective, **dpo,
        )

        seen_events: set[str] = set()
        seen_ckpts: set[str] = set()
        first_loss = final_loss = best_eval = None
        total_steps: int | None = None
        status = job.status
        announced: str | None = None
        while True:
            if stop():
                try:
                    cancel_remote(client, job_id)
                    writer.message(f"cancelled the OpenAI job {job_id}")
                except Exception as exc:  # noqa: BLE001 - report, still end the run as cancelled
                    writer.message(f"could not cancel {job_id}: {describe_error(exc, provider, secrets)}", level="error")
                writer.cancelled(step=last_step, output_dir=None)
                result["status"] = "cancelled"
                return result
            job = client.fine_tuning.jobs.retrieve(job_id)
            status = job.status
            if status != announced:
                writer.message(f"OpenAI job {job_id}: {status}")
                announced = status
            for event in new_events(client, job_id, seen_events):
                data = event.data if isinstance(event.data, dict) else {}
                if event.type == "metrics" and data.get("step") is not None:
                    step = int(data["step"])
                    last_step = step
                    total_steps = int(data["total_steps"]) if data.get("total_steps") else total_steps
                    loss = data.get("train_loss")
                    if loss is not None:
                        first_loss = loss if first_loss is None else first_loss
                        final_loss = loss
                    eta = None
                    if job.estimated_finish:
                        eta = max(0.0, float(job.estimated_finish) - time.time())
                    epochs = job.hyperparameters.n_epochs if job.hyperparameters else None
                    epoch = None
                    if isinstance(epochs, int) and total_steps:
                        epoch = round(step * epochs / total_steps, 4)
                    writer.log(step=step, total_steps=total_steps, epoch=epoch, loss=loss, eta_s=eta,
                               **_other_metrics(data, "train_"))
                    valid = data.get("full_valid_loss", data.get("valid_loss"))
                    if valid is not None:
                        best_eval = valid if best_eval is None else min(best_eval, valid)
                        writer.eval(step=step, eval_loss=valid, **_other_metrics(data, "valid_"))
                else:
                    level = {"warn": "warning"}.get(event.level, event.level)
                    writer.message(scrub(event.message, *secrets), level=level)
            try:
                for ckpt in list_checkpoints(client, job_id):
                    if ckpt.id not in seen_ckpts:
                        seen_ckpts.add(ckpt.id)
                        writer.checkpoint(step=int(ckpt.step_number), path=ckpt.fine_tuned_model_checkpoint)
            except Exception as exc:
                import openai

                if not isinstance(exc, openai.NotFoundError):
                    raise

            if status == "succeeded":
                model_id = job.fine_tuned_model
                result.update(status="succeeded", output_model=model_id)
                writer.finished(
                    output_dir=model_id or "", final_loss=final_loss, first_loss=first_loss,
                    best_eval_loss=best_eval, output_model=model_id, external_id=job_id,
                    metrics={"trained_tokens": job.trained_tokens, "total_steps": total_steps,
                             "fine_tuned_model": model_id, "result_files": list(job.result_files or [])},
                )
                return result
            if status == "failed":
                err = job.error
                message = (err.message if err and err.message else "the job failed (the API gave no reason)")
                code = err.code if err else None
                param = err.param if err else None
                reason = scrub(message, *secrets)
                result.update(status="failed", error=reason)
                writer.write("failed", reason=reason, hint=_failure_hint(code, param), log_tail="",
                             code=code, param=param, external_id=job_id)
                return result
            if status == "cancelled":
                writer.cancelled(step=last_step, output_dir=None)
                result["status"] = "cancelled"
                return result
            sleep_until(poll, stop)
    except Exception as exc:  # noqa: BLE001 - every failure ends the run with a message, not a traceback
        err = describe_error(exc, provider, secrets)
        if job_id and stop():
            try:
                cancel_remote(client, job_id)
            except Exception:  # noqa: BLE001 - best effort: we are already failing
                writer.message(f"could not cancel the OpenAI job {job_id}: cancel it in the dashboard", level="error")
            writer.cancelled(step=last_step, output_dir=None)
            result["status"] = "cancelled"
            return result
        result.update(status="failed", error=str(err))
        writer.write("failed", reason=str(err), hint=err.hint, log_tail="", code=err.code, param=err.param,
                     external_id=job_id)
        return result
    finally:
        stop.restore()


def _other_metrics(data: dict, prefix: str) -> dict[str, float]:
    """The job's other numeric metrics of one kind (train_mean_token_accuracy; a DPO job's reward figures), as
    the job named them, so a log or eval event carries what the job reported."""
    return {key: float(value) for key, value in data.items()
            if key.startswith(prefix) and key not in ("train_loss", "valid_loss")
            and isinstance(value, (int, float)) and not isinstance(value, bool)}


def _failure_hint(code: str | None, param: str | None) -> str:
    if code and "file" in code or (param and "file" in param):
        return "Check the file with the Data step (`ftassist check FILE --model MODEL`), fix the line named, and start again."
    return "Read the API's message above; fix what it names and start again."
