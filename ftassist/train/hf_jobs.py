"""The Hugging Face Jobs backend ("hf-jobs"): the project's own recipe on a rented GPU.

Why this shape: a CPU Space (or a laptop) cannot train anything real, but it can rent a GPU by
the minute. The run stays a local run in every way the app sees: a worker process follows it
and writes the same `events.jsonl`, so the Train tab's loss chart, ETA and cancel work unchanged.

Two halves live here, one per machine:

- `run_job` (here, inside the local worker process): uploads the data, the run's spec and
  ftassist's own code to a private dataset repo, starts the job, follows its logs and turns
  the remote events back into local ones, cancels it on a stop request, downloads the adapter.
- `remote_main` (`python -m ftassist.train.hf_jobs` in the job): downloads the data, runs the
  unchanged worker (`python -m ftassist.train.worker`, under `accelerate launch` on multi-GPU
  flavors) on a spec with backend "local", prints each event the worker writes as one log line
  `FTASSIST_EVENT {json}` (with a sequence number, so a follower that re-attaches skips what it
  already has), uploads each checkpoint to the model repo's `last-checkpoint/` (so a cancelled,
  preempted or failed job can be resumed by a new one: `resume_run`), and uploads the adapter/model
  to that private model repo before reporting `finished`.

The image (`spec.hf_jobs.image`) is a public PyTorch CUDA image; the job pip-installs the training
packages pinned to the versions this machine runs, and imports ftassist from the zip of this very
package uploaded next to the data: there is no published ftassist package, and the code the job
runs is the code that wrote the spec (see README, "Train from a CPU Space").

The token (HF_TOKEN, or the key given to the run) goes to the job as a secret, never in its
environment, and is never written to a file, an event or a message (every error is scrubbed).
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

from ftassist.plan import providers
from ftassist.redact import scrub
from ftassist.train.events import TERMINAL_TYPES, read_events, tail_text
from ftassist.train.spec import HUB_PATH_PREFIX, JobSpec, count_records

BACKEND = "hf-jobs"
EVENT_PREFIX = "FTASSIST_EVENT "
CODE_FILE = "ftassist-code.zip"
SPEC_FILE = "spec.json"
CHECKPOINT_PATH = "last-checkpoint"  # where, in the model repo, the job keeps its latest checkpoint (to resume from)
CHECKPOINT_MANIFEST = "ftassist-files.json"  # the checkpoint's file list: downloading it needs no repo listing
START_FOLDER = "start_from"  # where, in the data repo, the model a run starts from is uploaded (SFT, then DPO)
START_BASE_FOLDER = "start_base"  # ...and the local base of a start adapter (tiny-random)
START_MANIFEST = "start-files.json"
SKIP_INSTALL = "FTASSIST_SKIP_INSTALL"  # set where the training stack is already importable (a test stand-in)
# Installed in the job at these versions (this machine's), so the recipe behaves the same; torch comes from the image.
TRAINING_PACKAGES = ("huggingface_hub", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers",
                     "safetensors", "bitsandbytes", "psutil", "pyyaml",
                     "orjson")  # the DPO recipe reads pairs with the Data step's reader (`data/preference_pairs.py`)
OOM_PATTERN = re.compile(r"CUDA out of memory|OutOfMemoryError|out of memory", re.IGNORECASE)
LOG_TAIL_LINES = 40
TOKEN_HINT = ("Set HF_TOKEN to a Hugging Face token with write access (fine-grained: repos and Jobs), or enter it "
              "in the app, then start again.")


# -- the token ------------------------------------------------------------------------------------
def resolve_token(token: str | None = None) -> str | None:
    """The token given (from the session), else HF_TOKEN / HUGGING_FACE_HUB_TOKEN, else `hf auth login`'s."""
    if token and token.strip():
        return token.strip()
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - no saved token is the common case
        return None


def _api(token: str | None):
    from huggingface_hub import HfApi

    # HF_ENDPOINT (a private Hub, a stand-in) is read now, not when huggingface_hub was imported.
    return HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT") or None)


