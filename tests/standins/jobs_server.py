"""A stand-in for Hugging Face Jobs (and the Hub it lives on) that REALLY runs each job's command here.

`huggingface_hub`'s Jobs client talks to `{HF_ENDPOINT}/api/jobs/...`; this server answers those
routes exactly as the SDK reads them, and inherits the Hub's (repos, uploads, downloads, whoami)
from `HubStandIn`, so a job's own downloads and uploads (HF_ENDPOINT points here) land in the
same place the test looks:

- `POST /api/jobs/{namespace}`: create. The job's command runs at once in a subprocess of its
  own process group (`bash -c` of the command), in a fresh temporary folder, with the job's
  `environment` AND its `secrets` as environment variables (as a container gets them), plus
  HF_ENDPOINT (this server), HF_HOME (inside the folder) and PATH starting with this Python's
  folder. The image is ignored: this machine's Python already has the training stack, so the
  one substitution is `FTASSIST_SKIP_INSTALL=1`, which the ftassist command honours by
  skipping its `pip install` line. Nothing else of the command is changed.
- `GET /api/jobs/{namespace}/{id}`: the JobInfo JSON (stage SCHEDULING -> RUNNING -> COMPLETED,
  ERROR with "exit code N", or CANCELED); secrets are listed by name only.
- `GET /api/jobs/{namespace}/{id}/logs`: Server-Sent Events, `data: {"data": LINE, "timestamp":
  ISO}` per output line (stdout and stderr), a `===== Job started` line first, streamed live and
  closed once the job has ended (the SDK then checks the stage and stops).
- `POST /api/jobs/{namespace}/{id}/cancel`: SIGKILL to the job's process group; stage CANCELED.
- `GET /api/jobs/hardware`: `hardware` (None: answered 500, to exercise the fallback).

Injection: `crash_with` (a text) replaces the next job's command with one that prints that text
and exits 1, as a job that dies of a CUDA out-of-memory error does. What it saw: `created`
(every create body), `jobs` (id -> `Job`), and the Hub's `repos`, `files`, `auth`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .hub_server import HubStandIn
from .wire import send_json

TERMINAL = ("COMPLETED", "CANCELED", "ERROR", "DELETED")

# Three flavors as the Hub lists them (unit cost per minute), enough to choose among.
HARDWARE = [
    {"name": "cpu-basic", "prettyName": "CPU Basic", "cpu": "2 vCPU", "ram": "16 GB", "accelerator": None,
     "unitCostMicroUSD": 167, "unitCostUSD": 0.000167, "unitLabel": "minute"},
    {"name": "t4-small", "prettyName": "Nvidia T4 - small", "cpu": "4 vCPU", "ram": "15 GB",
     "accelerator": {"type": "gpu", "model": "T4", "quantity": "1", "vram": "16 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 6667, "unitCostUSD": 0.006667, "unitLabel": "minute"},
    {"name": "l4x1", "prettyName": "Nvidia 1xL4", "cpu": "8 vCPU", "ram": "30 GB",
     "accelerator": {"type": "gpu", "model": "L4", "quantity": "1", "vram": "24 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 13333, "unitCostUSD": 0.013333, "unitLabel": "minute"},
    {"name": "a100-large", "prettyName": "Nvidia A100 - large", "cpu": "12 vCPU", "ram": "142 GB",
     "accelerator": {"type": "gpu", "model": "A100", "quantity": "1", "vram": "80 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 41667, "unitCostUSD": 0.041667, "unitLabel": "minute"},
]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Job:
    """One job: its request, its process, its log lines and its stage."""

    def __init__(self, namespace: str, body: dict, endpoint: str) -> None:
        self.id = uuid.uuid4().hex[:24]
        self.namespace = namespace
        self.body = body
        self.endpoint = endpoint
        self.stage = "SCHEDULING"
        self.message: str | None = None
        self.created_at = _now()
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self.lines: list[tuple[str, str]] = [(_now(), f"===== Job started at {_now()} =====")]
        self.changed = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.folder = Path(tempfile.mkdtemp(prefix="hf-job-"))

    def info(self) -> dict:
        return {
            "id": self.id, "createdAt": self.created_at, "startedAt": self.started_at,
            "finishedAt": self.finished_at, "dockerImage": self.body.get("dockerImage"),
            "spaceId": self.body.get("spaceId"), "command": self.body.get("command"),
            "arguments": self.body.get("arguments"), "environment": self.body.get("environment"),
            "secrets": {name: None for name in self.body.get("secrets") or {}},
            "flavor": self.body.get("flavor"), "labels": self.body.get("labels"),
            "status": {"stage": self.stage, "message": self.message},
            "owner": {"id": "0" * 24, "name": self.namespace, "type": "user"},
        }

    @property
    def ended(self) -> bool:
        return self.stage in TERMINAL

    def finish(self, stage: str, message: str | None = None) -> None:
        with self.changed:
            if self.ended:
                return
            self.stage, self.message, self.finished_at = stage, message, _now()
            self.changed.notify_all()


class JobsStandIn(HubStandIn):
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.created: list[dict] = []
        self.hardware: list[dict] | None = HARDWARE
        self.crash_with: str | None = None
        super().__init__()

    # -- routes ---------------------------------------------------------------------------------
    def get(self, handler, head: bool) -> bool:
        parts = handler.path.split("?")[0].strip("/").split("/")
        if parts[:2] != ["api", "jobs"]:
            return super().get(handler, head)
        self.auth.append(handler.headers.get("Authorization", ""))
        if parts[2:] == ["hardware"]:
            if self.hardware is None:
                send_json(handler, 500, {"error": "hardware list unavailable"})
            else:
                data = json.dumps(self.hardware).encode()
                handler.send_response(200)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
            return True
        job = self.jobs.get(parts[3]) if len(parts) >= 4 else None
        if job is None or job.namespace != parts[2]:
            send_json(handler, 404, {"error": "Job not found"})
            return True
        if parts[4:] == []:
            send_json(handler, 200, job.info())
        elif parts[4:] == ["logs"]:
            self._stream_logs(handler, job)
        else:
            send_json(handler, 404, {"error": f"no route {handler.path}"})
        return True

    def post(self, parts: list[str], raw: bytes) -> tuple[int, dict]:
        if parts[:2] != ["api", "jobs"]:
            return super().post(parts, raw)
        if len(parts) == 3:
            body = json.loads(raw)
            self.created.append(body)
            job = Job(parts[2], body, self.url)
            self.jobs[job.id] = job
            self._start(job)
            return 200, job.info()
        job = self.jobs.get(parts[3]) if len(parts) >= 4 else None
        if job is None or job.namespace != parts[2]:
            return 404, {"error": "Job not found"}
        if parts[4:] == ["cancel"]:
            self.cancel(job)
            return 200, {}
        return 404, {"error": f"no route /{'/'.join(parts)}"}

    # -- running --------------------------------------------------------------------------------
    def _start(self, job: Job) -> None:
        command = list(job.body.get("command") or []) + list(job.body.get("arguments") or [])
        if self.crash_with is not None:
            command = ["bash", "-c", f"printf '%s\\n' {shlex.quote(self.crash_with)} >&2; exit 1"]
            self.crash_with = None
        env = {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(job.folder), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
            "HF_HOME": str(job.folder / ".hf"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
            "TOKENIZERS_PARALLELISM": "false",
            **{k: str(v) for k, v in (job.body.get("environment") or {}).items()},
            **{k: str(v) for k, v in (job.body.get("secrets") or {}).items()},
            "HF_ENDPOINT": self.url,
            "FTASSIST_SKIP_INSTALL": "1",  # the image's install step: the training stack is already here
        }
        job.env = env
        job.proc = subprocess.Popen(["bash", "-c", shlex.join(command)], cwd=str(job.folder), env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        with job.changed:
            job.stage, job.started_at = "RUNNING", _now()
            job.changed.notify_all()
        threading.Thread(target=self._pump, args=(job,), name=f"hf-job-{job.id}", daemon=True).start()
        timeout = job.body.get("timeoutSeconds")
        if timeout:
            timer = threading.Timer(float(timeout), self._time_out, args=(job,))
            timer.daemon = True
            timer.start()

    def _pump(self, job: Job) -> None:
        assert job.proc is not None and job.proc.stdout is not None
        for raw in job.proc.stdout:
            with job.changed:
                job.lines.append((_now(), raw.decode("utf-8", errors="replace").rstrip("\n")))
                job.changed.notify_all()
        rc = job.proc.wait()
        if rc == 0:
            job.finish("COMPLETED")
        else:
            job.finish("ERROR", f"Job failed with exit code: {rc}")

    def _time_out(self, job: Job) -> None:
        if not job.ended:
            self._kill(job)
            job.finish("ERROR", "Job timeout")

    def cancel(self, job: Job) -> None:
        """What a cancel does: the job's processes are killed and its stage is CANCELED."""
        job.finish("CANCELED")
        self._kill(job)

    @staticmethod
    def _kill(job: Job) -> None:
        if job.proc is not None and job.proc.poll() is None:
            try:
                os.killpg(job.proc.pid, signal.SIGKILL)
            except OSError:
                pass

    def _stream_logs(self, handler, job: Job) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()  # no length: the stream ends when the connection closes (HTTP/1.0)
        sent = 0
        try:
            while True:
                with job.changed:
                    while sent == len(job.lines) and not job.ended:
                        job.changed.wait(1.0)
                    batch = job.lines[sent:]
                    done = job.ended and sent + len(batch) == len(job.lines)
                for stamp, line in batch:
                    payload = json.dumps({"data": line, "timestamp": stamp})
                    handler.wfile.write(f"data: {payload}\n\n".encode())
                sent += len(batch)
                handler.wfile.flush()
                if done:
                    return
        except (BrokenPipeError, ConnectionResetError):  # the client went away (a follower killed)
            return

    def alive(self, job_id: str) -> bool:
        """Whether the job's process still runs (a cancel must leave none)."""
        job = self.jobs[job_id]
        return job.proc is not None and job.proc.poll() is None

    def close(self) -> None:
        for job in self.jobs.values():
            self._kill(job)
            if job.proc is not None:
                try:
                    job.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            shutil.rmtree(job.folder, ignore_errors=True)
        super().close()
