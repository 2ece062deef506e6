"""The job spec: everything a training run needs, written as `spec.json` in its run folder.

A run is a spec plus a recipe (the worker). Because the spec is complete and plain JSON, any
run can be repeated from its folder: here, on a bigger machine, or under `accelerate launch`.
Presets live here too, so the CLI, the UI and the worker agree on the defaults.

Light module: no torch/transformers imports (the app and the job manager import it).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

BACKENDS = ("local", "openai", "hf-jobs", "together")
METHODS = ("lora", "qlora", "full")
# What the run optimises: supervised fine-tuning on chats, or direct preference optimisation on pairs
# (TRL's SFTTrainer / DPOTrainer). The method above says which weights learn; the objective says from what.
OBJECTIVES = ("sft", "dpo")
REPORT_TO = ("tensorboard", "trackio", "none")
DPO_BETA = 0.1  # TRL's default: how far the policy may move from the reference
PROVIDERS = ("openai", "azure", "custom")
TINY_RANDOM = "tiny-random"
OPENAI_SUFFIX_MAX = 64
# The suffix becomes part of the model name (`ft:MODEL:ORG:SUFFIX:ID`).
OPENAI_SUFFIX_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
SPEC_FILE = "spec.json"
HUB_PATH_PREFIX = "hf://"  # a file in a Hub model repo, as huggingface_hub's file system names it

# Learning rates that work for most chat SFT runs: adapters tolerate (and need) a much larger
# step than updating all weights.
_LR_BY_METHOD = {"lora": 2e-4, "qlora": 2e-4, "full": 2e-5}
# A random-weight toy model has nothing to preserve and only seconds to show learning.
_LR_TINY = {"lora": 5e-3, "qlora": 5e-3, "full": 2e-3}
# DPO moves a model that already answers well by small steps away from its reference: ten times below SFT's.
_LR_DPO = {"lora": 5e-5, "qlora": 5e-5, "full": 5e-6}
_LR_DPO_TINY = {"lora": 5e-3, "qlora": 5e-3, "full": 1e-3}

OPENAI_DEFAULTS: dict[str, Any] = {
    "model": "gpt-4o-mini-2024-07-18",
    "n_epochs": "auto",
    "batch_size": "auto",
    "learning_rate_multiplier": "auto",
    "suffix": None,
    "provider": "openai",
    "base_url": None,
    "azure_endpoint": None,
    "api_version": None,
}


# Hugging Face Jobs (backend "hf-jobs"): the same recipe on a rented GPU (see ftassist.train.hf_jobs).
# flavor None: the cheapest flavor whose GPU memory fits the run's estimate; namespace None: the token's user;
# the image brings CUDA torch (the job installs the rest, pinned); timeout bounds the bill of a stuck job.
HF_JOBS_DEFAULTS: dict[str, Any] = {
    "flavor": None,
    "namespace": None,
    "image": "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime",
    "timeout": "4h",
}


# Together AI (backend "together"): hosted fine-tuning of open models (see ftassist.train.together_ft). The
# base model is spec.base_model (a Together model id); epochs, learning rate, method and LoRA r/alpha come
# from the spec too. base_url None: TOGETHER_BASE_URL or Together's; inference_base_url None: base_url + /v1;
# n_evals: evaluations over the validation file (each one is billed as a pass over it); training_method None:
# the spec's objective ("sft" or "dpo"; an explicit value must agree with it).
TOGETHER_DEFAULTS: dict[str, Any] = {
    "suffix": None,
    "n_evals": 5,
    "batch_size": "max",
    "training_method": None,
    "base_url": None,
    "inference_base_url": None,
}
TOGETHER_SUFFIX_MAX = 40


def looks_like_openai_model(name: str | None) -> bool:
    """True for an OpenAI model name (gpt-4o-mini-2024-07-18, ft:gpt-...): a Hub id has an owner/ part."""
    name = (name or "").strip()
    return "/" not in name and name.startswith(("gpt-", "ft:gpt-", "o4-", "o3-"))


def presets(method: str) -> dict[str, Any]:
    """Sensible hyperparameters for `method` ("lora", "qlora" or "full")."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    base: dict[str, Any] = {
        "num_epochs": 3,
        "learning_rate": _LR_BY_METHOD[method],
        "per_device_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "early_stopping_patience": 3,
        "seed": 42,
    }
    if method in ("lora", "qlora"):
        base.update(lora_r=16, lora_alpha=32, lora_dropout=0.05, target_modules=["q_proj", "v_proj"])
    if method == "qlora":
        # 4-bit weights leave room, but activations still dominate: checkpointing is the norm.
        base["gradient_checkpointing"] = True
    return base


