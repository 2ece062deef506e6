"""One stand-in for OpenAI's API (and OpenAI-compatible endpoints) that every test drives through the real SDK.

A real HTTP server on 127.0.0.1 (random port), so what the tests check is what goes over the wire:
the JSON bodies, the multipart uploads, the headers that carry the key, the Azure URL shape
(`/openai/...` with `api-version`). It serves:

- `POST /v1/chat/completions`: per model, `answers[model]` (a str or a callable(messages) -> str);
  for a model in `judge_models`, `judge` (a callable(messages) -> str, or a list of strings served in
  order); or a `script` shared by every model: one step per request (a dict, or a callable(body) ->
  dict, of `{"content": str}` and/or `{"tool_calls": [(name, arguments), ...]}`), past the end the
  last step again. Otherwise a stable answer from (model, last user turn) that never names the
  model, so two models answer differently without revealing who they are. With `stream: true` the
  same answer comes as server-sent events, as OpenAI sends them: `chat.completion.chunk` objects (the
  role first, then the text a word at a time, tool calls as one delta, then the finish reason; the usage
  last when `stream_options.include_usage`), each flushed at once over chunked transfer encoding
  (`stream_pause_s` apart), then `data: [DONE]`.
- `GET /v1/models` (and `/v1/models/{id}`): the `models` list. A chat request for a model not in it
  is a 404, unless `any_model` is set.
- `POST /v1/files`, `GET /v1/files/{id}`: uploads (processed after `file_polls_before_processed` polls).
- `/v1/fine_tuning/jobs`: create, list, retrieve (each retrieve moves a job one step along
  validating_files -> queued -> running -> succeeded, `steps_per_poll` metric steps at a time out of
  `total_steps`, emitting metrics events and checkpoints), `events` (newest first, `after`/`limit`),
  `checkpoints`, `cancel`. A job whose `method.type` is "dpo" fails while validating its files unless they
  hold preference rows (`input.messages`, one-message `preferred_output` and `non_preferred_output`), as
  OpenAI's check would, and its metrics start at ln 2 with two DPO figures (`train_reward_accuracy`,
  `train_reward_margin`: examples of metrics the backend passes through, not OpenAI's documented names).

Errors to inject (attributes, set before the calls):

- `expected_key`: any other key gets a 401 whose message quotes the key it was given, as OpenAI's
  does, so tests can prove the key is scrubbed before it is stored or shown (None: any key is fine);
- `status`: answer every request with this status (401 quotes the key, 403 is a permission error,
  429 a rate limit, others a server error); 200 serves normally;
- `echo_key_in_errors`: the errors `status` forces quote the key too, whatever their status (as some
  OpenAI-compatible servers do);
- `fail_first_429`: the next N chat requests get a 429 with `Retry-After: 0`;
- `rate_limit_creates`: the next N job creates get a 429 rate limit (`x-should-retry: true`);
- `quota`: chat requests and job creates get a 429 `insufficient_quota` (not worth retrying);
- `fail_marker`: a chat request whose last user turn contains it gets a 500, always;
- `fail_job`: a created job fails while validating its file, with an error object;
- `delay_s`: seconds each chat request takes (to observe concurrency);
- `stream_pause_s`: seconds between two events of a streamed answer (to observe it arrive in pieces).

What it saw: `records` (every request: method, path, route, query, headers, json, form) and
`calls(method, path_suffix)` to filter them; `requests` (the chat request bodies); `auth_headers`
(every request's Authorization header); `status_log` (every status answered); `max_in_flight`
(peak concurrent chat requests); `stream_chunks` (the content pieces of each streamed answer, in order);
`files`, `jobs`, `events`, `checkpoints`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Callable

from .wire import JSONStandIn

API_PREFIXES = ("/v1", "/openai")  # OpenAI's and Azure's roots
TRAIN_KEY = "sk-test-fake-key-0123456789"  # the key the fine-tuning tests present

WORDS = (
    "river stone garden lamp orbit maple quiet signal copper meadow harbor violet "
    "window canyon ember pocket lantern velvet summit thread"
).split()

Reply = tuple[int, dict, dict]  # status, JSON body, extra headers
Step = dict | Callable[[dict], dict]


def default_answer(model: str, messages: list[dict]) -> str:
    """A stable answer for (model, last user turn); mentions no model name."""
    last = last_user_text(messages)
    digest = hashlib.sha256(f"{model}\n{last}".encode()).digest()
    words = " ".join(WORDS[b % len(WORDS)] for b in digest[:8])
    return f"Answer to '{last[:40]}': {words}."


def last_user_text(messages: list[dict]) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")


def error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def invalid_key(key: str | None) -> dict:
    """OpenAI's 401 body: it quotes the key it was given (which is why callers must scrub errors)."""
    return error(f"Incorrect API key provided: {key}. You can find your API key at "
                 "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")