# -- flavors ----------------------------------------------------------------------------------------
# The flavors and the start-up assumption live in the plan station (the estimate prices them too).
Flavor = providers.Flavor
provider_flavors = providers.jobs_flavors
startup_minutes = providers.jobs_startup_minutes


_PER_HOUR = {"second": 3600.0, "minute": 60.0, "hour": 1.0}


def live_flavors(api) -> list[Flavor] | None:
    """The GPU flavors the Hub lists now (`list_jobs_hardware`), or None when it cannot be reached."""
    try:
        listed = api.list_jobs_hardware()
    except Exception:  # noqa: BLE001 - offline or refused: the provider file answers instead
        return None
    out = []
    for hw in listed:
        acc = hw.accelerator
        if acc is None or str(acc.type).lower() != "gpu":
            continue
        match = re.search(r"[\d.]+", str(acc.vram or ""))
        quantity = int(acc.quantity) if str(acc.quantity).isdigit() else 1
        per_hour = _PER_HOUR.get(str(hw.unit_label).lower())
        price = round(hw.unit_cost_usd * per_hour, 2) if per_hour and hw.unit_cost_usd is not None else None
        if match:
            out.append(Flavor(hw.name, str(acc.model), quantity, float(match.group()), price))
    return out or None


def flavors(api=None) -> list[Flavor]:
    """The live list when reachable, else the provider file's."""
    return (live_flavors(api) if api is not None else None) or provider_flavors()


def memory_needed_gb(spec: JobSpec) -> float | None:
    """Peak GPU memory of one training process for `spec` (the plan station's estimate); None for a model
    it does not know (tiny-random, a Hub id whose config.json cannot be read). An `-Instruct` model has its
    base model's architecture, so the catalogue's base entry answers for it."""
    from ftassist.plan import hardware

    arch = None
    for name in dict.fromkeys((spec.base_model, re.sub(r"-Instruct$", "", spec.base_model or ""))):
        try:
            arch = hardware.resolve_model(name, allow_network=name == spec.base_model)
            break
        except ValueError:
            continue
    if arch is None:
        return None
    try:
        gc = spec.gradient_checkpointing if spec.gradient_checkpointing is not None else spec.method == "qlora"
        estimate = hardware.estimate_memory(arch, spec.method, seq_len=spec.max_seq_length or 1024,
                                            batch_size=spec.per_device_batch_size, gradient_checkpointing=bool(gc),
                                            lora_rank=spec.lora_r)
    except (ValueError, KeyError, OSError):
        return None
    return estimate.total_gb


def _usable_gb(flavor: Flavor) -> float:
    from ftassist.plan import hardware

    return flavor.per_gpu_gb * hardware.USABLE_SHARE


def pick_flavor(memory_gb: float | None, choices: list[Flavor]) -> Flavor:
    """The cheapest flavor whose per-GPU memory fits `memory_gb` (fewer GPUs on a tie); with no estimate,
    the cheapest GPU flavor; with nothing big enough, the one with the most memory per GPU."""
    priced = sorted(choices, key=lambda f: (f.usd_per_hour if f.usd_per_hour is not None else float("inf"),
                                            f.gpus, -f.per_gpu_gb))
    if memory_gb is None:
        return priced[0]
    fitting = [f for f in priced if _usable_gb(f) >= memory_gb]
    return fitting[0] if fitting else max(priced, key=lambda f: (f.per_gpu_gb, -(f.usd_per_hour or 0)))


def bigger_flavor(current: str | None, choices: list[Flavor]) -> Flavor | None:
    """The cheapest flavor with more memory per GPU than `current` (what to try after an out-of-memory)."""
    now = next((f for f in choices if f.name == current), None)
    floor = now.per_gpu_gb if now is not None else 0.0
    bigger = [f for f in choices if f.per_gpu_gb > floor]
    if not bigger:
        return None
    return min(bigger, key=lambda f: (f.usd_per_hour if f.usd_per_hour is not None else float("inf"), f.gpus))