def preset_max_seq_length(tokens: int | None, model_context: int | None = None) -> int:
    """A max sequence length that fits `tokens` (the data's p95 or max per example).

    Rounded up to a power of two below 1024 and to a multiple of 64 above it (kernels like
    multiples of 64; powers of two waste too much past 1k), at least 64, capped by the model's
    context length when known. With no statistics, 1024 (capped likewise).
    """
    if not tokens or tokens <= 0:
        n = 1024
    elif tokens <= 1024:
        n = max(64, 1 << math.ceil(math.log2(tokens)))
    else:
        n = int(math.ceil(tokens / 64) * 64)
    if model_context:
        n = min(n, int(model_context))
    return n


@dataclass
class JobSpec:
    """A complete description of one training run (see module docstring).

    `None` on a tunable field means "decide for me": the worker resolves it from the method's
    preset, the data or the hardware (`resolved_learning_rate`, `preset_max_seq_length`, auto
    bf16/packing/checkpointing) and records what it chose in its `started` event and metrics.
    """

    base_model: str = TINY_RANDOM
    train_file: str = ""
    valid_file: str | None = None
    output_dir: str = ""
    backend: str = "local"
    method: str = "lora"
    num_epochs: float = 3
    learning_rate: float | None = None
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] | str = field(default_factory=lambda: ["q_proj", "v_proj"])
    max_seq_length: int | None = None
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool | None = None
    packing: bool | None = None
    bf16: bool | None = None
    eval_steps: int | None = None
    save_steps: int | None = None
    logging_steps: int | None = None
    early_stopping_patience: int | None = 3
    seed: int = 42
    merge_adapter: bool = False
    push_to_hub: bool = False
    hub_model_id: str | None = None
    max_steps: int | None = None
    # Resuming: the checkpoint folder (local) or `hf://OWNER/REPO/PATH` (a Hugging Face Jobs run's upload) that
    # training continues from, optimizer, scheduler and step included; and the run it comes from.
    resume_from_checkpoint: str | None = None
    resumed_from: str | None = None
    # Preference tuning: objective "dpo" trains on pairs (canonical: TRL's conversational preference rows,
    # {"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}); dpo_beta is
    # DPOConfig.beta. start_from: a finished run's model folder (an SFT adapter or a full model) that this
    # run starts from instead of the bare base model (SFT, then DPO: the usual recipe).
    objective: str = "sft"
    dpo_beta: float = DPO_BETA
    start_from: str | None = None
    # Extra views of a local run's metrics (TrainingArguments.report_to): "tensorboard", "trackio". The events
    # file stays the run's record; an integration whose package is not installed is skipped with a warning.
    report_to: list[str] = field(default_factory=list)
    openai: dict[str, Any] = field(default_factory=lambda: dict(OPENAI_DEFAULTS))
    hf_jobs: dict[str, Any] = field(default_factory=lambda: dict(HF_JOBS_DEFAULTS))
    together: dict[str, Any] = field(default_factory=lambda: dict(TOGETHER_DEFAULTS))

    def __post_init__(self) -> None:
        self.openai = {**OPENAI_DEFAULTS, **(self.openai or {})}
        self.hf_jobs = {**HF_JOBS_DEFAULTS, **(self.hf_jobs or {})}
        self.together = {**TOGETHER_DEFAULTS, **(self.together or {})}
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)

    # -- derived values -------------------------------------------------------------------
    @property
    def resolved_learning_rate(self) -> float:
        """The learning rate to use: the spec's, else the method's preset (higher for tiny-random)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        tiny = self.base_model == TINY_RANDOM
        if self.objective == "dpo":
            table = _LR_DPO_TINY if tiny else _LR_DPO
        else:
            table = _LR_TINY if tiny else _LR_BY_METHOD
        return table.get(self.method, 2e-4)

    @property
    def uses_adapter(self) -> bool:
        return self.method in ("lora", "qlora")

    # -- validation -----------------------------------------------------------------------
    def validate(self, check_files: bool = True) -> list[str]:
        """Every problem with this spec as a sentence saying what to change; [] when it is valid."""
        p: list[str] = []
        if self.backend not in BACKENDS:
            p.append(f"backend {self.backend!r} is unknown: use one of {', '.join(repr(b) for b in BACKENDS)}.")
        if self.method not in METHODS:
            p.append(f"method {self.method!r} is unknown: use 'lora', 'qlora' or 'full'.")
        if self.objective not in OBJECTIVES:
            p.append(f"objective {self.objective!r} is unknown: use 'sft' (chats) or 'dpo' (preference pairs).")
        if self.objective == "dpo" and not (_positive(self.dpo_beta) and self.dpo_beta <= 10):
            p.append(f"dpo_beta must be a positive number (got {self.dpo_beta!r}); 0.1 is usual, lower lets the model move further.")
        if self.start_from is not None and (not isinstance(self.start_from, str) or not self.start_from.strip()):
            p.append(f"start_from must be a finished run's model folder or empty (got {self.start_from!r}).")
        elif (self.start_from and check_files and self.backend in ("local", "hf-jobs")
              and not Path(self.start_from).is_dir()):  # hosted backends start from a job or model they name
            p.append(f"start_from {self.start_from} does not exist: give the output folder of a finished run.")
        if not (isinstance(self.report_to, list) and all(isinstance(n, str) for n in self.report_to)):
            p.append(f"report_to must be a list of names (got {self.report_to!r}): e.g. ['tensorboard'].")
        else:
            unknown = [n for n in self.report_to if n.strip().lower() not in REPORT_TO]
            if unknown:
                p.append(f"report_to {', '.join(map(repr, unknown))} is unknown: use {' or '.join(REPORT_TO)}.")
        if not self.train_file:
            p.append("train_file is missing: give the training JSONL from the Data step.")
        elif check_files and not Path(self.train_file).is_file():
            p.append(f"train_file {self.train_file} does not exist.")
        if self.valid_file and check_files and not Path(self.valid_file).is_file():
            p.append(f"valid_file {self.valid_file} does not exist (leave it empty to train without evaluation).")
        if self.backend != "openai":
            if not self.base_model or not str(self.base_model).strip():
                p.append("base_model is missing: give a Hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), a local folder, or 'tiny-random'.")
            if not self.output_dir and self.backend != "together":  # Together keeps the model: its name is the output
                p.append("output_dir is missing: give the folder where the run's model is saved.")
        if not _positive(self.num_epochs):
            p.append(f"num_epochs must be a positive number (got {self.num_epochs!r}).")
        if self.learning_rate is not None and not (_positive(self.learning_rate) and self.learning_rate < 1):
            p.append(f"learning_rate must be between 0 and 1 (got {self.learning_rate!r}); typical: 2e-4 for LoRA, 2e-5 for full.")
        if self.uses_adapter:
            if not _positive_int(self.lora_r):
                p.append(f"lora_r must be a positive integer (got {self.lora_r!r}); 8-64 is usual.")
            if not _positive(self.lora_alpha):
                p.append(f"lora_alpha must be positive (got {self.lora_alpha!r}); usually 2 x lora_r.")
            if not (isinstance(self.lora_dropout, (int, float)) and 0 <= self.lora_dropout < 1):
                p.append(f"lora_dropout must be in [0, 1) (got {self.lora_dropout!r}).")
            tm = self.target_modules
            if isinstance(tm, str):
                if tm != "all-linear":
                    p.append(f"target_modules {tm!r}: give a list of module names (e.g. ['q_proj', 'v_proj']) or 'all-linear'.")
            elif not (isinstance(tm, (list, tuple)) and tm and all(isinstance(m, str) and m for m in tm)):
                p.append("target_modules must be a non-empty list of module names or 'all-linear'.")
        if self.max_seq_length is not None and not (_positive_int(self.max_seq_length) and self.max_seq_length >= 16):
            p.append(f"max_seq_length must be an integer >= 16 (got {self.max_seq_length!r}), or empty to take it from the data.")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "seed"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= (0 if name == "seed" else 1)):
                p.append(f"{name} must be a {'non-negative' if name == 'seed' else 'positive'} integer (got {v!r}).")
        for name in ("eval_steps", "save_steps", "logging_steps", "max_steps"):
            v = getattr(self, name)
            if v is not None and not _positive_int(v):
                p.append(f"{name} must be a positive integer or empty (got {v!r}).")
        checkpoint = self.resume_from_checkpoint
        if checkpoint is not None and (not isinstance(checkpoint, str) or not checkpoint.strip()):
            p.append(f"resume_from_checkpoint must be a checkpoint folder or empty (got {checkpoint!r}).")
        elif (checkpoint and check_files and not checkpoint.startswith(HUB_PATH_PREFIX)
              and not Path(checkpoint).is_dir()):
            p.append(f"resume_from_checkpoint {checkpoint} does not exist (its run's checkpoints were deleted?): "
                     "start the run again from the beginning.")
        if self.early_stopping_patience is not None and not (
            isinstance(self.early_stopping_patience, int) and self.early_stopping_patience >= 0
        ):
            p.append("early_stopping_patience must be a non-negative integer (0 or empty turns early stopping off).")
        for name in ("gradient_checkpointing", "packing", "bf16", "merge_adapter", "push_to_hub"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                p.append(f"{name} must be true, false{'' if name in ('merge_adapter', 'push_to_hub') else ' or empty (auto)'} (got {v!r}).")
        if self.merge_adapter and not self.uses_adapter:
            p.append("merge_adapter only applies to LoRA/QLoRA runs: full fine-tuning already saves a whole model.")
        if self.push_to_hub and not self.hub_model_id:
            p.append("push_to_hub needs hub_model_id (e.g. your-name/my-model).")
        if self.backend == "openai":
            p.extend(_validate_openai({**OPENAI_DEFAULTS, **(self.openai or {})}, self))
            if self.method != "lora" and self.method != "full":
                p.append("the OpenAI backend trains its own way: method must be 'lora' or 'full' (it is ignored), not 'qlora'.")
        if self.backend == "hf-jobs":
            p.extend(_validate_hf_jobs({**HF_JOBS_DEFAULTS, **(self.hf_jobs or {})}))
        if self.backend == "together":
            p.extend(_validate_together(self))
        return p

    # -- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobSpec":
        """Build a spec from a dict, ignoring unknown keys (older/newer spec files still load)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(data).items() if k in known})

    def save(self, run_dir: str | Path) -> Path:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / SPEC_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, run_dir: str | Path) -> "JobSpec":
        path = Path(run_dir)
        if path.is_dir():
            path = path / SPEC_FILE
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _validate_openai(o: dict[str, Any], spec: JobSpec | None = None) -> list[str]:
    p: list[str] = []
    if spec is not None:
        p.extend(_validate_openai_dpo(o, spec))
    if not o.get("model"):
        p.append("openai.model is missing: give a fine-tunable model such as gpt-4o-mini-2024-07-18.")
    for name in ("n_epochs", "batch_size"):
        v = o.get(name, "auto")
        if v != "auto" and not _positive_int(v):
            p.append(f"openai.{name} must be 'auto' or a positive integer (got {v!r}).")
    lrm = o.get("learning_rate_multiplier", "auto")
    if lrm != "auto" and not _positive(lrm):
        p.append(f"openai.learning_rate_multiplier must be 'auto' or a positive number (got {lrm!r}).")
    suffix = o.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix.strip()) > OPENAI_SUFFIX_MAX):
        p.append(f"openai.suffix must be a string of at most {OPENAI_SUFFIX_MAX} characters.")
    elif suffix and suffix.strip() and not OPENAI_SUFFIX_PATTERN.match(suffix.strip()):
        p.append(f"openai.suffix {suffix!r} may only use letters, digits, '.', '_' and '-' (it becomes part of "
                 "the model name).")
    provider = o.get("provider", "openai")
    if provider not in PROVIDERS:
        p.append(f"openai.provider {provider!r} is unknown: use 'openai', 'azure' or 'custom'.")
    if provider == "azure" and not o.get("azure_endpoint"):
        p.append("openai.azure_endpoint is required for Azure OpenAI (e.g. https://NAME.openai.azure.com).")
    if provider == "azure" and not o.get("api_version"):
        p.append("openai.api_version is required for Azure OpenAI (e.g. 2024-10-21).")
    if provider == "custom" and not o.get("base_url"):
        p.append("openai.base_url is required for a custom provider (a server that speaks the OpenAI fine-tuning API).")
    return p


