"""A stand-in for Together AI's API that the tests drive through the real `together` SDK (3.x).

A real HTTP server on 127.0.0.1 (random port), serving the routes the SDK calls, with the shapes it
parses (`together/resources/fine_tuning.py`, `together/lib/resources/files.py`):

- files: `POST /v1/files` (multipart: purpose, file_name, file_type, checksum) answers 302 with
  `Location` (an upload URL here) and `X-Together-File-Id`; `PUT /upload/{id}` takes the bytes;
  `POST /v1/files/{id}/preprocess` starts the server-side check; `GET /v1/files/{id}` shows it
  (`processing_status` PENDING, then COMPLETED, or INVALID_FORMAT with a `validation_report` when
  `refuse_file` is set);
- fine-tunes: `GET /v1/fine-tunes/models/limits`, `POST /v1/fine-tunes/estimate-price`,
  `POST /v1/fine-tunes` (create), `GET /v1/fine-tunes/{id}` (each retrieve moves the job one step:
  pending -> queued -> running, `steps_per_poll` steps at a time out of `total_steps`, -> completed),
  `GET .../events`, `GET .../metrics` (`train/loss` rows, `eval/loss` rows), `POST .../cancel`;
- preference (DPO) jobs: a create with `training_method.method` "dpo" is refused unless its files hold
  preference rows (`input.messages`, one-message `preferred_output` and `non_preferred_output`), as
  Together's check would; its metrics start at ln 2 and carry TRL's DPO names (`train/rewards/accuracies`,
  `train/rewards/margins`, as an example of metrics the backend passes through); `from_checkpoint` must
  name a job here (its id or output model, optionally `:STEP`), whose base model the new job inherits;
- the OpenAI-compatible layer the arena uses: `GET /v1/models` (base models and finished fine-tunes),
  `POST /v1/chat/completions`.

Errors to inject (attributes, set before the calls): `expected_key` (any other key gets a 401 that
quotes the key it was given, so tests prove it is scrubbed); `rate_limit_next` (the next N API
requests get a 429 with `retry-after-ms`); `refuse_file` (a message: uploads fail the server-side
check with it); `fail_job` (a message: the job errors with it once running); `unknown_models`.

What it saw: `records` (method, path, route, query, headers, json, form) and `calls(method, suffix)`;
`status_log`; `files`, `jobs`, `events`, `metrics`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from .openai_server import _parse_multipart, _presented_key, default_answer
from .wire import JSONStandIn

TOGETHER_KEY = "together-test-key-0123456789"  # not shaped like a provider key: only scrubbing by value hides it
BASE_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
PRICE_PER_1M = 3.0  # what the stand-in's estimate charges per 1M tokens

Reply = tuple[int, dict, dict]


def _iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _short_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "code": code}}


def preference_problem(content: bytes) -> str | None:
    """Why a file is not Together's preference format (None when every line is a preference row)."""
    for number, line in enumerate(content.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return f"line {number}: not JSON"
        if not isinstance(row, dict):
            return f"line {number}: not a JSON object"
        messages = (row.get("input") or {}).get("messages") if isinstance(row.get("input"), dict) else None
        if not messages:
            return f"line {number}: no input.messages"
        for key in ("preferred_output", "non_preferred_output"):
            output = row.get(key)
            if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict)
                    and output[0].get("role") == "assistant"):
                return f"line {number}: {key} must be exactly one assistant message"
    return None


def _tokens(content: bytes) -> int:
    """A stand-in token count: words of the file."""
    return len(content.decode("utf-8", errors="replace").split())