def _now() -> int:
    return int(time.time())


def _short_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class OpenAIStandIn(JSONStandIn):
    """State and behaviour of the stand-in; `start()` serves it, `stop()` (or `with`) ends it."""

    name = "openai-stand-in"
    methods = ("GET", "POST", "DELETE")

    def __init__(self, *, expected_key: str | None = None, models: list[str] | None = None,
                 script: list[Step] | None = None, any_model: bool = False,
                 total_steps: int = 6, steps_per_poll: int = 2) -> None:
        self.expected_key = expected_key
        self.models = list(models) if models is not None else ["base", "tuned", "judge"]
        self.any_model = any_model or script is not None  # a script is every model's answer
        self.script: list[Step] = list(script or [])
        self.answers: dict[str, str | Callable[[list[dict]], str]] = {}
        self.judge: Callable[[list[dict]], str] | list[str] | None = None
        self.judge_models: set[str] = {"judge"}
        self.total_steps = total_steps
        self.steps_per_poll = steps_per_poll
        # errors to inject
        self.status = 200
        self.echo_key_in_errors = False
        self.fail_first_429 = 0
        self.rate_limit_creates = 0
        self.quota = False
        self.fail_marker: str | None = None
        self.fail_job = False
        self.delay_s = 0.0
        self.stream_pause_s = 0.0
        self.file_polls_before_processed = 1
        # what it saw
        self.records: list[dict] = []
        self.requests: list[dict] = []
        self.auth_headers: list[str] = []
        self.status_log: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.stream_chunks: list[list[str]] = []
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.checkpoints: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`."""
        return self.url + "/v1"

    def calls(self, method: str | None = None, path_suffix: str | None = None) -> list[dict]:
        """The requests seen, optionally only one method and a route ending."""
        with self._lock:
            rows = list(self.records)
        return [r for r in rows
                if (method is None or r["method"] == method) and (path_suffix is None or r["route"].endswith(path_suffix))]

    # -- routing -----------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        """One request in, (status, JSON body, extra headers) out."""
        route = path
        for prefix in API_PREFIXES:
            if route.startswith(prefix + "/"):
                route = route[len(prefix):]
                break
        record = {"method": method, "path": path, "route": route, "query": query, "headers": headers,
                  "json": None, "form": None}
        content_type = headers.get("content-type", "")
        if body and content_type.startswith("multipart/form-data"):
            record["form"] = _parse_multipart(content_type, body)
        elif body:
            try:
                record["json"] = json.loads(body)
            except ValueError:
                return 400, error("We could not parse the JSON body of your request.", "invalid_request_error"), {}
        parts = [p for p in route.split("/") if p]
        is_chat = parts == ["chat", "completions"] and method == "POST"
        key = _presented_key(headers)
        with self._lock:
            self.records.append(record)
            self.auth_headers.append(headers.get("authorization", ""))
            if is_chat:
                self.requests.append(record["json"] or {})
                turn = len(self.requests) - 1
        if self.status != 200:
            return self._forced(key)
        if self.expected_key is not None and key != self.expected_key:
            return 401, invalid_key(key), {}
        if is_chat:
            return self._timed_chat(record["json"] or {}, turn)
        if parts == ["models"] and method == "GET":
            return 200, {"object": "list", "data": [self._model(m) for m in self.models]}, {}
        if len(parts) == 2 and parts[0] == "models" and method == "GET":
            if parts[1] in self.models:
                return 200, self._model(parts[1]), {}
            return 404, error(f"The model '{parts[1]}' does not exist", "invalid_request_error", "model_not_found"), {}
        with self._lock:
            return self._fine_tuning(method, parts, record, query)

    def _forced(self, key: str | None) -> Reply:
        if self.status == 401:
            return 401, invalid_key(key), {}
        quoted = f" (key {key})" if self.echo_key_in_errors else ""
        if self.status == 403:
            return 403, error(f"You have insufficient permissions for this operation{quoted}.",
                              "invalid_request_error", "insufficient_permissions"), {}
        if self.status == 429:
            return 429, error(f"Rate limit reached for requests{quoted}.", "requests", "rate_limit_exceeded"), {}
        return self.status, error(f"The server had an error while processing your request{quoted}.",
                                  "server_error"), {}

    @staticmethod
    def _model(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "stand-in"}

    # -- chat completions --------------------------------------------------------------
    def _timed_chat(self, body: dict, turn: int) -> Reply:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self._chat(body, turn)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _chat(self, body: dict, turn: int) -> Reply:
        with self._lock:
            if self.fail_first_429 > 0:
                self.fail_first_429 -= 1
                return 429, error("Rate limit reached", "rate_limit", "rate_limit_exceeded"), {"Retry-After": "0"}
        if self.quota:
            return 429, _quota_error(), {}
        messages = body.get("messages") or []
        if self.fail_marker and self.fail_marker in last_user_text(messages):
            return 500, error("scripted server failure", "server_error"), {}
        model = body.get("model", "")
        if not self.any_model and model not in self.models:
            return 404, error(f"model {model} not found", "invalid_request_error", "model_not_found"), {}
        reply = self._reply(model, body, turn)
        message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
        finish = "stop"
        if reply.get("tool_calls"):
            message["tool_calls"] = [
                {"id": f"call_{turn + 1}_{k}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(arguments)}}
                for k, (name, arguments) in enumerate(reply["tool_calls"])]
            finish = "tool_calls"
        text = message["content"] or ""
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                 "total_tokens": prompt_tokens + len(text.split())}
        if body.get("stream"):
            return 200, self._stream(f"chatcmpl-{turn + 1}", model, message, finish, usage,
                                     bool((body.get("stream_options") or {}).get("include_usage"))), {}
        return 200, {
            "id": f"chatcmpl-{turn + 1}", "object": "chat.completion", "created": _now(), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }, {}

    def _stream(self, answer_id: str, model: str, message: dict, finish: str, usage: dict,
                include_usage: bool) -> "EventStream":
        """The answer as OpenAI streams it: `chat.completion.chunk`s whose deltas add up to `message`."""
        created = _now()

        def chunk(delta: dict | None, finish_reason: str | None = None, **extra: Any) -> dict:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            return {"id": answer_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": choices, **extra}

        pieces = re.findall(r"\s*\S+|\s+$", message["content"] or "")  # a word at a time, spaces kept
        with self._lock:
            self.stream_chunks.append(pieces)
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in pieces]
        if message.get("tool_calls"):
            events.append(chunk({"tool_calls": [{"index": k, **call}
                                                for k, call in enumerate(message["tool_calls"])]}))
        events.append(chunk({}, finish))
        if include_usage:
            events.append(chunk(None, usage=usage))
        return EventStream(events, self.stream_pause_s)

    # -- serving: JSON replies, and streamed answers as server-sent events ---------------
    def send(self, handler, status: int, payload, extra: dict) -> None:
        if isinstance(payload, EventStream):
            payload.send(handler)
        else:
            super().send(handler, status, payload, extra)

    def _reply(self, model: str, body: dict, turn: int) -> dict:
        """{"content": ..., "tool_calls": [...]} for this request."""
        messages = body.get("messages") or []
        if self.script:
            step = self.script[min(turn, len(self.script) - 1)]
            return step(body) if callable(step) else step
        if model in self.judge_models and self.judge is not None:
            if callable(self.judge):
                return {"content": self.judge(messages)}
            with self._lock:
                return {"content": self.judge.pop(0)}
        scripted = self.answers.get(model)
        if scripted is None:
            return {"content": default_answer(model, messages)}
        return {"content": scripted(messages) if callable(scripted) else scripted}

    # -- files and fine-tuning jobs (called under the lock) ----------------------------
    def _fine_tuning(self, method: str, parts: list[str], record: dict, query: dict) -> Reply:
        if parts == ["files"] and method == "POST":
            return self._create_file(record["form"] or {})
        if len(parts) == 2 and parts[0] == "files" and method == "GET":
            return self._retrieve_file(parts[1])
        if parts == ["fine_tuning", "jobs"] and method == "POST":
            return self._create_job(record["json"] or {})
        if parts == ["fine_tuning", "jobs"] and method == "GET":
            jobs = [self._public(j) for j in sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)]
            return 200, {"object": "list", "data": jobs, "has_more": False}, {}
        if len(parts) >= 3 and parts[:2] == ["fine_tuning", "jobs"]:
            job_id = parts[2]
            if job_id not in self.jobs:
                return 404, error(f"No such fine-tuning job: {job_id}", "invalid_request_error", "not_found"), {}
            tail = parts[3:]
            if not tail and method == "GET":
                self._advance(job_id)
                return 200, self._public(self.jobs[job_id]), {}
            if tail == ["events"] and method == "GET":
                return self._list_events(job_id, query)
            if tail == ["checkpoints"] and method == "GET":
                data = list(reversed(self.checkpoints.get(job_id, [])))
                return 200, {"object": "list", "data": data, "has_more": False}, {}
            if tail == ["cancel"] and method == "POST":
                return self._cancel(job_id)
        return 404, error(f"Unknown route {method} {record['path']}", "invalid_request_error", "not_found"), {}

    def _create_file(self, form: dict) -> Reply:
        upload = form.get("file") or {}
        file_id = _short_id("file")
        obj = {"id": file_id, "object": "file", "bytes": len(upload.get("content", b"")), "created_at": _now(),
               "filename": upload.get("filename", "upload.jsonl"), "purpose": form.get("purpose", ""),
               "status": "uploaded"}
        self.files[file_id] = {"obj": obj, "polls": 0, "content": upload.get("content", b"")}
        return 200, obj, {}

    def _retrieve_file(self, file_id: str) -> Reply:
        entry = self.files.get(file_id)
        if entry is None:
            return 404, error(f"No such File object: {file_id}", "invalid_request_error", "not_found"), {}
        entry["polls"] += 1
        if entry["polls"] >= self.file_polls_before_processed:
            entry["obj"]["status"] = "processed"
        return 200, entry["obj"], {}

    def _create_job(self, body: dict) -> Reply:
        if self.quota:
            return 429, _quota_error(), {}
        if self.rate_limit_creates > 0:
            self.rate_limit_creates -= 1
            return 429, error("Rate limit reached for requests. Please try again in 20ms.", "requests",
                              "rate_limit_exceeded"), {"x-should-retry": "true"}
        for field in ("training_file", "validation_file"):
            file_id = body.get(field)
            if file_id and file_id not in self.files:
                return 400, error(f"invalid {field}: {file_id}", "invalid_request_error", "invalid_file"), {}
        if not body.get("model"):
            return 400, error("model is required", "invalid_request_error", "missing_required_parameter"), {}
        job_id = _short_id("ftjob")
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
        hyper = dict((method.get(method.get("type", "supervised")) or {}).get("hyperparameters") or {})
        self.jobs[job_id] = {
            "id": job_id, "object": "fine_tuning.job", "created_at": _now(), "error": None,
            "fine_tuned_model": None, "finished_at": None,
            "hyperparameters": {"n_epochs": hyper.get("n_epochs", "auto"), "batch_size": hyper.get("batch_size", "auto"),
                                "learning_rate_multiplier": hyper.get("learning_rate_multiplier", "auto")},
            "model": body["model"], "organization_id": "org-fake", "result_files": [],
            "seed": body.get("seed") if body.get("seed") is not None else 42, "status": "validating_files",
            "trained_tokens": None, "training_file": body["training_file"],
            "validation_file": body.get("validation_file"), "estimated_finish": None, "method": method,
            "suffix": body.get("suffix"), "_step": 0,
        }
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        self._event(job_id, "Validating training file")
        return 200, self._public(self.jobs[job_id]), {}

    def _cancel(self, job_id: str) -> Reply:
        job = self.jobs[job_id]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return 400, error(f"Job {job_id} has already completed.", "invalid_request_error", "invalid_state"), {}
        job["status"] = "cancelled"
        job["finished_at"] = _now()
        self._event(job_id, "Fine-tuning job cancelled")
        return 200, self._public(job), {}

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _advance(self, job_id: str) -> None:
        """One retrieve = one step of the job's life (the real service takes minutes)."""
        job = self.jobs[job_id]
        if job["status"] == "validating_files":
            problem = self._preference_problem(job) if job["method"].get("type") == "dpo" else None
            if self.fail_job or problem:
                message = (f"The job failed due to an invalid training file. {problem}" if problem else
                           "The job failed due to an invalid training file. Line 3: missing assistant message.")
                job.update(status="failed", finished_at=_now(), error={
                    "code": "invalid_training_file", "param": "training_file", "message": message})
                self._event(job_id, "The job failed due to an invalid training file.", level="error")
                return
            job["status"] = "queued"
            self._event(job_id, "Files validated, moving job to queued state")
        elif job["status"] == "queued":
            job["status"] = "running"
            job["estimated_finish"] = _now() + 60
            self._event(job_id, "Fine-tuning job started")
        elif job["status"] == "running":
            for _ in range(self.steps_per_poll):
                if job["_step"] >= self.total_steps:
                    break
                job["_step"] += 1
                self._metrics_step(job_id, job["_step"])
            if job["_step"] >= self.total_steps:
                name = f"ft:{job['model']}:org-fake:{job.get('suffix') or 'fake'}:{job_id[-8:]}"
                job.update(status="succeeded", finished_at=_now(), fine_tuned_model=name,
                           trained_tokens=1234 * self.total_steps, result_files=[_short_id("file")])
                self._event(job_id, f"New fine-tuned model created: {name}")
                self._event(job_id, "The job has successfully completed")

    def _preference_problem(self, job: dict) -> str | None:
        from .together_server import preference_problem  # the providers take the same preference rows

        for field in ("training_file", "validation_file"):
            if job.get(field):
                problem = preference_problem(self.files[job[field]]["content"])
                if problem:
                    return f"{field}: {problem}"
        return None

    def _metrics_step(self, job_id: str, step: int) -> None:
        job = self.jobs[job_id]
        if job["method"].get("type") == "dpo":
            train_loss = round(0.6931 / (1 + 0.3 * step), 4)  # DPO's loss starts at ln 2
            data = {"step": step, "train_loss": train_loss, "total_steps": self.total_steps,
                    "train_reward_accuracy": round(min(1.0, 0.5 + 0.08 * step), 3),
                    "train_reward_margin": round(0.05 * step, 3)}
        else:
            train_loss = round(2.0 / (1 + 0.5 * step), 4)
            data = {"step": step, "train_loss": train_loss, "total_steps": self.total_steps,
                    "train_mean_token_accuracy": round(0.4 + 0.05 * step, 3)}
        if step % 2 == 0:
            data["valid_loss"] = round(train_loss + 0.1, 4)
            data["valid_mean_token_accuracy"] = round(0.35 + 0.05 * step, 3)
        self._event(job_id, f"Step {step}/{self.total_steps}: training loss={train_loss}", data=data, kind="metrics")
        if step % 3 == 0:
            suffix = job.get("suffix") or "fake"
            self.checkpoints[job_id].append({
                "id": _short_id("ftckpt"), "object": "fine_tuning.job.checkpoint", "created_at": _now(),
                "fine_tuned_model_checkpoint": f"ft:{job['model']}:org-fake:{suffix}:{job_id[-8:]}:ckpt-step-{step}",
                "fine_tuning_job_id": job_id, "metrics": {"step": step, "train_loss": train_loss},
                "step_number": step})

    def _event(self, job_id: str, message: str, *, level: str = "info", data: dict | None = None,
               kind: str = "message") -> None:
        self.events[job_id].append({"id": _short_id("ftevent"), "object": "fine_tuning.job.event",
                                    "created_at": _now(), "level": level, "message": message, "data": data or {},
                                    "type": kind})

    def _list_events(self, job_id: str, query: dict) -> Reply:
        """Newest first, `after` = the id of the last event of the previous page, like the API."""
        newest_first = list(reversed(self.events[job_id]))
        after = query.get("after")
        if after:
            ids = [e["id"] for e in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", 20))
        return 200, {"object": "list", "data": newest_first[:limit], "has_more": len(newest_first) > limit}, {}


class EventStream:
    """A streamed answer: each event a `data: {json}` line and a blank line, sent as one HTTP chunk and
    flushed, so the client reads it before the next is written; `data: [DONE]` ends it, as OpenAI's does."""

    def __init__(self, events: list[dict], pause_s: float = 0.0) -> None:
        self.events = events
        self.pause_s = pause_s

    def send(self, handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for n, data in enumerate([json.dumps(event) for event in self.events] + ["[DONE]"]):
            if n and self.pause_s:
                time.sleep(self.pause_s)
            line = f"data: {data}\n\n".encode()
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


def _quota_error() -> dict:
    return error("You exceeded your current quota, please check your plan and billing details.",
                 "insufficient_quota", "insufficient_quota")


def _presented_key(headers: dict) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return headers.get("api-key")


def _parse_multipart(content_type: str, body: bytes) -> dict:
    """Form fields as str, file parts as {"filename", "content"}."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    form: dict = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        form[name] = {"filename": filename, "content": payload} if filename is not None else payload.decode()
    return form