def oom_hint(flavor: str | None, choices: list[Flavor] | None = None) -> str:
    """The worker's out-of-memory advice, plus the next flavor up to rent."""
    from ftassist.train.worker import OOM_HINT

    bigger = bigger_flavor(flavor, choices or provider_flavors())
    if bigger is None:
        return OOM_HINT
    return f"{OOM_HINT} Or rent more GPU memory: flavor {bigger.describe()} (--flavor {bigger.name})."


# -- what the job runs --------------------------------------------------------------------------------
def pinned_packages() -> list[str]:
    """The training packages at this machine's versions (those installed here)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in TRAINING_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def remote_command() -> list[str]:
    """The job's command: install the pinned packages, unpack ftassist's code from the data repo, run the driver."""
    pins = " ".join(pinned_packages())
    unpack = ("import os, zipfile; from huggingface_hub import hf_hub_download; "
              f"zipfile.ZipFile(hf_hub_download(os.environ['FTASSIST_DATA_REPO'], '{CODE_FILE}', "
              "repo_type='dataset')).extractall('ftassist-code')")
    script = "\n".join([
        "set -euo pipefail",
        f'if [ -z "${{{SKIP_INSTALL}:-}}" ]; then',
        f"  pip install --no-cache-dir --quiet --root-user-action=ignore {pins}",
        "fi",
        f'python -c "{unpack}"',
        'export PYTHONPATH="$PWD/ftassist-code${PYTHONPATH:+:$PYTHONPATH}"',
        "exec python -m ftassist.train.hf_jobs",
    ])
    return ["bash", "-c", script]


def code_zip() -> bytes:
    """This ftassist package (sources and data files, no caches) as a zip the job unpacks."""
    import ftassist

    root = Path(ftassist.__file__).resolve().parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                z.write(path, str(Path("ftassist") / path.relative_to(root)))
    return buffer.getvalue()


def remote_spec(spec: JobSpec) -> dict[str, Any]:
    """The spec the job trains: the same hyperparameters (objective and DPO beta included), backend local, files
    named as uploaded (a start model as its folder in the data repo). The job's driver uploads the result itself,
    so the worker does not push."""
    data = spec.to_dict()
    data.update(backend="local", train_file="train.jsonl", valid_file="valid.jsonl" if spec.valid_file else None,
                output_dir="model", push_to_hub=False, start_from=START_FOLDER if spec.start_from else None)
    return data


def _start_operations(spec: JobSpec) -> list:
    """The start model's files (and, for an adapter whose base is a local folder, that base's) for the data repo,
    with a list of them the job downloads by (no repo listing needed)."""
    from huggingface_hub import CommitOperationAdd

    from ftassist.train.lineage import inspect_start

    if not spec.start_from:
        return []
    start = inspect_start(spec.start_from)
    folders = {START_FOLDER: Path(start.folder)}
    if start.kind == "adapter" and start.adapter_base and Path(start.adapter_base).is_dir():
        folders[START_BASE_FOLDER] = Path(start.adapter_base)
    listed: dict[str, list[str]] = {}
    operations = []
    for name, folder in folders.items():
        files = sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file())
        listed[name] = files
        operations += [CommitOperationAdd(f"{name}/{f}", str(folder / f)) for f in files]
    operations.append(CommitOperationAdd(START_MANIFEST, json.dumps(listed).encode()))
    return operations


def _download_start(data_repo: str, folder: Path) -> Path:
    """The start model (from `_start_operations`) under `folder`; an adapter's local base comes along and its
    config points at it."""
    from huggingface_hub import hf_hub_download

    listed = json.loads(Path(hf_hub_download(data_repo, START_MANIFEST, repo_type="dataset",
                                             local_dir=str(folder))).read_text("utf-8"))
    for name, files in listed.items():
        for file in files:
            hf_hub_download(data_repo, f"{name}/{file}", repo_type="dataset", local_dir=str(folder))
    start = folder / START_FOLDER
    config = start / "adapter_config.json"
    if START_BASE_FOLDER in listed and config.is_file():
        data = json.loads(config.read_text("utf-8"))
        data["base_model_name_or_path"] = str(folder / START_BASE_FOLDER)
        config.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return start


# -- errors -------------------------------------------------------------------------------------------
def describe_error(exc: BaseException, token: str | None = None) -> tuple[str, str]:
    """(reason, hint) for an exception of the Hub/Jobs client, phrased for the person, token scrubbed."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    text = scrub(f"{type(exc).__name__}: {exc}".splitlines()[0], token, limit=400)
    if status == 401:
        return "the Hugging Face token was rejected (401)", TOKEN_HINT
    if status == 402:
        return ("Hugging Face refused the job for lack of credit (402)",
                "Add credit (or a PRO/Team plan's monthly credits) at https://huggingface.co/settings/billing.")
    if status == 403:
        return (f"the token may not do this (403): {text}",
                "Use a token with write access to the namespace and permission to start Jobs.")
    if status is not None:
        return f"the Hugging Face API refused the request ({status}): {text}", "Fix what the message names and start again."
    if "connect" in text.lower() or "timeout" in text.lower():
        return (f"could not reach the Hugging Face Hub: {text}",
                "Check the network (and HF_ENDPOINT if you use a private Hub), then start again.")
    return text, "See worker.log in the run folder."


