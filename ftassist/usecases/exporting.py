"""Take the model home: a finished run's model as merged weights, for Ollama, for vLLM, as GGUF, or on the Hub.

A model is named as the arena knows it (id or display name) or by the run that made it. Only
models whose weights are here can leave: a LoRA adapter with its base, or a whole model folder.
The files are written by the stations in `ftassist.train.export`; here the model is found, the
request checked and the answer phrased for the person.

Where it writes: in the app (`Context.reads_any_file` False) only under the data dir, as the Data step
(`usecases/data.py`), so nobody who reaches the page or the socket can have files written elsewhere on this
machine; a person's own command with no app running writes where they say.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ftassist.arena import models as arena_models
from ftassist.redact import scrub
from ftassist.train import export

from .context import Context, NotFound, UseCaseError
from .data import _writable as writable
from .registry import use_case
from .training import show_run

TARGETS = ("merged", "ollama", "vllm", "gguf")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the folder, its files, and the command that serves it (vLLM)."""

    model: str
    to: str
    out_dir: str
    files: list[str]
    message: str  # one sentence for the person: what to run next
    command: list[str] = field(default_factory=list)
    base_model: str | None = None
    adapter_dir: str | None = None


@dataclass(frozen=True)
class PushResult:
    model: str
    repo_id: str
    url: str
    private: bool
    merged: bool


@dataclass(frozen=True)
class _Weights:
    """The model's weights here: a whole folder (`base` None) or an adapter folder over `base`."""

    name: str
    folder: Path
    base: str | None


def _weights(ctx: Context, model: str) -> _Weights:
    model = (model or "").strip()
    if not model:
        raise UseCaseError("Name the model to export: an arena model's id or name, or a run id (`ftassist jobs`).")
    found = arena_models.find_model(ctx.store, model)
    if found is not None:
        kind, config, name = found["kind"], found["config"], found["display_name"]
    else:
        try:
            run = show_run(ctx, model, log_lines=0)
        except NotFound:
            raise NotFound(f"No arena model or run {model!r}: `ftassist arena models` and `ftassist jobs` "
                           "list them.") from None
        try:
            kind, config = arena_models.run_model_config(run.run_dir)
        except arena_models.ModelError as exc:
            raise UseCaseError(str(exc)) from None
        name = run.id
    if kind == "hf_adapter":
        return _Weights(name, Path(config["adapter_dir"]), str(config["base_model"]))
    if kind == "hf" and Path(config["model"]).is_dir():
        return _Weights(name, Path(config["model"]), None)
    if kind == "hf":
        raise UseCaseError(f"{name} is the Hub model {config['model']}: it is already at home there; "
                           "export a fine-tuned one.")
    raise UseCaseError(f"{name} is served by {kind.replace('_', '-')} ({config.get('model')}): its weights are "
                       "not here to export. Export a model trained locally or on Hugging Face Jobs.")


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "-", text).strip("-") or "model"


