"""A small, real HTTP server that speaks the part of OpenAI's API that fine-tuning uses.

The tests drive the real `openai` SDK against it (no mocks inside the SDK), so what is
checked is what would go over the wire: the multipart upload with purpose=fine-tune, the
job body with `method.supervised.hyperparameters`, the Azure URL shape (`/openai/...`
with `api-version`), the headers that carry the key. Jobs move through
validating_files -> queued -> running -> succeeded one step per retrieve, emitting
metrics events as they go, like the real service does over minutes.

Scenario switches (attributes, set before the calls): `rate_limit_creates` (that many
429s before a create succeeds), `quota` (429 insufficient_quota on create), `fail_job`
(the job ends `failed` with an error object), `expected_key` (anything else is a 401
whose message echoes the key, as OpenAI's does, so the tests can check it is scrubbed).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

API_PREFIXES = ("/v1", "/openai")


def _now() -> int:
    return int(time.time())


def _short_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class FakeOpenAI:
    """State and behaviour of the fake service; `start()` serves it on 127.0.0.1:random port."""

    def __init__(
        self,
        *,
        expected_key: str | None = "sk-test-fake-key-0123456789",
        total_steps: int = 6,
        steps_per_poll: int = 2,
    ) -> None:
        self.expected_key = expected_key
        self.total_steps = total_steps
        self.steps_per_poll = steps_per_poll
        self.rate_limit_creates = 0
        self.quota = False
        self.fail_job = False
        self.file_polls_before_processed = 1
        self.requests: list[dict] = []
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.checkpoints: dict[str, list[dict]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """Root of the server (Azure clients take this as `azure_endpoint`)."""
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`."""
        return self.url + "/v1"

    # -- helpers for tests ------------------------------------------------------------
    def calls(self, method: str | None = None, path_suffix: str | None = None) -> list[dict]:
        with self._lock:
            rows = list(self.requests)
        return [
            r
            for r in rows
            if (method is None or r["method"] == method) and (path_suffix is None or r["route"].endswith(path_suffix))
        ]

    # -- behaviour ---------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict, headers: dict, body: bytes) -> tuple[int, dict, dict]:
        """Returns (status, json body, extra headers)."""
        route = path
        for prefix in API_PREFIXES:
            if route.startswith(prefix + "/"):
                route = route[len(prefix):]
                break
        record = {
            "method": method,
            "path": path,
            "route": route,
            "query": query,
            "headers": headers,
            "json": None,
            "form": None,
        }
        content_type = headers.get("content-type", "")
        if body and content_type.startswith("application/json"):
            record["json"] = json.loads(body)
        elif body and content_type.startswith("multipart/form-data"):
            record["form"] = _parse_multipart(content_type, body)
        with self._lock:
            self.requests.append(record)

        key = _presented_key(headers)
        if self.expected_key is not None and key != self.expected_key:
            return 401, _error(
                f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            ), {}

        parts = [p for p in route.split("/") if p]
        with self._lock:
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
                    return 404, _error(f"No such fine-tuning job: {job_id}", "invalid_request_error", "not_found"), {}
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
                    job = self.jobs[job_id]
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        return 400, _error(
                            f"Job {job_id} has already completed.", "invalid_request_error", "invalid_state"
                        ), {}
                    job["status"] = "cancelled"
                    job["finished_at"] = _now()
                    self._event(job_id, "Fine-tuning job cancelled", level="info")
                    return 200, self._public(job), {}
        return 404, _error(f"Unknown route {method} {path}", "invalid_request_error", "not_found"), {}

    def _create_file(self, form: dict) -> tuple[int, dict, dict]:
        upload = form.get("file") or {}
        file_id = _short_id("file")
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(upload.get("content", b"")),
            "created_at": _now(),
            "filename": upload.get("filename", "upload.jsonl"),
            "purpose": form.get("purpose", ""),
            "status": "uploaded",
        }
        self.files[file_id] = {"obj": obj, "polls": 0, "content": upload.get("content", b"")}
        return 200, obj, {}

    def _retrieve_file(self, file_id: str) -> tuple[int, dict, dict]:
        entry = self.files.get(file_id)
        if entry is None:
            return 404, _error(f"No such File object: {file_id}", "invalid_request_error", "not_found"), {}
        entry["polls"] += 1
        if entry["polls"] >= self.file_polls_before_processed:
            entry["obj"]["status"] = "processed"
        return 200, entry["obj"], {}

    def _create_job(self, body: dict) -> tuple[int, dict, dict]:
        if self.quota:
            return 429, _error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ), {}
        if self.rate_limit_creates > 0:
            self.rate_limit_creates -= 1
            return 429, _error(
                "Rate limit reached for requests. Please try again in 20ms.", "requests", "rate_limit_exceeded"
            ), {"x-should-retry": "true"}
        for field in ("training_file", "validation_file"):
            fid = body.get(field)
            if fid and fid not in self.files:
                return 400, _error(f"invalid {field}: {fid}", "invalid_request_error", "invalid_file"), {}
        if not body.get("model"):
            return 400, _error("model is required", "invalid_request_error", "missing_required_parameter"), {}
        job_id = _short_id("ftjob")
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
        hyper = dict((method.get(method.get("type", "supervised")) or {}).get("hyperparameters") or {})
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": _now(),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": {
                "n_epochs": hyper.get("n_epochs", "auto"),
                "batch_size": hyper.get("batch_size", "auto"),
                "learning_rate_multiplier": hyper.get("learning_rate_multiplier", "auto"),
            },
            "model": body["model"],
            "organization_id": "org-fake",
            "result_files": [],
            "seed": body.get("seed") if body.get("seed") is not None else 42,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "estimated_finish": None,
            "method": method,
            "suffix": body.get("suffix"),
            "_step": 0,
        }
        self.jobs[job_id] = job
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self._event(job_id, f"Created fine-tuning job: {job_id}")
        self._event(job_id, "Validating training file")
        return 200, self._public(job), {}

    def _public(self, job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _advance(self, job_id: str) -> None:
        """One retrieve = one step of the job's life (the real service takes minutes)."""
        job = self.jobs[job_id]
        status = job["status"]
        if status == "validating_files":
            if self.fail_job:
                job["status"] = "failed"
                job["finished_at"] = _now()
                job["error"] = {
                    "code": "invalid_training_file",
                    "message": "The job failed due to an invalid training file. Line 3: missing assistant message.",
                    "param": "training_file",
                }
                self._event(job_id, "The job failed due to an invalid training file.", level="error")
                return
            job["status"] = "queued"
            self._event(job_id, "Files validated, moving job to queued state")
        elif status == "queued":
            job["status"] = "running"
            job["estimated_finish"] = _now() + 60
            self._event(job_id, "Fine-tuning job started")
        elif status == "running":
            for _ in range(self.steps_per_poll):
                if job["_step"] >= self.total_steps:
                    break
                job["_step"] += 1
                step = job["_step"]
                train_loss = round(2.0 / (1 + 0.5 * step), 4)
                data = {
                    "step": step,
                    "train_loss": train_loss,
                    "total_steps": self.total_steps,
                    "train_mean_token_accuracy": round(0.4 + 0.05 * step, 3),
                }
                if step % 2 == 0:
                    data["valid_loss"] = round(train_loss + 0.1, 4)
                    data["valid_mean_token_accuracy"] = round(0.35 + 0.05 * step, 3)
                self._event(
                    job_id, f"Step {step}/{self.total_steps}: training loss={train_loss}", data=data, kind="metrics"
                )
                if step % 3 == 0:
                    suffix = job.get("suffix") or "fake"
                    self.checkpoints[job_id].append(
                        {
                            "id": _short_id("ftckpt"),
                            "object": "fine_tuning.job.checkpoint",
                            "created_at": _now(),
                            "fine_tuned_model_checkpoint": f"ft:{job['model']}:org-fake:{suffix}:{job_id[-8:]}:ckpt-step-{step}",
                            "fine_tuning_job_id": job_id,
                            "metrics": {"step": step, "train_loss": train_loss},
                            "step_number": step,
                        }
                    )
            if job["_step"] >= self.total_steps:
                suffix = job.get("suffix") or "fake"
                job["status"] = "succeeded"
                job["finished_at"] = _now()
                job["fine_tuned_model"] = f"ft:{job['model']}:org-fake:{suffix}:{job_id[-8:]}"
                job["trained_tokens"] = 1234 * self.total_steps
                job["result_files"] = [_short_id("file")]
                self._event(job_id, f"New fine-tuned model created: {job['fine_tuned_model']}")
                self._event(job_id, "The job has successfully completed")

    def _event(self, job_id: str, message: str, *, level: str = "info", data: dict | None = None, kind: str = "message"):
        self.events[job_id].append(
            {
                "id": _short_id("ftevent"),
                "object": "fine_tuning.job.event",
                "created_at": _now(),
                "level": level,
                "message": message,
                "data": data or {},
                "type": kind,
            }
        )

    def _list_events(self, job_id: str, query: dict) -> tuple[int, dict, dict]:
        """Newest first, `after` = the id of the last event of the previous page, like the API."""
        newest_first = list(reversed(self.events[job_id]))
        after = query.get("after")
        if after:
            ids = [e["id"] for e in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", 20))
        page = newest_first[:limit]
        return 200, {"object": "list", "data": page, "has_more": len(newest_first) > limit}, {}


def _error(message: str, type_: str, code: str, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _presented_key(headers: dict) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return headers.get("api-key")


def _parse_multipart(content_type: str, body: bytes) -> dict:
    """Form fields as str, file parts as {"filename", "content"}."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    form: dict = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            form[name] = {"filename": filename, "content": payload}
        else:
            form[name] = payload.decode()
    return form


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeOpenAI

    def log_message(self, format, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = self.server_state.handle(method, split.path, query, headers, self._body())
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")


@pytest.fixture
def fake_openai():
    """A started fake server; stopped after the test."""
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