# -- the local follower --------------------------------------------------------------------------------
def attached_job(run_dir: str | Path) -> dict[str, Any] | None:
    """What this run's events say about its remote job: the `started` event that named it, plus the highest
    remote sequence number already copied (a re-attached follower skips those)."""
    events, _ = read_events(run_dir)
    found = next((e for e in events if e.get("type") == "started" and e.get("external_id")
                  and e.get("backend") == BACKEND), None)
    if found is None:
        return None
    seqs = [e["remote_seq"] for e in events if isinstance(e.get("remote_seq"), int)]
    return {**found, "last_seq": max(seqs, default=-1)}


def parse_event_line(line: str) -> dict[str, Any] | None:
    """The event of an `FTASSIST_EVENT {json}` log line; None for any other line."""
    start = line.find(EVENT_PREFIX)
    if start < 0:
        return None
    try:
        event = json.loads(line[start + len(EVENT_PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("seq"), int) else None


def run_job(spec: JobSpec, run_dir: str | Path, writer, stop) -> int:
    """Run `spec` on Hugging Face Jobs, reporting through `writer` exactly as a local run does.

    Writes started (as soon as the job exists: external_id = the job id, flavor, namespace, repos),
    then the remote worker's own events (started, log, eval, checkpoint, message), then one of
    finished (the adapter downloaded into spec.output_dir, hub_url = the model repo), failed (the
    reason, a hint, the log tail; out of memory names a bigger flavor) or cancelled (`stop()` cancels
    the remote job). A run whose events already name a job re-attaches to it instead of starting
    another. Returns the worker's exit code (0 finished/cancelled, 1 failed); never raises.
    """
    run_dir = Path(run_dir)
    token = resolve_token()
    flavor: str | None = None
    job_id: str | None = None
    try:
        if not token:
            writer.failed(reason="no Hugging Face token: Jobs run under your account", hint=TOKEN_HINT)
            return 1
        api = _api(token)
        previous = attached_job(run_dir)
        if previous is not None:
            job_id, namespace, flavor = previous["external_id"], previous.get("namespace"), previous.get("flavor")
            writer.message(f"re-attaching to the Hugging Face job {job_id} (its follower had stopped)")
            return _follow(api, spec, run_dir, writer, stop, token, job_id, namespace, flavor,
                           previous.get("model_repo"), previous["last_seq"])
        settings = spec.hf_jobs
        namespace = settings.get("namespace") or api.whoami()["name"]
        choices = flavors(api)
        flavor = settings.get("flavor")
        if not flavor:
            needed = memory_needed_gb(spec)
            chosen = pick_flavor(needed, choices)
            flavor = chosen.name
            why = f"an estimated {needed:.1f} GB per GPU" if needed is not None else "no memory estimate for this model"
            writer.message(f"chose the flavor {chosen.describe()}: the cheapest that fits ({why})")
        run_id = run_dir.name
        data_repo = f"{namespace}/ftassist-{run_id}-data"
        model_repo = spec.hub_model_id or f"{namespace}/ftassist-{run_id}"
        if stop():
            writer.cancelled(step=None, output_dir=None)
            return 0
        writer.message(f"uploading the data, the spec and ftassist's code to the private dataset {data_repo}")
        _upload_inputs(api, spec, data_repo)
        if stop():
            writer.cancelled(step=None, output_dir=None)
            return 0
        env = {"FTASSIST_DATA_REPO": data_repo, "FTASSIST_MODEL_REPO": model_repo, "PYTHONUNBUFFERED": "1"}
        if os.environ.get("HF_ENDPOINT"):
            env["HF_ENDPOINT"] = os.environ["HF_ENDPOINT"]
        job = api.run_job(image=settings["image"], command=remote_command(), env=env, secrets={"HF_TOKEN": token},
                          flavor=flavor, timeout=settings["timeout"], namespace=namespace,
                          labels={"ftassist-run": run_id})
        job_id = job.id
        price = next((f.usd_per_hour for f in choices if f.name == flavor), None)
        writer.started(pid=os.getpid(), total_steps=None, num_examples=count_records(spec.train_file),
                       method=spec.method, base_model=spec.base_model, device=f"hf-jobs {flavor}",
                       backend=BACKEND, external_id=job_id, namespace=namespace, flavor=flavor,
                       usd_per_hour=price, job_url=job.url, data_repo=data_repo, model_repo=model_repo,
                       startup_minutes=startup_minutes())
        return _follow(api, spec, run_dir, writer, stop, token, job_id, namespace, flavor, model_repo, -1)
    except Exception as exc:  # noqa: BLE001 - every failure ends the run with a message, not a traceback
        reason, hint = describe_error(exc, token)
        if writer.terminal is None:
            writer.write("failed", reason=reason, hint=hint, log_tail=tail_text(run_dir / "worker.log"),
                         external_id=job_id)
        return 1


def _upload_inputs(api, spec: JobSpec, data_repo: str) -> None:
    """One commit to a private dataset repo: the data, the remote spec and the code."""
    from huggingface_hub import CommitOperationAdd

    api.create_repo(data_repo, repo_type="dataset", private=True, exist_ok=True)
    operations = [
        CommitOperationAdd("train.jsonl", spec.train_file),
        CommitOperationAdd(SPEC_FILE, json.dumps(remote_spec(spec), indent=2).encode()),
        CommitOperationAdd(CODE_FILE, code_zip()),
    ]
    if spec.valid_file:
        operations.append(CommitOperationAdd("valid.jsonl", spec.valid_file))
    operations += _start_operations(spec)
    api.create_commit(data_repo, operations, repo_type="dataset", commit_message="ftassist: training inputs")


def _follow(api, spec: JobSpec, run_dir: Path, writer, stop, token: str, job_id: str, namespace: str | None,
            flavor: str | None, model_repo: str | None, last_seq: int) -> int:
    """Copy the job's events into the local events file until it ends (or a stop cancels it)."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:  # the SDK's follow blocks on the stream: read it here, decide in the loop below
        try:
            for line in api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=True):
                lines.put(("line", line))
            lines.put(("end", None))
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which reports it
            lines.put(("error", exc))

    threading.Thread(target=pump, name="hf-jobs-logs", daemon=True).start()
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    last_step: int | None = None
    while True:
        if stop():
            try:
                api.cancel_job(job_id=job_id, namespace=namespace)
                writer.message(f"cancelled the Hugging Face job {job_id}")
            except Exception as exc:  # noqa: BLE001 - report it, still end the run as cancelled
                writer.message(f"could not cancel the job {job_id}: {describe_error(exc, token)[0]}; cancel it at "
                               "https://huggingface.co/settings/jobs", level="error")
            writer.cancelled(step=last_step, output_dir=None)
            return 0
        try:
            kind, value = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if kind == "error":
            raise value
        if kind == "end":
            break
        event = parse_event_line(value)
        if event is None:
            tail.append(scrub(value, token))
            continue
        seq = event.pop("seq")
        if seq <= last_seq:
            continue
        last_seq = seq
        if event.get("step") is not None and event.get("type") in ("log", "eval", "checkpoint"):
            last_step = event["step"]
        if event.get("type") in TERMINAL_TYPES:
            return _finish(api, spec, writer, token, job_id, flavor, event, seq, tail)
        kind_of = event.pop("type", "message")
        fields = {k: scrub(v, token) if isinstance(v, str) else v for k, v in event.items()}
        if kind_of == "started":
            fields.update(remote_pid=fields.pop("pid", None), pid=os.getpid(), backend=BACKEND, external_id=job_id,
                          flavor=flavor, namespace=namespace, model_repo=model_repo)
        writer.write(kind_of, remote_seq=seq, **fields)
    # The log stream ended without a final event: the job's stage says how it ended.
    info = api.inspect_job(job_id=job_id, namespace=namespace)
    stage, message = str(info.status.stage), info.status.message
    log_tail = "\n".join(tail)
    if stage.endswith("CANCELED"):
        writer.cancelled(step=last_step, output_dir=None)
        return 0
    if OOM_PATTERN.search(log_tail):
        reason, hint = "the job ran out of GPU memory", oom_hint(flavor)
    else:
        reason = f"the Hugging Face job {job_id} ended ({stage}{': ' + message if message else ''}) without a result"
        hint = "See the log tail below; the job's full logs are at https://huggingface.co/settings/jobs."
    writer.write("failed", reason=scrub(reason, token), hint=hint, log_tail=log_tail, external_id=job_id)
    return 1


def _finish(api, spec: JobSpec, writer, token: str, job_id: str, flavor: str | None, event: dict, seq: int,
            tail: deque) -> int:
    """Write the remote run's final event here: the adapter downloaded, an out-of-memory hint made concrete."""
    kind = event.pop("type")
    fields = {k: scrub(v, token) if isinstance(v, str) else v for k, v in event.items()}
    if kind == "failed":
        text = f"{fields.get('reason', '')}\n{fields.get('log_tail', '')}\n" + "\n".join(tail)
        if OOM_PATTERN.search(text):
            fields["hint"] = oom_hint(flavor)
        writer.write("failed", remote_seq=seq, external_id=job_id, **fields)
        return 1
    if kind == "cancelled":
        writer.write("cancelled", remote_seq=seq, external_id=job_id, **fields)
        return 0
    repo = fields.get("hub_model_id")
    fields["remote_output_dir"] = fields.pop("output_dir", None)
    fields.pop("merged_dir", None)  # a folder of the job's machine: the merged model is in the repo
    fields["output_dir"] = repo
    if spec.uses_adapter and not spec.merge_adapter and repo and spec.output_dir:
        try:
            fields["output_dir"] = _download(api, repo, fields.get("files") or [], Path(spec.output_dir))
        except Exception as exc:  # noqa: BLE001 - the model is safe in the repo: say so, still finished
            writer.message(f"the adapter stays in {repo}: downloading it failed ({describe_error(exc, token)[0]})",
                           level="warning")
    writer.write("finished", remote_seq=seq, external_id=job_id, **fields)
    return 0


def _download(api, repo: str, files: list[str], folder: Path) -> str:
    from huggingface_hub import hf_hub_download

    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        hf_hub_download(repo, name, local_dir=str(folder), token=api.token, endpoint=api.endpoint)
    return str(folder)


# -- checkpoints on the Hub ---------------------------------------------------------------------------
def upload_checkpoint(api, folder: Path, model_repo: str) -> str:
    """Put a checkpoint folder in the model repo's `last-checkpoint/` (one commit, replacing the previous one's
    files) with its file list; returns its `hf://` path, what a resumed run's spec names."""
    import shutil
    import tempfile

    from huggingface_hub import CommitOperationAdd

    # A snapshot first: the trainer keeps only its last checkpoints and deletes older folders while this
    # process is still uploading, and a checkpoint missing its weights cannot be resumed from.
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = Path(scratch) / folder.name
        shutil.copytree(folder, snapshot)  # fails when the folder goes away while being copied
        files = sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())
        if "trainer_state.json" not in files or not any(name.endswith((".safetensors", ".bin")) for name in files):
            raise ValueError(f"{folder.name} was incomplete when copied (the trainer had begun to remove it)")
        api.create_repo(model_repo, private=True, exist_ok=True)
        operations = [CommitOperationAdd(f"{CHECKPOINT_PATH}/{name}", str(snapshot / name)) for name in files]
        operations.append(CommitOperationAdd(f"{CHECKPOINT_PATH}/{CHECKPOINT_MANIFEST}", json.dumps(files).encode()))
        api.create_commit(model_repo, operations, commit_message=f"ftassist: {folder.name}")
    return f"{HUB_PATH_PREFIX}{model_repo}/{CHECKPOINT_PATH}"


def download_checkpoint(hub_path: str, folder: Path) -> Path:
    """The checkpoint at `hf://OWNER/REPO/PATH` (from `upload_checkpoint`) as a local folder under `folder`."""
    from huggingface_hub import hf_hub_download

    owner, name, sub = hub_path[len(HUB_PATH_PREFIX):].split("/", 2)
    repo = f"{owner}/{name}"
    listed = hf_hub_download(repo, f"{sub}/{CHECKPOINT_MANIFEST}", local_dir=str(folder))
    for file in json.loads(Path(listed).read_text("utf-8")):
        hf_hub_download(repo, f"{sub}/{file}", local_dir=str(folder))
    return folder / sub


def _with_upload(api, event: dict[str, Any], model_repo: str, out: "_Emitter") -> dict[str, Any]:
    """A checkpoint event, with `hub_path` once its folder is on the Hub (a failed upload is a warning only)."""
    try:
        return {**event, "hub_path": upload_checkpoint(api, Path(event["path"]), model_repo)}
    except Exception as exc:  # noqa: BLE001 - training goes on; only resuming from this step is lost
        out.write("message", text=f"could not upload checkpoint {event.get('step')} to {model_repo}: "
                                  f"{describe_error(exc)[0]}", level="warning")
        return event


# -- the job's side ----------------------------------------------------------------------------------
class _Emitter:
    """The job's stdout: worker output and numbered event lines, one writer at a time (no torn lines)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0

    def line(self, text: str) -> None:
        with self.lock:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            sys.stdout.flush()

    def event(self, event: dict[str, Any]) -> None:
        with self.lock:
            payload = json.dumps({"seq": self.seq, **event}, ensure_ascii=False, allow_nan=False)
            self.seq += 1
            sys.stdout.write(EVENT_PREFIX + payload + "\n")
            sys.stdout.flush()

    def write(self, type: str, **fields: Any) -> None:
        self.event({"type": type, "ts": time.time(), **fields})


def remote_main() -> int:
    """In the job: data in, the unchanged worker, events out on stdout, the model up to the Hub."""
    from huggingface_hub import HfApi, hf_hub_download

    from ftassist.train import jobs
    from ftassist.train.worker import OOM_HINT

    out = _Emitter()
    data_repo, model_repo = os.environ["FTASSIST_DATA_REPO"], os.environ["FTASSIST_MODEL_REPO"]
    work = Path("ftassist-job").resolve()
    run_dir, data_dir = work / "run", work / "data"
    try:
        data = json.loads(Path(hf_hub_download(data_repo, SPEC_FILE, repo_type="dataset")).read_text("utf-8"))
        for name in ("train_file", "valid_file"):
            if data.get(name):
                data[name] = hf_hub_download(data_repo, data[name], repo_type="dataset", local_dir=str(data_dir))
        data["output_dir"] = str(run_dir / "model")
        if data.get("start_from"):
            data["start_from"] = str(_download_start(data_repo, work / "start"))
        if str(data.get("resume_from_checkpoint") or "").startswith(HUB_PATH_PREFIX):
            data["resume_from_checkpoint"] = str(download_checkpoint(data["resume_from_checkpoint"], work / "resume"))
        spec = JobSpec.from_dict(data)
        spec.save(run_dir)
    except Exception as exc:  # noqa: BLE001 - reported as the run's end
        out.write("failed", reason=f"the job could not fetch its inputs from {data_repo}: {describe_error(exc)[0]}",
                  hint="Start the run again (its dataset repo may have been deleted).", log_tail="")
        return 1

    command = jobs.worker_command(spec, run_dir, jobs.visible_gpu_count())
    log_path = run_dir / "worker.log"
    # As the job manager runs it: output to worker.log (its `failed` event quotes that file's tail).
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, cwd=str(run_dir), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    held: list[dict] = []
    api = HfApi()
    log_offset = event_offset = 0
    while True:  # echo worker.log and forward events as both grow
        ended = proc.poll() is not None
        with open(log_path, "rb") as log:
            log.seek(log_offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1] if not ended else chunk
        log_offset += len(complete)
        for raw in complete.decode("utf-8", errors="replace").splitlines():
            out.line(raw)
        events, event_offset = read_events(run_dir, event_offset)
        for event in events:
            if event.get("type") in TERMINAL_TYPES:
                held.append(event)  # reported after the upload
            elif event.get("type") == "checkpoint" and event.get("path"):
                out.event(_with_upload(api, event, model_repo, out))
            else:
                out.event(event)
        if ended:
            break
        time.sleep(0.2)
    rc = proc.returncode
    final = held[-1] if held else None
    if final is None:
        log_tail = tail_text(log_path, max_lines=LOG_TAIL_LINES)
        import signal  # what is known, no more (as the local job manager says it): the log's words, the signal

        oom = bool(OOM_PATTERN.search(log_tail))
        number = -rc if rc is not None and rc < 0 else rc - 128 if rc is not None and rc > 128 else None
        if oom:
            reason, hint = "out of memory (the worker's log says so)", OOM_HINT
        elif number in signal.valid_signals():
            reason = (f"the worker was stopped by {signal.Signals(number).name} (signal {number}) before it "
                      "reported how the run ended")
            hint = ("Something outside the worker ended it (the job's memory limit, a timeout or a cancel): the "
                    f"job's own logs on Hugging Face say which. If it ran out of memory: {OOM_HINT}")
        else:
            reason, hint = f"the worker exited with code {rc} without reporting how the run ended", "See the log tail below."
        out.write("failed", reason=reason, hint=hint, log_tail=log_tail)
        return 1
    if final["type"] != "finished":
        out.event(final)
        return 1 if final["type"] == "failed" else 0
    folder = Path(final.get("merged_dir") or final["output_dir"])
    try:
        url = str(api.create_repo(model_repo, private=True, exist_ok=True))
        api.upload_folder(folder_path=str(folder), repo_id=model_repo, commit_message="Fine-tuned with ftassist")
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    except Exception as exc:  # noqa: BLE001 - the run trained but its result could not be kept
        out.write("failed", reason=f"training finished but uploading the model to {model_repo} failed: "
                                   f"{describe_error(exc)[0]}",
                  hint="Check that the token may write to the namespace, then start again.",
                  log_tail=tail_text(log_path, max_lines=LOG_TAIL_LINES))
        return 1
    out.event({**final, "hub_model_id": model_repo, "hub_url": url, "files": files})
    return 0


if __name__ == "__main__":
    sys.exit(remote_main())