def _validate_openai_dpo(o: dict[str, Any], spec: JobSpec) -> list[str]:
    """OpenAI's DPO: only on the models its guide lists (or a fine-tune of one, given as start_from to continue an
    SFT model), and start_from, when given, must be such an `ft:` model."""
    p: list[str] = []
    start = (spec.start_from or "").strip()
    if start and not start.startswith("ft:"):
        p.append(f"start_from {start!r}: an OpenAI run continues from a fine-tuned OpenAI model (ft:...), the output "
                 "of an earlier OpenAI run; leave it empty to start from openai.model.")
    if spec.objective != "dpo" or o.get("provider", "openai") != "openai":
        return p
    from ftassist.plan import providers  # the provider file lists the DPO models (light: json only)

    model = start if start.startswith("ft:") else str(o.get("model") or "")
    known = providers.openai_dpo_models()
    if model and providers.base_model_name(model) not in known:
        p.append(f"OpenAI trains DPO only on {', '.join(known)} (or a fine-tune of one): {model} cannot; pick one "
                 "of those as openai.model, or train DPO on an open model (local, Hugging Face Jobs or Together).")
    return p


def _validate_hf_jobs(o: dict[str, Any]) -> list[str]:
    p: list[str] = []
    flavor = o.get("flavor")
    if flavor is not None:
        from ftassist.plan import providers  # the provider file lists the flavors (light: json only)

        known = providers.provider("hf-jobs")["flavors"]
        if flavor not in known:
            p.append(f"hf_jobs.flavor {flavor!r} is not a GPU flavor of Hugging Face Jobs: use one of "
                     f"{', '.join(known)}, or leave it empty to pick the cheapest that fits.")
    for name in ("image", "timeout"):
        if not isinstance(o.get(name), (str, int)) or not str(o.get(name)).strip():
            p.append(f"hf_jobs.{name} must be set (default {HF_JOBS_DEFAULTS[name]!r}).")
    return p


