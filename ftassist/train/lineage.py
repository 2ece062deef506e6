"""What a run starts from (`spec.start_from`): a finished run's LoRA adapter or whole model.

SFT then DPO is the usual recipe, and the DPO reference must be the SFT model, not the bare base.
How the worker keeps that true without a second copy of the weights:

- an adapter start: the base loads as usual and the SFT adapter goes on it, trainable; TRL's
  DPOTrainer keeps a frozen copy of it (adapter "ref") as the reference. The run trains the SFT
  adapter further, so its output is one adapter over the original base, of the SFT adapter's rank
  and modules: it loads, merges and exports exactly like an SFT run's output;
- a whole-model start (a full fine-tune, or a merged adapter): that folder *is* the base, so the
  reference is it with the new adapter off (LoRA), or its log-probabilities computed once before
  training (full).

Light module (json only): the use cases resolve a start with it before the worker imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


class StartError(ValueError):
    """A start_from that cannot be started from; the message says what to give instead."""


@dataclass(frozen=True)
class StartModel:
    """A start model: its folder, whether it is an adapter or a whole model, and what it was trained from."""

    folder: str
    kind: str  # adapter | model
    adapter_base: str | None = None  # the base recorded in the adapter's config (a Hub id or a folder)
    run_base_model: str | None = None  # base_model of the run that made it ("tiny-random" included), when known

    @property
    def base_model(self) -> str:
        """The base model a run starting here names in its spec: an adapter's base, or the whole model's folder."""
        if self.kind == "model":
            return self.folder
        return self.run_base_model or self.adapter_base or ""


def _run_spec(folder: Path) -> dict | None:
    """The spec.json of the run that wrote `folder` (its model folder sits in the run folder)."""
    for candidate in (folder / "spec.json", folder.parent / "spec.json"):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            return data if isinstance(data, dict) else None
    return None


def inspect_start(folder: str | Path) -> StartModel:
    """The start model in `folder`; StartError when it holds neither an adapter nor a model."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise StartError(f"start_from {folder} does not exist: give the output folder of a finished run (or its id).")
    path = path.resolve()
    spec = _run_spec(path)
    run_base = spec.get("base_model") if spec and isinstance(spec.get("base_model"), str) else None
    if (path / ADAPTER_CONFIG).is_file():
        try:
            cfg = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StartError(f"start_from {path}: {ADAPTER_CONFIG} cannot be read ({exc}).") from None
        if cfg.get("peft_type") not in (None, "LORA"):
            raise StartError(f"start_from {path} holds a {cfg.get('peft_type')} adapter: only LoRA adapters (what "
                             "ftassist trains) can be trained further.")
        base = cfg.get("base_model_name_or_path")
        if not base and not run_base:
            raise StartError(f"start_from {path}: the adapter does not say which base model it goes on.")
        return StartModel(folder=str(path), kind="adapter", adapter_base=base or None, run_base_model=run_base)
    if (path / "config.json").is_file():
        return StartModel(folder=str(path), kind="model", run_base_model=run_base)
    raise StartError(f"start_from {path} holds neither a LoRA adapter ({ADAPTER_CONFIG}) nor a model (config.json): "
                     "give the output folder of a finished run.")
