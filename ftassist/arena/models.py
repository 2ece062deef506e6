"""The models the arena compares, and one way to make any of them answer.

Four kinds live in the `arena_models` table:

- `hf`: a Hub id or a local folder, run here with transformers;
- `hf_adapter`: a base model plus a LoRA adapter folder from a finished local run;
- `openai`: an OpenAI model or a fine-tuned `ft:` id;
- `openai_compatible`: any server that speaks `/v1/chat/completions` (vLLM, Ollama,
  TGI, llama.cpp server), given by its base URL and model name.

`generate` hides the difference: it returns one dict per prompt, in prompt order, with
the text, the sampling settings used (stored with every answer so a battle can be
reproduced) and, when that one prompt failed, the error. A failure in one prompt never
drops the others. Local models are loaded once per process (an LRU of two, the usual
base vs fine-tuned pair) and run batched with left padding; API models run
concurrently under a limit, and the openai SDK retries rate limits and server errors
with its own backoff (`max_retries`). `check_model` is what registering asks first: a
model that cannot load or answer is refused at once, with the reason.

Every function that reads or writes the registry takes the store first: the caller (a
use case) owns it, so nothing here reaches for a process-wide global.

API keys are never stored: a config names the environment variable that holds the key
(`api_key_env`), and the key itself is read only when a request is made.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftassist.redact import scrub

KINDS = ("hf", "hf_adapter", "openai", "openai_compatible")
API_KINDS = ("openai", "openai_compatible")  # answered over HTTP (and the only kinds that can judge)

# Keys each kind's config may hold. Anything else is refused, so a typo (or a pasted key)
# is caught at registration, not at the first battle.
_COMMON_KEYS = {"sampling"}
_LOCAL_KEYS = _COMMON_KEYS | {"dtype", "device", "batch_size", "max_input_tokens", "revision", "trust_remote_code"}
_API_KEYS = _COMMON_KEYS | {"api_key_env", "max_concurrency", "max_retries", "timeout_s", "extra_body", "system_prompt"}
ALLOWED_KEYS = {
    "hf": _LOCAL_KEYS | {"model", "system_prompt", "run_dir"},
    "hf_adapter": _LOCAL_KEYS | {"base_model", "adapter_dir", "system_prompt", "run_dir"},
    "openai": _API_KEYS | {"model", "base_url", "organization_env", "run_dir"},
    "openai_compatible": _API_KEYS | {"model", "base_url", "run_dir"},
}
REQUIRED_KEYS = {
    "hf": ("model",),
    "hf_adapter": ("base_model", "adapter_dir"),
    "openai": ("model",),
    "openai_compatible": ("base_url", "model"),
}
_SECRET_KEY_NAMES = re.compile(r"(^|_)(api_?key|key|token|secret|password|authorization)$", re.I)
_SECRET_VALUE = re.compile(r"^(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{30,}|Bearer\s+\S+)$", re.I)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DEFAULT_SAMPLING: dict[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 256, "seed": 0}
DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_MAX_RETRIES = 2  # the openai SDK's own default: it backs off and honours Retry-After
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_BATCH_SIZE = 8
CHECK_TIMEOUT_S = 5.0  # how long registering waits for an endpoint to answer (no retries)

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ModelError(ValueError):
    """Bad input about a model (unknown id, invalid config): one clear line, what to do next."""


# -- registry ------------------------------------------------------------------------------


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48] or "model"


def validate_config(kind: str, config: dict) -> dict:
    """A cleaned copy of `config`, or ModelError saying what is wrong and how to fix it."""
    if kind not in KINDS:
        raise ModelError(f"Unknown model kind {kind!r}: use one of {', '.join(KINDS)}.")
    if not isinstance(config, dict):
        raise ModelError("The model config must be a JSON object (a dict).")
    clean = {k: v for k, v in config.items() if v is not None}
    for key, value in clean.items():
        if _SECRET_KEY_NAMES.search(key) or (isinstance(value, str) and _SECRET_VALUE.match(value.strip())):
            raise ModelError(
                f"Config key {key!r} looks like a secret; ftassist never stores API keys. Put the key in an "
                "environment variable and give its name as api_key_env (for example api_key_env=OPENAI_API_KEY)."
            )
    unknown = sorted(set(clean) - ALLOWED_KEYS[kind])
    if unknown:
        raise ModelError(
            f"Unknown config key(s) for a {kind} model: {', '.join(unknown)}. "
            f"Allowed: {', '.join(sorted(ALLOWED_KEYS[kind]))}."
        )
    missing = [k for k in REQUIRED_KEYS[kind] if not str(clean.get(k) or "").strip()]
    if missing:
        raise ModelError(f"A {kind} model needs {', '.join(missing)} in its config.")
    for key in ("model", "base_model", "adapter_dir", "base_url"):
        if key in clean:
            if not isinstance(clean[key], str):
                raise ModelError(f"Config {key} must be a string.")
            clean[key] = clean[key].strip()
    if kind == "hf_adapter":
        adapter = Path(clean["adapter_dir"]).expanduser()
        if not (adapter / "adapter_config.json").is_file():
            raise ModelError(
                f"No LoRA adapter in {adapter} (adapter_config.json is missing): give the adapter folder a "
                "finished local run saved."
            )
        clean["adapter_dir"] = str(adapter.resolve())
    if kind == "hf":
        local = Path(clean["model"]).expanduser()
        if local.exists():
            if not (local / "config.json").is_file():
                raise ModelError(f"{local} is a folder but holds no config.json: is it a transformers model folder?")
            clean["model"] = str(local.resolve())
    if "base_url" in clean:
        url = clean["base_url"].rstrip("/")
        if not re.match(r"^https?://[^\s/]+", url):
            raise ModelError(f"base_url {url!r} must start with http:// or https:// (e.g. http://localhost:8000/v1).")
        clean["base_url"] = url
    for key in ("api_key_env", "organization_env"):
        if key in clean and not (isinstance(clean[key], str) and _ENV_NAME.match(clean[key])):
            raise ModelError(f"{key} must be the NAME of an environment variable (like OPENAI_API_KEY), not a value.")
    for key, lo in (("max_concurrency", 1), ("max_retries", 0), ("batch_size", 1), ("max_input_tokens", 1)):
        if key in clean:
            if not isinstance(clean[key], int) or isinstance(clean[key], bool) or clean[key] < lo:
                raise ModelError(f"{key} must be an integer >= {lo}.")
    if "timeout_s" in clean and not (isinstance(clean["timeout_s"], (int, float)) and clean["timeout_s"] > 0):
        raise ModelError("timeout_s must be a positive number of seconds.")
    if "sampling" in clean:
        clean["sampling"] = normalize_sampling(clean["sampling"])
    if "extra_body" in clean and not isinstance(clean["extra_body"], dict):
        raise ModelError("extra_body must be an object of extra request fields.")
    return clean


def _display_name(display_name: str) -> str:
    name = (display_name or "").strip()
    if not name:
        raise ModelError("Give the model a display name (it is what the leaderboard shows).")
    return name


def ensure_name_free(store, display_name: str, except_id: str | None = None) -> str:
    """The cleaned name, or ModelError when a model in use has it (a removed model's name is free again).
    Callable inside `store.transaction()` (the store's lock is reentrant, its connection the same)."""
    name = _display_name(display_name)
    if store.query_rows("SELECT 1 FROM arena_models WHERE removed_at IS NULL AND lower(display_name) = lower(?)"
                        " AND id <> ?", [name, except_id or ""]):
        raise ModelError(f"A model named {name!r} is already registered: pick another name or remove it first.")
    return name


def add_model(store, kind: str, display_name: str, config: dict) -> str:
    """Register a model; returns its id (a slug of the display name, unique, never reused)."""
    clean = validate_config(kind, config)
    with store.transaction() as con:
        name = ensure_name_free(store, display_name)
        taken = {row[0] for row in con.execute("SELECT id FROM arena_models").fetchall()}
        base = _slug(name)
        model_id, n = base, 2
        while model_id in taken:
            model_id, n = f"{base}-{n}", n + 1
        con.execute(
            "INSERT INTO arena_models (id, kind, display_name, config_json) VALUES (?, ?, ?, ?)",
            [model_id, kind, name, json.dumps(clean, sort_keys=True)],
        )
    return model_id


def _row_to_dict(row: dict) -> dict:
    out = dict(row)
    out["config"] = json.loads(out.pop("config_json") or "{}")
    for key in ("created_at", "removed_at"):
        if out.get(key) is not None:
            out[key] = str(out[key])
    return out


_COLUMNS = "id, kind, display_name, config_json, created_at, removed_at"


def list_models(store, *, include_removed: bool = False) -> list[dict]:
    """The registered models: id, kind, display_name, config (a dict), created_at, removed_at
    (None for a model in use; removed ones only with `include_removed`)."""
    where = "" if include_removed else " WHERE removed_at IS NULL"
    rows = store.query(f"SELECT {_COLUMNS} FROM arena_models{where} ORDER BY created_at, id")
    return [_row_to_dict(r) for r in rows]


def get_model(store, model_id: str) -> dict:
    """One model in use, by id (or, failing that, by display name); ModelError when unknown."""
    found = find_model(store, model_id)
    if found is None:
        raise ModelError(f"No model {model_id!r} in the arena: `ftassist arena models` lists them.")
    return found


def find_model(store, id_or_name: str) -> dict | None:
    """The model in use with this id or display name (case-insensitive), or None."""
    rows = store.query(
        f"SELECT {_COLUMNS} FROM arena_models WHERE removed_at IS NULL AND (id = ? OR lower(display_name) = lower(?))"
        " ORDER BY (id = ?) DESC LIMIT 1",
        [id_or_name, id_or_name, id_or_name],
    )
    return _row_to_dict(rows[0]) if rows else None


def rename_model(store, model_id: str, display_name: str) -> dict:
    """Give a model a new display name; its id, battles and votes stay, so history follows the new name."""
    row = get_model(store, model_id)
    with store.transaction() as con:
        name = ensure_name_free(store, display_name, except_id=row["id"])
        con.execute("UPDATE arena_models SET display_name = ? WHERE id = ?", [name, row["id"]])
    return get_model(store, row["id"])


def remove_model(store, model_id: str) -> dict:
    """Take a model out of the arena. Its row stays, marked `removed_at`, so the votes it got keep
    their meaning (the leaderboard shows it as "(removed)"); no battle with it is served again.
    Returns the model's row with `votes_kept`, the number of votes that name it."""
    row = get_model(store, model_id)
    store.execute("UPDATE arena_models SET removed_at = current_timestamp WHERE id = ?", [row["id"]])
    _evict(row["id"])
    (votes,), = store.query_rows("SELECT count(*) FROM votes WHERE ? IN (model_a, model_b)", [row["id"]])
    return dict(row, votes_kept=int(votes))


def _read_events(path: Path) -> list[dict]:
    events = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                events.append(obj)
    return events


def run_model_config(run_dir: str | Path) -> tuple[str, dict]:
    """(kind, config) of the model a finished training run produced, to check and register.

    Reads the run's `spec.json` and the `finished` event of `events.jsonl`: a local LoRA
    run becomes `hf_adapter` (base model + adapter folder), a local full fine-tune
    becomes `hf` (the saved model folder), an OpenAI run becomes `openai` with its `ft:` id, a
    Together run becomes `openai_compatible` (its output model on Together's OpenAI-compatible endpoint).
    """
    run = Path(run_dir).expanduser().resolve()
    spec_path = run / "spec.json"
    if not spec_path.is_file():
        raise ModelError(f"{run} is not a run folder (no spec.json).")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    finished = [e for e in _read_events(run / "events.jsonl") if e.get("type") == "finished"]
    if not finished:
        raise ModelError(f"The run in {run} has not finished (no 'finished' event in events.jsonl); wait for it.")
    event = finished[-1]
    backend = str(spec.get("backend") or "local")
    base_model = spec.get("base_model") or spec.get("model")
    output = event.get("output_dir") or event.get("fine_tuned_model") or spec.get("output_dir")
    if backend == "together":
        # Together serves the fine-tune by name on its OpenAI-compatible endpoint (written in the finished event)
        name = event.get("output_model") or output
        if not name or not isinstance(name, str):
            raise ModelError(f"The Together run in {run} finished without an output model name.")
        settings = spec.get("together") if isinstance(spec.get("together"), dict) else {}
        base_url = settings.get("inference_base_url") or event.get("inference_base_url") or "https://api.together.ai/v1"
        return "openai_compatible", {"base_url": base_url, "model": name, "api_key_env": "TOGETHER_API_KEY",
                                     "run_dir": str(run)}
    if backend == "openai":
        # the finished event's output_dir is the `ft:` model id for OpenAI runs
        ft_id = event.get("fine_tuned_model") or output
        if not ft_id or not isinstance(ft_id, str):
            raise ModelError(f"The OpenAI run in {run} finished without a fine-tuned model id.")
        config: dict = {"model": ft_id, "run_dir": str(run)}
        provider = spec.get("openai") if isinstance(spec.get("openai"), dict) else {}
        if provider.get("provider") == "azure":
            raise ModelError(
                f"{ft_id} was trained on Azure OpenAI, where a model is called through a deployment: deploy it, "
                "then register it as openai_compatible with base_url https://RESOURCE.openai.azure.com/openai/v1, "
                "the deployment name as model, and api_key_env=AZURE_OPENAI_API_KEY."
            )
        for key in ("base_url", "api_key_env"):
            if provider.get(key) or spec.get(key):
                config[key] = provider.get(key) or spec.get(key)
        return "openai", config
    if base_model == "tiny-random" and (run / "base_model" / "config.json").is_file():
        base_model = str(run / "base_model")  # the worker builds tiny-random inside the run folder
    out_path = Path(output) if output else run
    if not out_path.is_absolute():
        out_path = run / out_path
    candidates = [out_path, out_path / "adapter", run / "adapter", run / "output", run]
    for cand in candidates:
        if (cand / "adapter_config.json").is_file():
            cfg = json.loads((cand / "adapter_config.json").read_text(encoding="utf-8"))
            base = base_model if base_model and base_model != "tiny-random" else cfg.get("base_model_name_or_path")
            if not base:
                raise ModelError(f"Cannot tell the base model of the adapter in {cand}.")
            return "hf_adapter", {"base_model": str(base), "adapter_dir": str(cand), "run_dir": str(run)}
    merged = event.get("merged_dir")
    for cand in ([Path(merged)] if merged else []) + candidates:
        if (cand / "config.json").is_file():
            return "hf", {"model": str(cand), "run_dir": str(run)}
    raise ModelError(f"The run in {run} finished but no adapter or model folder was found in {out_path}.")


# -- prompts and sampling ----------------------------------------------------------------------


def normalize_sampling(sampling: dict | None, base: dict | None = None) -> dict:
    """Sampling settings with defaults filled in and ranges checked (these are stored with each answer)."""
    out = dict(DEFAULT_SAMPLING)
    out.update(base or {})
    if sampling:
        if not isinstance(sampling, dict):
            raise ModelError("sampling must be an object like {\"temperature\": 0.7, \"max_new_tokens\": 256}.")
        unknown = set(sampling) - set(DEFAULT_SAMPLING)
        if unknown:
            raise ModelError(f"Unknown sampling setting(s) {sorted(unknown)}; use {sorted(DEFAULT_SAMPLING)}.")
        out.update({k: v for k, v in sampling.items() if v is not None})
    try:
        out["temperature"] = float(out["temperature"])
        out["top_p"] = float(out["top_p"])
        out["max_new_tokens"] = int(out["max_new_tokens"])
        out["seed"] = None if out["seed"] is None else int(out["seed"])
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Bad sampling value: {exc}.") from None
    if not 0.0 <= out["temperature"] <= 2.0:
        raise ModelError("temperature must be between 0 and 2.")
    if not 0.0 < out["top_p"] <= 1.0:
        raise ModelError("top_p must be in (0, 1].")
    if out["max_new_tokens"] < 1:
        raise ModelError("max_new_tokens must be at least 1.")
    return out


def to_messages(prompt: str | list[dict], system_prompt: str | None = None) -> list[dict]:
    """A prompt as chat messages: a string is one user turn; a list is checked and copied."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("empty prompt")
        messages = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and prompt:
        messages = []
        for m in prompt:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError("each message needs a string role and a string content")
            messages.append({"role": m["role"], "content": m["content"]})
        if messages[-1]["role"] == "assistant":
            raise ValueError("the last message is the assistant's: nothing to answer")
    else:
        raise ValueError("a prompt is a string or a non-empty list of {role, content} messages")
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}] + messages
    return messages


# -- generation ------------------------------------------------------------------------------


def generate(
    store,
    model_id: str,
    prompts: list[str | list[dict]],
    sampling: dict | None = None,
    *,
    max_concurrency: int | None = None,
    batch_size: int | None = None,
) -> list[dict]:
    """One answer per prompt, in order: {"text", "sampling", "error", "seconds"}.

    `error` is None on success; on failure `text` is "" and `error` says why. Raises
    ModelError only for a bad call (unknown model, bad sampling), never for one prompt.
    """
    row = get_model(store, model_id)
    return generate_with_config(
        row["kind"], row["config"], prompts, sampling, max_concurrency=max_concurrency,
        batch_size=batch_size, cache_key=row["id"],
    )


def generate_with_config(
    kind: str,
    config: dict,
    prompts: list[str | list[dict]],
    sampling: dict | None = None,
    *,
    max_concurrency: int | None = None,
    batch_size: int | None = None,
    cache_key: str | None = None,
) -> list[dict]:
    """`generate` for a model that need not be registered (the LLM judge uses this)."""
    config = validate_config(kind, config)
    settings = normalize_sampling(sampling, config.get("sampling"))
    if kind in API_KINDS:
        return _generate_api(kind, config, prompts, settings, max_concurrency)
    return _generate_local(kind, config, prompts, settings, batch_size, cache_key)


def _result(text: str, settings: dict, error: str | None, seconds: float, **extra) -> dict:
    out = {"text": text, "sampling": dict(settings), "error": error, "seconds": round(seconds, 4)}
    out.update(extra)
    return out


# -- API models ------------------------------------------------------------------------------


def _api_key(kind: str, config: dict) -> tuple[str, str | None]:
    """(key, problem). The key is read from the environment at call time, never stored."""
    env = config.get("api_key_env") or ("OPENAI_API_KEY" if kind == "openai" else None)
    if env:
        key = os.environ.get(env, "")
        if key:
            return key, None
        if kind == "openai" or config.get("api_key_env"):
            return "", f"the environment variable {env} is not set: export your API key there"
    return "not-needed", None  # local servers (vLLM, Ollama...) accept any key; the SDK wants one


def _client(kind: str, config: dict, key: str, *, max_retries: int, timeout_s: float):
    import openai

    org_env = config.get("organization_env")
    return openai.OpenAI(
        api_key=key,
        base_url=config.get("base_url"),  # None: the SDK's default (OPENAI_BASE_URL or api.openai.com)
        organization=os.environ.get(org_env) if org_env else None,
        max_retries=max_retries,  # the SDK backs off on 408/409/429/5xx and connection errors
        timeout=timeout_s,
    )


def _request(kind: str, config: dict, messages: list[dict], settings: dict) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": config["model"],
        "messages": messages,
        "temperature": settings["temperature"],
        "top_p": settings["top_p"],
    }
    # OpenAI's own API deprecated max_tokens for max_completion_tokens; other servers know max_tokens.
    request["max_completion_tokens" if kind == "openai" else "max_tokens"] = settings["max_new_tokens"]
    if settings.get("seed") is not None:
        request["seed"] = settings["seed"]
    if config.get("extra_body"):
        request["extra_body"] = config["extra_body"]
    return request


def _generate_api(kind: str, config: dict, prompts: list, settings: dict, max_concurrency: int | None) -> list[dict]:
    key, problem = _api_key(kind, config)
    if problem:
        return [_result("", settings, problem, 0.0) for _ in prompts]
    retries = int(config.get("max_retries", DEFAULT_MAX_RETRIES))
    client = _client(kind, config, key, max_retries=retries, timeout_s=float(config.get("timeout_s", DEFAULT_TIMEOUT_S)))
    limit = int(max_concurrency or config.get("max_concurrency") or DEFAULT_MAX_CONCURRENCY)

    def one(prompt) -> dict:
        start = time.perf_counter()
        try:
            messages = to_messages(prompt, config.get("system_prompt"))
        except ValueError as exc:
            return _result("", settings, f"bad prompt: {exc}", 0.0)
        try:
            response = client.chat.completions.create(**_request(kind, config, messages, settings))
        except Exception as exc:  # noqa: BLE001 - a prompt's failure is reported, never raised
            tried = f" (after {retries} retries)" if retries else ""
            return _result("", settings, scrub(f"{type(exc).__name__}{tried}: {exc}", key, limit=500),
                           time.perf_counter() - start)
        choice = response.choices[0]
        usage = response.usage.model_dump() if getattr(response, "usage", None) else None
        return _result(choice.message.content or "", settings, None, time.perf_counter() - start,
                       finish_reason=choice.finish_reason, usage=usage)

    if not prompts:
        return []
    with ThreadPoolExecutor(max_workers=min(limit, len(prompts)), thread_name_prefix="arena-gen") as pool:
        return list(pool.map(one, prompts))


def list_endpoint_models(base_url: str, api_key_env: str | None = None, timeout_s: float = 10.0) -> list[str]:
    """The model names an OpenAI-compatible server offers (`GET /v1/models`), to pick one when registering."""
    import openai

    clean = validate_config("openai_compatible", {"base_url": base_url, "model": "-", "api_key_env": api_key_env})
    key, problem = _api_key("openai_compatible", clean)
    if problem:
        raise ModelError(problem)
    client = _client("openai_compatible", clean, key, max_retries=1, timeout_s=timeout_s)
    try:
        return sorted(m.id for m in client.models.list())
    except openai.OpenAIError as exc:
        raise ModelError(scrub(f"Could not list the models at {clean['base_url']}: {exc}", key, limit=500)) from None


# -- the check made when a model is registered ----------------------------------------------------


def check_model(kind: str, config: dict, timeout_s: float | None = None) -> str:
    """Make sure the model can answer before it enters the arena; returns what was checked.

    A local model must load (tokenizer and weights; not cached, so no memory is held for it); an
    API model must answer: its model listed by the endpoint, else one 1-token generation, each
    with no retries and a short timeout. Raises ModelError with the reason, key masked: a model
    that cannot answer would otherwise fail every prompt of a long generation, one retry at a time.
    """
    clean = validate_config(kind, config)
    if kind not in API_KINDS:
        try:
            _load_uncached(kind, clean)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure is the reason to refuse
            raise ModelError(scrub(f"Could not load the model: {type(exc).__name__}: {exc}", limit=500)) from None
        return "loaded"
    return _check_endpoint(kind, clean, CHECK_TIMEOUT_S if timeout_s is None else timeout_s)


def _check_endpoint(kind: str, config: dict, timeout_s: float) -> str:
    import openai

    key, problem = _api_key(kind, config)
    if problem:
        raise ModelError(f"Cannot reach {config['model']}: {problem}.")
    where = config.get("base_url") or "the OpenAI API"
    timeout_s = min(timeout_s, float(config.get("timeout_s", timeout_s)))
    client = _client(kind, config, key, max_retries=0, timeout_s=timeout_s)
    offered: list[str] = []
    try:
        offered = sorted(m.id for m in client.models.list())
        if config["model"] in offered:
            return "listed"
    except (openai.APIConnectionError, openai.AuthenticationError, openai.PermissionDeniedError) as exc:
        raise ModelError(scrub(f"{where} did not answer: {type(exc).__name__}: {exc}", key, limit=500)) from None
    except openai.OpenAIError:
        pass  # no model list there (not every server has one): a 1-token answer decides
    try:
        settings = normalize_sampling({"temperature": 0.0, "max_new_tokens": 1})
        client.chat.completions.create(**_request(kind, config, [{"role": "user", "content": "Hi"}], settings))
    except openai.OpenAIError as exc:
        hint = f" The server offers: {', '.join(offered[:20])}." if offered else ""
        raise ModelError(scrub(f"{config['model']} at {where} did not answer: {type(exc).__name__}: {exc}.{hint}",
                               key, limit=700)) from None
    return "answered"


# -- local models ----------------------------------------------------------------------------


@dataclass
class LocalModel:
    """A loaded transformers model (with its LoRA adapter, if any) and its tokenizer."""

    model: Any
    tokenizer: Any
    device: str
    name: str
    lock: threading.Lock
    stop_ids: list[int]  # eos plus the chat template's end-of-turn token, so answers stop at the turn

    def chat_text(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False)


_CACHE: "OrderedDict[str, LocalModel]" = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()
_LOAD_LOCK = threading.Lock()


def _evict(key: str) -> None:
    with _CACHE_LOCK:
        for k in [k for k in _CACHE if k == key or k.startswith(key + "|")]:
            del _CACHE[k]


def clear_cache() -> None:
    """Forget every loaded model (tests, or to free memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _pick_device(config: dict) -> tuple[str, Any]:
    import torch

    device = config.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = config.get("dtype") or "auto"
    if dtype_name == "auto":
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    else:
        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise ModelError(f"Unknown dtype {dtype_name!r}: use auto, float32, bfloat16 or float16.")
    return device, dtype


def _load_tokenizer(paths: list[str], config: dict):
    from transformers import AutoTokenizer

    last_error: Exception | None = None
    for path in paths:
        try:
            tok = AutoTokenizer.from_pretrained(
                path, revision=config.get("revision"), trust_remote_code=bool(config.get("trust_remote_code"))
            )
            break
        except Exception as exc:  # noqa: BLE001 - the adapter folder may hold no tokenizer; try the base
            last_error = exc
    else:
        raise ModelError(f"Could not load a tokenizer from {paths[-1]}: {last_error}")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE  # a sensible template for base models that ship none
    tok.padding_side = "left"
    return tok


def load_local(kind: str, config: dict, cache_key: str | None = None) -> LocalModel:
    """The loaded model for a local config, from the per-process LRU cache when there."""
    key = (cache_key or "") + "|" + json.dumps(config, sort_keys=True)
    with _LOAD_LOCK:  # two threads asking for the same model load it once
        with _CACHE_LOCK:
            if key in _CACHE:
                _CACHE.move_to_end(key)
                return _CACHE[key]
        loaded = _load_uncached(kind, config)
        with _CACHE_LOCK:
            _CACHE[key] = loaded
            _CACHE.move_to_end(key)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return loaded


def _load_uncached(kind: str, config: dict) -> LocalModel:
    from transformers import AutoModelForCausalLM

    device, dtype = _pick_device(config)
    base = config["model"] if kind == "hf" else config["base_model"]
    try:
        model = AutoModelForCausalLM.from_pretrained(
            base, dtype=dtype, revision=config.get("revision"),
            trust_remote_code=bool(config.get("trust_remote_code")),
        )
    except OSError as exc:
        raise ModelError(f"Could not load the model {base!r}: {exc}") from None
    tok_paths = [base]
    if kind == "hf_adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, config["adapter_dir"])
        tok_paths = [config["adapter_dir"], base]
    model.to(device)
    model.eval()
    tokenizer = _load_tokenizer(tok_paths, config)
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LocalModel(model, tokenizer, device, base, threading.Lock(), _stop_ids(tokenizer, model))


def _stop_ids(tokenizer, model) -> list[int]:
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, int) and item not in ids:
                ids.append(item)
    for marker in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(marker)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


def load_registered(store, model_id: str) -> LocalModel:
    """The loaded local model behind a registry id (metrics need the weights, not just text)."""
    row = get_model(store, model_id)
    if row["kind"] not in ("hf", "hf_adapter"):
        raise ModelError(f"{row['display_name']} is an API model: loss and perplexity need a local model.")
    return load_local(row["kind"], row["config"], cache_key=row["id"])


def _generate_local(
    kind: str, config: dict, prompts: list, settings: dict, batch_size: int | None, cache_key: str | None
) -> list[dict]:
    results: list[dict | None] = [None] * len(prompts)
    texts: list[tuple[int, str]] = []
    try:
        loaded = load_local(kind, config, cache_key)
    except Exception as exc:  # noqa: BLE001 - a model that cannot load fails every prompt, each said why
        message = str(exc) if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        return [_result("", settings, message, 0.0) for _ in prompts]
    for i, prompt in enumerate(prompts):
        try:
            texts.append((i, loaded.chat_text(to_messages(prompt, config.get("system_prompt")))))
        except Exception as exc:  # noqa: BLE001
            results[i] = _result("", settings, f"bad prompt: {exc}", 0.0)
    size = int(batch_size or config.get("batch_size") or DEFAULT_BATCH_SIZE)
    max_input = int(config.get("max_input_tokens") or 4096)
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        t0 = time.perf_counter()
        try:
            outs = _run_batch(loaded, [t for _, t in chunk], settings, max_input)
            per = (time.perf_counter() - t0) / len(chunk)
            for (i, _), text in zip(chunk, outs):
                results[i] = _result(text, settings, None, per)
        except Exception:  # noqa: BLE001 - retry one by one so one bad prompt cannot sink the batch
            for i, text in chunk:
                t1 = time.perf_counter()
                try:
                    results[i] = _result(_run_batch(loaded, [text], settings, max_input)[0], settings, None,
                                         time.perf_counter() - t1)
                except Exception as exc:  # noqa: BLE001
                    results[i] = _result("", settings, f"{type(exc).__name__}: {exc}"[:500], time.perf_counter() - t1)
    return [r for r in results if r is not None]


def _run_batch(loaded: LocalModel, texts: list[str], settings: dict, max_input: int) -> list[str]:
    import torch

    tok = loaded.tokenizer
    enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_input, add_special_tokens=False)
    enc = {k: v.to(loaded.device) for k, v in enc.items()}
    sample = settings["temperature"] > 0
    kwargs: dict[str, Any] = {
        "max_new_tokens": settings["max_new_tokens"],
        "do_sample": sample,
        "pad_token_id": tok.pad_token_id,
    }
    if sample:
        kwargs.update(temperature=settings["temperature"], top_p=settings["top_p"])
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if loaded.stop_ids:
        kwargs["eos_token_id"] = loaded.stop_ids
    with loaded.lock, torch.no_grad():
        if settings.get("seed") is not None:
            torch.manual_seed(settings["seed"])
        out = loaded.model.generate(**enc, **kwargs)
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    return [t.strip() for t in tok.batch_decode(new_tokens, skip_special_tokens=True)]


def perplexity_from_loss(loss: float) -> float:
    """exp(loss), with overflow turned into inf rather than an exception."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


__all__ = [
    "API_KINDS", "KINDS", "ModelError", "LocalModel", "add_model", "check_model", "clear_cache", "ensure_name_free", "find_model",
    "generate", "generate_with_config", "get_model", "list_endpoint_models", "list_models", "load_local",
    "load_registered", "normalize_sampling", "remove_model", "rename_model", "run_model_config", "to_messages",
    "validate_config",
]