def _validate_together(spec: JobSpec) -> list[str]:
    o = {**TOGETHER_DEFAULTS, **(spec.together or {})}
    p: list[str] = []
    if spec.base_model == TINY_RANDOM or str(spec.base_model).startswith((".", "/", "~")):
        p.append("base_model must be a model Together fine-tunes (e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference; "
                 "see https://docs.together.ai/docs/fine-tuning/supported-models), not a local model.")
    if spec.method not in ("lora", "full"):
        p.append(f"Together trains with LoRA or full fine-tuning: method must be 'lora' or 'full', not {spec.method!r}.")
    if float(spec.num_epochs) != int(spec.num_epochs):
        p.append(f"Together trains whole epochs: num_epochs must be a whole number (got {spec.num_epochs!r}).")
    suffix = o.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix.strip()) > TOGETHER_SUFFIX_MAX):
        p.append(f"together.suffix must be a string of at most {TOGETHER_SUFFIX_MAX} characters (it becomes part of "
                 "the model name).")
    method = o.get("training_method")
    if method not in (None, "sft", "dpo"):
        p.append(f"together.training_method {method!r} is unknown: leave it empty (it follows the objective), or "
                 "'sft' or 'dpo'.")
    elif method is not None and method != spec.objective:
        p.append(f"together.training_method {method!r} does not match the objective {spec.objective!r}: leave it "
                 "empty (it follows the objective) or make the two agree.")
    start = (spec.start_from or "").strip()
    if start and (start.startswith((".", "/", "~")) or Path(start).is_dir()):
        p.append(f"start_from {start!r} is a local folder: a Together run continues from an earlier Together job "
                 "(its ft-... id) or its output model name, optionally with :STEP.")
    if not (isinstance(o.get("n_evals"), int) and o["n_evals"] >= 0):
        p.append(f"together.n_evals must be a non-negative integer (got {o.get('n_evals')!r}).")
    return p


def count_records(path: str | None) -> int:
    """Non-empty lines of a JSONL file (0 when there is none): the examples a remote run reports it starts with."""
    if not path:
        return 0
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 0