def _adapter_rank(adapter_dir: Path) -> int | None:
    try:
        return int(json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _merged(weights: _Weights, out: Path) -> Path:
    if weights.base is None:
        return weights.folder
    try:
        return export.merge_model(weights.base, weights.folder, out)
    except OSError as exc:
        raise UseCaseError(f"Could not load the base model {weights.base} to merge into: {exc}. It must be "
                           "a local folder or reachable on the Hub (log in with `hf auth login`).") from None


@use_case(assistant=True, confirm=True)
def export_model(ctx: Context, model: str, to: Literal["merged", "ollama", "vllm", "gguf"] = "merged",
                 out: str = "") -> ExportResult:
    """Write a fine-tuned model in a form another tool serves: merged weights, an Ollama Modelfile, a vLLM
    command, or a GGUF file for llama.cpp.

    Args:
        model: An arena model's id or display name, or the id of the run that trained it.
        to: merged (adapter merged into its base), ollama (a Modelfile), vllm (serve.sh) or gguf (needs llama.cpp).
        out: The folder to write to (empty: a new folder under the data dir's exports/).
    """
    if to not in TARGETS:
        raise UseCaseError(f"Unknown export target {to!r}: choose one of {', '.join(TARGETS)}.")
    out_dir = Path(out).expanduser().resolve() if out else None
    if out_dir is not None:
        writable(ctx, out_dir)  # before looking the model up or loading anything
    weights = _weights(ctx, model)
    out_dir = out_dir or ctx.settings.exports_dir / f"{_slug(weights.name)}-{to}"
    if to == "gguf" and export.gguf_converter() is None:  # before any slow merge
        raise UseCaseError(export.GGUF_MISSING)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = dict(model=weights.name, to=to, out_dir=str(out_dir), base_model=weights.base,
                  adapter_dir=str(weights.folder) if weights.base else None)

    if to == "merged":
        folder = _merged(weights, out_dir)
        if folder != out_dir:  # a whole model already: nothing to merge, say where it is
            return ExportResult(**result, files=[], message=f"{weights.name} is already a whole model in {folder}; "
                                                            "nothing to merge.")
        return ExportResult(**result, files=_listing(out_dir),
                            message=f"Merged model in {out_dir}: load it with AutoModelForCausalLM.from_pretrained.")
    if to == "ollama":
        text = export.ollama_modelfile(weights.folder, base=weights.base)
        path = out_dir / "Modelfile"
        path.write_text(text, encoding="utf-8")
        name = _slug(weights.name).lower()
        return ExportResult(**result, files=[str(path)], command=["ollama", "create", name, "-f", str(path)],
                            message=f"Run `ollama create {name} -f {path}`, then `ollama run {name}`.")
    if to == "vllm":
        cmd = export.vllm_command(weights.folder, base=weights.base, name=_slug(weights.name),
                                  rank=_adapter_rank(weights.folder) if weights.base else None)
        path = export.write_serve_sh(out_dir, cmd)
        return ExportResult(**result, files=[str(path)], command=cmd,
                            message=f"Run {path} (or the command) where vLLM is installed: it serves an "
                                    "OpenAI-compatible API on port 8000.")
    folder = _merged(weights, out_dir / "merged")
    outfile = out_dir / f"{_slug(weights.name)}.gguf"
    try:
        export.convert_to_gguf(folder, outfile, export.gguf_converter())
    except RuntimeError as exc:
        raise UseCaseError(str(exc)) from None
    return ExportResult(**result, files=[str(outfile)], command=["llama-server", "-m", str(outfile)],
                        message=f"GGUF in {outfile}: `llama-server -m {outfile}` serves it.")


def _listing(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


@use_case(assistant=True, confirm=True)
def push_model(ctx: Context, model: str, repo_id: str, private: bool = True, merged: bool = False) -> PushResult:
    """Upload a fine-tuned model to the Hugging Face Hub (a private repo unless asked otherwise).

    Args:
        model: An arena model's id or display name, or the id of the run that trained it.
        repo_id: The Hub repo to upload to, OWNER/NAME (created when missing).
        private: Create the repo private (the default); false makes it public.
        merged: Upload the adapter merged into its base (a whole model) instead of the adapter alone.
    """
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise UseCaseError(f"Hub repo id {repo_id!r} must read OWNER/NAME (e.g. me/support-bot).")
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        raise UseCaseError("Set HF_TOKEN to a Hugging Face write token (huggingface.co/settings/tokens), then push.")
    weights = _weights(ctx, model)
    folder = weights.folder
    if merged and weights.base is not None:
        folder = _merged(weights, ctx.settings.exports_dir / f"{_slug(weights.name)}-merged")
    try:
        url = export.push_folder(folder, repo_id, private=private, token=token)
    except Exception as exc:  # noqa: BLE001 - any Hub failure is one line for the person, never with the token
        raise UseCaseError(f"Push to {repo_id} failed: {scrub(str(exc).splitlines()[0] if str(exc) else repr(exc), token)}"
                           ) from None
    return PushResult(model=weights.name, repo_id=repo_id, url=url, private=private,
                      merged=merged and weights.base is not None)