class TogetherStandIn(JSONStandIn):
    """State and behaviour of the stand-in; `start()` serves it, `stop()` (or `with`) ends it."""

    name = "together-stand-in"
    methods = ("GET", "POST", "PUT")

    def __init__(self, *, expected_key: str | None = TOGETHER_KEY, total_steps: int = 6,
                 steps_per_poll: int = 2) -> None:
        self.expected_key = expected_key
        self.total_steps = total_steps
        self.steps_per_poll = steps_per_poll
        self.models = [BASE_MODEL]
        self.unknown_models: set[str] = set()
        # errors to inject
        self.rate_limit_next = 0
        self.refuse_file: str | None = None
        self.fail_job: str | None = None
        # what it saw
        self.records: list[dict] = []
        self.status_log: list[int] = []
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.metrics: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    def calls(self, method: str | None = None, suffix: str | None = None) -> list[dict]:
        with self._lock:
            rows = list(self.records)
        return [r for r in rows if (method is None or r["method"] == method)
                and (suffix is None or r["route"].endswith(suffix))]

    # -- routing -----------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> Reply:
        route = path[len("/v1"):] if path.startswith("/v1/") else path
        record = {"method": method, "path": path, "route": route, "query": query, "headers": headers,
                  "json": None, "form": None}
        content_type = headers.get("content-type", "")
        if body and content_type.startswith("multipart/form-data"):
            record["form"] = _parse_multipart(content_type, body)
        elif body and method != "PUT":
            try:
                record["json"] = json.loads(body)
            except ValueError:
                return 400, _error("could not parse the JSON body"), {}
        parts = [p for p in route.split("/") if p]
        with self._lock:
            self.records.append(record)
            if parts[:1] == ["upload"] and method == "PUT":  # the presigned upload: no key, like object storage
                return self._put_upload(parts[1], body)
            key = _presented_key(headers)
            if self.expected_key is not None and key != self.expected_key:
                return 401, _error(f"Invalid API key provided: {key}", "invalid_api_key", "invalid_api_key"), {}
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                return 429, _error("You have exceeded the rate limit, please slow down.", "rate_limit"), {
                    "retry-after-ms": "20", "retry-after": "1"}
            return self._route(method, parts, record, query)

    def _route(self, method: str, parts: list[str], record: dict, query: dict) -> Reply:
        if parts == ["files"] and method == "POST":
            return self._create_upload(record["form"] or {})
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "preprocess" and method == "POST":
            return self._preprocess(parts[1])
        if len(parts) == 2 and parts[0] == "files" and method == "GET":
            return self._retrieve_file(parts[1])
        if parts == ["fine-tunes", "models", "limits"] and method == "GET":
            return self._limits(query.get("model_name", ""))
        if parts == ["fine-tunes", "estimate-price"] and method == "POST":
            return self._estimate(record["json"] or {})
        if parts == ["fine-tunes"] and method == "POST":
            return self._create_job(record["json"] or {})
        if len(parts) >= 2 and parts[0] == "fine-tunes":
            job_id = parts[1]
            if job_id not in self.jobs:
                return 404, _error(f"fine-tune job {job_id} not found", code="not_found"), {}
            tail = parts[2:]
            if not tail and method == "GET":
                self._advance(job_id)
                return 200, self.jobs[job_id], {}
            if tail == ["events"] and method == "GET":
                return 200, {"data": list(self.events[job_id])}, {}
            if tail == ["metrics"] and method == "GET":
                first = int(query.get("global_step_from", 0))
                rows = [m for m in self.metrics[job_id] if _step_of(m) >= first]
                return 200, {"metrics": rows}, {}
            if tail == ["cancel"] and method == "POST":
                return self._cancel(job_id)
        if parts == ["models"] and method == "GET":
            names = self.models + [j["model_output_name"] for j in self.jobs.values() if j["status"] == "completed"]
            return 200, {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "together"}
                                                    for n in names]}, {}
        if parts == ["chat", "completions"] and method == "POST":
            return self._chat(record["json"] or {})
        return 404, _error(f"Unknown route {method} {record['path']}", code="not_found"), {}

    # -- files -------------------------------------------------------------------------
    def _create_upload(self, form: dict) -> Reply:
        file_id = _short_id("file")
        self.files[file_id] = {"name": form.get("file_name", "upload.jsonl"), "purpose": form.get("purpose"),
                               "file_type": form.get("file_type"), "content": None, "status": "PENDING",
                               "created_at": int(time.time()), "form": form}
        return 302, {}, {"Location": f"{self.url}/upload/{file_id}", "X-Together-File-Id": file_id}

    def _put_upload(self, file_id: str, body: bytes) -> Reply:
        entry = self.files.get(file_id)
        if entry is None:
            return 404, _error("no such upload"), {}
        entry["content"] = body
        return 200, {}, {}

    def _file(self, file_id: str) -> dict:
        entry = self.files[file_id]
        obj = {"id": file_id, "object": "file", "bytes": len(entry["content"] or b""), "created_at": entry["created_at"],
               "filename": entry["name"], "FileType": entry["file_type"] or "jsonl", "purpose": entry["purpose"],
               "processing_status": entry["status"]}
        if entry["status"] == "INVALID_FORMAT":
            obj["validation_report"] = {"valid": False, "error": entry["refusal"], "error_type": "INVALID_FORMAT",
                                        "file_id": file_id}
        elif entry["status"] == "COMPLETED":
            kind = "CONVERSATION" if preference_problem(entry["content"] or b"") else "PREFERENCE_OPENAI"
            obj["validation_report"] = {"valid": True, "dataset_format": kind, "file_id": file_id,
                                        "nlines": (entry["content"] or b"").count(b"\n")}
        return obj

    def _preprocess(self, file_id: str) -> Reply:
        if file_id not in self.files or self.files[file_id]["content"] is None:
            return 400, _error(f"file {file_id} was not uploaded"), {}
        return 200, self._file(file_id), {}

    def _retrieve_file(self, file_id: str) -> Reply:
        entry = self.files.get(file_id)
        if entry is None:
            return 404, _error(f"file {file_id} not found", code="not_found"), {}
        if entry["status"] == "PENDING":  # the server-side check runs between two looks
            if self.refuse_file:
                entry.update(status="INVALID_FORMAT", refusal=self.refuse_file)
            else:
                entry["status"] = "COMPLETED"
        return 200, self._file(file_id), {}

    # -- fine-tunes ----------------------------------------------------------------------
    def _limits(self, model: str) -> Reply:
        if model in self.unknown_models:
            return 404, _error(f"Model {model} is not available for fine-tuning", code="model_not_found"), {}
        return 200, {
            "model_name": model, "default_gradient_accumulation_steps": 1, "max_learning_rate": 1.0,
            "min_learning_rate": 1e-6, "max_num_checkpoints": 10, "max_num_epochs": 20, "max_num_evals": 100,
            "max_seq_length_sft": 8192, "max_seq_length_dpo": 8192, "min_max_seq_length": 512,
            "merge_output_lora": False, "supports_full_training": True, "supports_reasoning": False,
            "supports_tools": True, "supports_vision": False,
            "lora_training": {"default_rank": 8, "max_batch_size": 32, "max_batch_size_dpo": 16, "max_rank": 64,
                              "min_batch_size": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
            "full_training": {"max_batch_size": 16, "max_batch_size_dpo": 8, "min_batch_size": 8},
        }, {}

    def _estimate(self, body: dict) -> Reply:
        train = self.files.get(body.get("training_file") or "")
        if train is None or train["status"] != "COMPLETED":
            reason = "train_file_invalid" if train is not None and train["status"] == "INVALID_FORMAT" \
                else "train_file_not_validated"
            return 200, {"estimation_available": False, "unavailable_reason": reason}, {}
        valid = self.files.get(body.get("validation_file") or "")
        train_tokens = int(body.get("n_epochs") or 1) * _tokens(train["content"])
        eval_tokens = int(body.get("n_evals") or 0) * (_tokens(valid["content"]) if valid else 0)
        return 200, {"estimation_available": True, "allowed_to_proceed": True, "user_limit": 100.0,
                     "estimated_train_token_count": train_tokens, "estimated_eval_token_count": eval_tokens,
                     "estimated_total_price": round((train_tokens + eval_tokens) * PRICE_PER_1M / 1e6, 6)}, {}

    def _create_job(self, body: dict) -> Reply:
        for field in ("training_file", "validation_file"):
            file_id = body.get(field)
            if file_id and (file_id not in self.files or self.files[file_id]["status"] != "COMPLETED"):
                return 400, _error(f"{field} {file_id} has not passed validation"), {}
        method = (body.get("training_method") or {}).get("method")
        if method == "dpo":
            for field in ("training_file", "validation_file"):
                file_id = body.get(field)
                problem = preference_problem(self.files[file_id]["content"] or b"") if file_id else None
                if problem:
                    return 400, _error(f"{field} {file_id} is not in the preference format: {problem}"), {}
        model = body.get("model") or ""
        checkpoint = body.get("from_checkpoint")
        if checkpoint:
            parent = self._job_named(checkpoint.split(":")[0])
            if parent is None:
                return 400, _error(f"from_checkpoint {checkpoint}: no such job or output model"), {}
            model = parent["model"]
        job_id = "ft-" + uuid.uuid4().hex[:8] + "-" + uuid.uuid4().hex[:4]
        suffix = body.get("suffix")
        name = f"user/{model.split('/')[-1]}-{(suffix + '-') if suffix else ''}{job_id[3:11]}"
        now = _iso()
        self.jobs[job_id] = {
            "id": job_id, "status": "pending", "user_id": "user", "created_at": now, "updated_at": now,
            "model": model, "model_output_name": name, "adapter_output_name": None,
            "training_file": body.get("training_file"), "validation_file": body.get("validation_file") or None,
            "n_epochs": body.get("n_epochs"), "n_evals": body.get("n_evals"), "learning_rate": body.get("learning_rate"),
            "batch_size": body.get("batch_size"), "training_type": body.get("training_type"),
            "training_method": body.get("training_method"), "suffix": suffix, "token_count": None,
            "from_checkpoint": checkpoint,
            "total_price": None, "param_count": 8_000_000_000, "_step": 0,
        }
        self.events[job_id] = []
        self.metrics[job_id] = []
        self._event(job_id, "job_pending", "Fine tune request created")
        return 200, self._public(job_id), {}

    def _job_named(self, name: str) -> dict | None:
        return next((j for j in self.jobs.values() if name in (j["id"], j["model_output_name"])), None)

    def _public(self, job_id: str) -> dict:
        return {k: v for k, v in self.jobs[job_id].items() if not k.startswith("_")}

    def _cancel(self, job_id: str) -> Reply:
        job = self.jobs[job_id]
        if job["status"] in ("completed", "error", "cancelled"):
            return 400, _error(f"job {job_id} has already ended"), {}
        job["status"] = "cancelled"
        job["updated_at"] = _iso()
        self._event(job_id, "cancel_requested", "Fine-tuning job cancelled by the user")
        return 200, {"id": job_id, "status": "cancelled", "created_at": job["created_at"],
                     "updated_at": job["updated_at"]}, {}

    def _advance(self, job_id: str) -> None:
        """One retrieve = one step of the job's life (the real service takes minutes)."""
        job = self.jobs[job_id]
        job["updated_at"] = _iso()
        if job["status"] == "pending":
            job["status"] = "queued"
            self._event(job_id, "job_pending", "Job is queued")
        elif job["status"] == "queued":
            job["status"] = "running"
            job["token_count"] = 4321
            self._event(job_id, "training_start", "Training started", total_steps=self.total_steps)
        elif job["status"] == "running":
            if self.fail_job:
                job["status"] = "error"
                self._event(job_id, "job_error", self.fail_job, level="error")
                return
            for _ in range(self.steps_per_poll):
                if job["_step"] >= self.total_steps:
                    break
                job["_step"] += 1
                self._train_step(job_id, job["_step"])
            if job["_step"] >= self.total_steps:
                job.update(status="completed", total_price=1234)
                self._event(job_id, "training_complete", "Training completed")
                self._event(job_id, "job_complete", f"Job finished: {job['model_output_name']}",
                            model_path=f"s3://together/{job['model_output_name']}")

    def _train_step(self, job_id: str, step: int) -> None:
        row: dict[str, Any] = {"train/learning_rate": 1e-5, "train/global_step": step,
                               "train/epoch": step / self.total_steps}
        if (self.jobs[job_id]["training_method"] or {}).get("method") == "dpo":
            loss = round(0.6931 / (1 + 0.3 * step), 4)  # DPO's loss starts at ln 2
            row.update({"train/rewards/accuracies": round(min(1.0, 0.5 + 0.08 * step), 4),
                        "train/rewards/margins": round(0.05 * step, 4)})
        else:
            loss = round(2.0 / (1 + 0.5 * step), 4)
        self.metrics[job_id].append({"train/loss": loss, **row})
        if step % 2 == 0 and self.jobs[job_id]["validation_file"]:
            self.metrics[job_id].append({"eval/loss": round(loss + 0.1, 4), "eval/global_step": step})
        if step % 3 == 0:
            self._event(job_id, "checkpoint_save", f"New checkpoint saved at step {step}", step=step,
                        total_steps=self.total_steps,
                        checkpoint_path=f"{self.jobs[job_id]['model_output_name']}:{step}")

    def _event(self, job_id: str, type_: str, message: str, *, level: str = "info", **extra: Any) -> None:
        self.events[job_id].append({"object": "fine-tune-event", "created_at": _iso(), "type": type_,
                                    "message": message, "level": level, **extra})

    # -- the OpenAI-compatible layer ------------------------------------------------------
    def _chat(self, body: dict) -> Reply:
        model = body.get("model", "")
        messages = body.get("messages") or []
        text = default_answer(model, messages)
        return 200, {"id": _short_id("chatcmpl"), "object": "chat.completion", "created": int(time.time()),
                     "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()),
                               "total_tokens": 1 + len(text.split())}}, {}


def _step_of(row: dict) -> int:
    for key in ("train/global_step", "eval/global_step"):
        if key in row:
            return int(row[key])
    return 0
