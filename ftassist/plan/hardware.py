"""GPU memory, training time and dollars for self-hosted fine-tuning (full, LoRA, QLoRA 4-bit).

Why a model rather than a table of rules of thumb: the person's sequence length, batch size
and gradient checkpointing change the answer a lot, and every figure must say how it was
computed. The model is deliberately simple and checked against published figures
(LLaMA-Factory's README: a 7B model needs ~120 GB for full bf16 training with Adam, ~16 GB
for LoRA, ~6 GB for QLoRA 4-bit; an 8B model's QLoRA fits a 24 GB card, its full FT does not).

Memory (bytes; "GB" below means GiB, 1024^3 bytes):
- full (bf16 mixed precision, AdamW): per parameter 2 (bf16 weights) + 2 (bf16 gradients)
  + 12 (optimizer: fp32 master weights 4 + Adam's two fp32 moments 4 + 4) = 16 bytes;
- LoRA: the frozen base in bf16 (2 bytes/param) + the adapters (rank r on every linear
  projection) in fp32 with gradients and Adam: 4 + 4 + 8 = 16 bytes per adapter parameter;
- QLoRA: the decoder's linear weights in 4-bit NF4 with double quantisation
  (4 + 8/64 + 32/(64*256) = 4.127 bits/param); embeddings, the LM head, norms and biases
  stay bf16; adapters as for LoRA; plus one dequantised bf16 weight matrix at a time;
- activations (bf16, attention by SDPA/flash so no seq x seq score matrix), per token and layer:
  4h + 3 q_dim + 3 kv_dim + 4 i elements (norm inputs/outputs, q/k/v before and after RoPE,
  attention output, gate/up/activation/product), + LoRA dropout's copy of each adapter's input:
  5h + q_dim + i (q, k, v, gate and up read h values, o reads q_dim, down reads i; 4h without a gate);
  with gradient checkpointing only each layer's input (h) is kept, plus one layer recomputed;
- logits: tokens x vocab x 12 bytes (bf16 logits, their fp32 upcast for the loss, and its gradient);
- overhead: 0.75 GB (CUDA context, cuBLAS workspace) + 8% of the rest (allocator fragmentation).

Preference tuning (DPO) runs two sequences per example (prompt + chosen, prompt + rejected: TRL concatenates
them into one batch of 2 x batch size) and needs the reference model's log-probabilities of both: with
LoRA/QLoRA the reference is the base with the adapter switched off (no second copy); full DPO holds a second,
frozen bf16 copy of the model (2 bytes/param) unless the reference log-probs are precomputed before training.
Its reference forward costs 2 P FLOPs per token on top of the training step.

Time: training FLOPs / (GPU peak x MFU). FLOPs per token: full 6 P (forward 2P, backward 4P);
LoRA/QLoRA 4 P (no weight gradients for the frozen base, only activation gradients);
+ 2 P when gradient checkpointing recomputes the forward; QLoRA x 1.3 for dequantising
weights on the fly (assumed). P counts the parameters that do matrix products per token
(decoder layers + the LM head); attention-score FLOPs are ignored (a few % at these lengths).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

MODELS_FILE = Path(__file__).with_name("models.json")
GPUS_FILE = Path(__file__).with_name("gpus.json")

GIB = 1024**3
METHODS = ("full", "lora", "qlora")

# Memory model constants (see the module docstring).
FULL_BYTES_PER_PARAM = {"weights": 2.0, "gradients": 2.0, "optimizer": 12.0}
BF16 = 2.0
ADAPTER_BYTES_PER_PARAM = 16.0  # fp32 weight + fp32 grad + 2 fp32 Adam moments
NF4_DQ_BITS = 4 + 8 / 64 + 32 / (64 * 256)  # NF4, blocksize 64, double-quantised absmax
NF4_BITS = 4 + 32 / 64
LOGIT_BYTES = 12.0
OVERHEAD_FIXED_GB = 0.75
OVERHEAD_SHARE = 0.08
USABLE_SHARE = 0.95  # of a card's nominal memory, the rest goes to the driver and reserves

# Time model constants.
DEFAULT_MFU = 0.35
FLOPS_PER_TOKEN = {"full": 6.0, "lora": 4.0, "qlora": 4.0}
RECOMPUTE_FLOPS = 2.0
REFERENCE_FLOPS = 2.0  # DPO: the reference model's forward pass over the same tokens
OBJECTIVES = ("sft", "dpo")
QLORA_SLOWDOWN = 1.3


@dataclass(frozen=True)
class ModelArch:
    """A decoder-only transformer's shape: enough to count parameters, memory and FLOPs."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool = False
    head_dim: int | None = None
    gated_mlp: bool = True
    qkv_bias: bool = False
    qk_norm: bool = False
    extra_norms: bool = False
    n_experts: int = 1  # MoE: experts per layer (all held in memory)
    experts_per_token: int = 1
    max_context: int | None = None
    family: str = ""
    params_b_published: float | None = None
    source: str = "catalogue"

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.hd

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear projection in one decoder layer (one expert's MLP)."""
        h, i = self.hidden, self.intermediate
        attn = [(h, self.q_dim), (h, self.kv_dim), (h, self.kv_dim), (self.q_dim, h)]
        mlp = [(h, i), (h, i), (i, h)] if self.gated_mlp else [(h, i), (i, h)]
        return attn + mlp

    def layer_linear_params(self) -> int:
        """Weights of one layer's linear projections (all experts): what QLoRA quantises."""
        attn, mlp = self.linear_shapes()[:4], self.linear_shapes()[4:]
        return sum(a * b for a, b in attn) + self.n_experts * sum(a * b for a, b in mlp)

    def layer_other_params(self) -> int:
        """Norms, biases, router: kept in 16-bit."""
        norms = (4 if self.extra_norms else 2) * self.hidden
        if self.qk_norm:
            norms += 2 * self.hd
        bias = self.q_dim + 2 * self.kv_dim if self.qkv_bias else 0
        router = self.hidden * self.n_experts if self.n_experts > 1 else 0
        return norms + bias + router

    def embedding_params(self) -> int:
        """Input embeddings, plus the LM head when it is not tied to them."""
        return self.vocab * self.hidden * (1 if self.tied else 2)

    def params(self) -> int:
        per_layer = self.layer_linear_params() + self.layer_other_params()
        return self.layers * per_layer + self.embedding_params() + self.hidden  # + final norm

    def compute_params(self) -> int:
        """Parameters doing matrix products per token: active layer weights + the LM head."""
        attn = sum(a * b for a, b in self.linear_shapes()[:4])
        mlp = sum(a * b for a, b in self.linear_shapes()[4:]) * max(1, min(self.experts_per_token, self.n_experts))
        return self.layers * (attn + mlp) + self.vocab * self.hidden

    def lora_params(self, rank: int) -> int:
        """Adapter parameters for rank `rank` on every linear projection ('all-linear')."""
        attn = sum(rank * (a + b) for a, b in self.linear_shapes()[:4])
        mlp = sum(rank * (a + b) for a, b in self.linear_shapes()[4:]) * self.n_experts
        return self.layers * (attn + mlp)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"] = self.params()
        return d


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float
    peak_tflops: float
    usd_per_hour: float
    bf16: bool = True
    note: str = ""

    @property
    def usable_gb(self) -> float:
        return self.memory_gb * USABLE_SHARE

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- catalogues


@lru_cache(maxsize=1)
def _models_file() -> dict:
    with open(MODELS_FILE, encoding="utf-8") as f:
        return json.load(f)["models"]


def _arch_from_row(name: str, row: dict, source: str = "catalogue") -> ModelArch:
    return ModelArch(
        name=name,
        hidden=int(row["hidden"]),
        layers=int(row["layers"]),
        heads=int(row["heads"]),
        kv_heads=int(row.get("kv_heads") or row["heads"]),
        intermediate=int(row["intermediate"]),
        vocab=int(row["vocab"]),
        tied=bool(row.get("tied", False)),
        head_dim=row.get("head_dim"),
        gated_mlp=bool(row.get("gated_mlp", True)),
        qkv_bias=bool(row.get("qkv_bias", False)),
        qk_norm=bool(row.get("qk_norm", False)),
        extra_norms=bool(row.get("extra_norms", False)),
        max_context=row.get("max_context"),
        family=row.get("family", ""),
        params_b_published=row.get("params_b"),
        source=source,
    )


def catalogue() -> dict[str, ModelArch]:
    """The built-in open models, keyed by Hub id."""
    return {name: _arch_from_row(name, row) for name, row in _models_file().items()}


def catalogue_names() -> list[str]:
    return list(_models_file())


@lru_cache(maxsize=1)
def _gpus_file() -> dict:
    with open(GPUS_FILE, encoding="utf-8") as f:
        return json.load(f)["gpus"]


def gpu_catalogue(price_overrides: dict[str, float] | None = None) -> dict[str, GPU]:
    """The GPUs, with hourly prices replaced by `price_overrides` ({name: usd_per_hour})."""
    out = {}
    overrides = {k.lower(): v for k, v in (price_overrides or {}).items() if v not in (None, "")}
    for name, row in _gpus_file().items():
        price = float(overrides.get(name.lower(), row["usd_per_hour"]))
        if price < 0:
            raise ValueError(f"The hourly price of {name} cannot be negative.")
        out[name] = GPU(name, float(row["memory_gb"]), float(row["peak_tflops"]), price,
                        bool(row.get("bf16", True)), row.get("note", ""))
    return out


def find_gpu(name: str, gpus: dict[str, GPU] | None = None) -> GPU:
    """A GPU by name, forgiving about case, spaces and the memory suffix ("a100" -> A100 40GB)."""
    gpus = gpus or gpu_catalogue()
    key = "".join((name or "").lower().split())
    for gname, gpu in gpus.items():
        if "".join(gname.lower().split()) == key:
            return gpu
    matches = [g for n, g in gpus.items() if "".join(n.lower().split()).startswith(key) or key in "".join(n.lower().split())]
    if len(matches) >= 1 and key:
        return matches[0]
    raise ValueError(f"Unknown GPU {name!r}: use one of {', '.join(gpus)}.")


# --------------------------------------------------------------------------- model resolution


def arch_from_config(cfg: dict, name: str = "custom", source: str = "config.json") -> ModelArch:
    """Build a ModelArch from a Hugging Face `config.json` (nested `text_config` supported)."""
    if isinstance(cfg.get("text_config"), dict):
        merged = {**cfg, **cfg["text_config"]}
        if "tie_word_embeddings" in cfg and "tie_word_embeddings" not in cfg["text_config"]:
            merged["tie_word_embeddings"] = cfg["tie_word_embeddings"]
        cfg = merged

    def pick(*keys, default=None):
        for k in keys:
            if cfg.get(k) is not None:
                return cfg[k]
        return default

    hidden = pick("hidden_size", "n_embd", "d_model")
    layers = pick("num_hidden_layers", "n_layer", "num_layers")
    heads = pick("num_attention_heads", "n_head", "num_heads")
    vocab = pick("vocab_size")
    missing = [k for k, v in (("hidden_size", hidden), ("num_hidden_layers", layers),
                              ("num_attention_heads", heads), ("vocab_size", vocab)) if v is None]
    if missing:
        raise ValueError(f"{name}: config.json lacks {', '.join(missing)}; is it a decoder-only language model?")
    model_type = str(cfg.get("model_type", "")).lower()
    non_gated = {"gpt2", "gpt_neox", "gptj", "opt", "bloom", "falcon", "gpt_bigcode", "phi", "starcoder2"}
    intermediate = pick("moe_intermediate_size", "intermediate_size", "n_inner", "ffn_dim", default=None)
    if intermediate is None:
        intermediate = 4 * int(hidden)
    n_experts = int(pick("num_local_experts", "num_experts", "n_routed_experts", default=1) or 1)
    return ModelArch(
        name=name,
        hidden=int(hidden),
        layers=int(layers),
        heads=int(heads),
        kv_heads=int(pick("num_key_value_heads", "num_kv_heads", default=heads)),
        intermediate=int(intermediate),
        vocab=int(vocab),
        tied=bool(pick("tie_word_embeddings", default=True)),
        head_dim=pick("head_dim"),
        gated_mlp=model_type not in non_gated,
        qkv_bias=bool(pick("attention_bias", default=False)) or model_type == "qwen2",
        qk_norm=model_type.startswith(("qwen3", "gemma3", "olmo2")),
        extra_norms=model_type.startswith(("gemma2", "gemma3")),
        n_experts=n_experts,
        experts_per_token=int(pick("num_experts_per_tok", default=1) or 1),
        max_context=pick("max_position_embeddings"),
        family=model_type,
        source=source,
    )


def fetch_hub_config(repo_id: str, timeout: float = 5.0) -> dict:
    """config.json of a Hub repo: the local HF cache first, then the network with a short timeout."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with transformers
        raise ValueError("huggingface_hub is not installed: give a local model folder instead.") from exc
    try:
        path = hf_hub_download(repo_id, "config.json", local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: try the network below
        path = None
    if path is None:
        if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false"):
            raise ValueError(f"Cannot read {repo_id}'s config.json: HF_HUB_OFFLINE is set and it is not cached. "
                             "Pick a catalogue model or give a local model folder with a config.json.")
        from ftassist.hub_reach import hub_reachable

        if not hub_reachable(timeout):  # fail in seconds, not after the client's half a minute of retries
            raise ValueError(f"Could not reach the Hugging Face Hub to read {repo_id}'s config.json (offline?). "
                             "Pick a catalogue model, or give a local model folder containing config.json.")
        try:
            path = hf_hub_download(repo_id, "config.json", etag_timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - offline, gated, missing: one clear line
            reason = type(exc).__name__
            raise ValueError(
                f"Could not fetch config.json of {repo_id!r} from the Hugging Face Hub ({reason}: offline, gated "
                "or misspelt?). Pick a catalogue model, or give a local model folder containing config.json."
            ) from None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def resolve_model(spec: str, allow_network: bool = True) -> ModelArch:
    """A base model from a catalogue id/short name, a local folder or config.json, or a Hub id."""
    spec = (spec or "").strip()
    if not spec:
        raise ValueError("No base model given: pick one of the catalogue, or a local folder with config.json.")
    cat = catalogue()
    if spec in cat:
        return cat[spec]
    lowered = spec.lower()
    for name, arch in cat.items():
        if name.lower() == lowered or name.split("/", 1)[1].lower() == lowered:
            return arch
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if path.is_file():
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"Cannot read {path}: {exc}") from None
        return arch_from_config(cfg, name=spec, source=str(path))
    if path.is_dir():
        raise ValueError(f"{spec} is a folder without config.json: point at a Hugging Face model folder.")
    if "/" in spec and allow_network and not spec.startswith((".", "/", "~")):
        return arch_from_config(fetch_hub_config(spec), name=spec, source=f"hub:{spec}")
    raise ValueError(f"Unknown base model {spec!r}: pick one of {', '.join(cat)}, a local model folder "
                     "with config.json, or a Hugging Face Hub id (needs the network).")


# --------------------------------------------------------------------------- memory


@dataclass
class MemoryEstimate:
    method: str
    seq_len: int
    batch_size: int
    gradient_checkpointing: bool
    lora_rank: int
    parts_gb: dict[str, float]
    total_gb: float
    how: str
    objective: str = "sft"

    def to_dict(self) -> dict:
        return asdict(self)


def _check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"Unknown objective {objective!r}: use sft (chats) or dpo (preference pairs).")
    return objective


def _check_method(method: str) -> str:
    m = (method or "").lower().strip()
    if m not in METHODS:
        raise ValueError(f"Unknown method {method!r}: use full, lora or qlora.")
    return m


def estimate_memory(
    arch: ModelArch,
    method: str,
    seq_len: int = 1024,
    batch_size: int = 1,
    gradient_checkpointing: bool = True,
    lora_rank: int = 16,
    lora_dropout: bool = True,
    double_quant: bool = True,
    objective: str = "sft",
    precompute_reference: bool = False,
) -> MemoryEstimate:
    """Peak GPU memory of one training step on one GPU (see the module docstring for the model).

    `objective` "dpo": two sequences per example and the reference model (see the module docstring);
    `seq_len` is then the length of one sequence (prompt + one answer).
    """
    method = _check_method(method)
    _check_objective(objective)
    if seq_len < 1 or batch_size < 1:
        raise ValueError("Sequence length and batch size must be at least 1.")
    P = arch.params()
    h, i = arch.hidden, arch.intermediate
    parts: dict[str, float] = {}
    lines: list[str] = []
    max_linear = max(a * b for a, b in arch.linear_shapes())
    if method == "full":
        for key, per in FULL_BYTES_PER_PARAM.items():
            parts[key] = P * per
        lines.append(f"{P / 1e9:.2f}B params x (2 bf16 weights + 2 bf16 grads + 12 AdamW: fp32 master + 2 moments)"
                     " = 16 bytes/param")
    else:
        quantised = arch.layers * arch.layer_linear_params() if method == "qlora" else 0
        other = P - quantised
        bits = NF4_DQ_BITS if double_quant else NF4_BITS
        parts["weights"] = quantised * bits / 8 + other * BF16
        if method == "qlora":
            parts["weights"] += max_linear * BF16  # one dequantised matrix at a time
            lines.append(f"{quantised / 1e9:.2f}B linear params in NF4{' + double quant' if double_quant else ''}"
                         f" ({bits:.3f} bits) + {other / 1e9:.2f}B (embeddings, head, norms) in bf16")
        else:
            lines.append(f"{P / 1e9:.2f}B frozen params in bf16 (2 bytes)")
        lora = arch.lora_params(lora_rank)
        parts["gradients"] = lora * 4.0
        parts["optimizer"] = lora * 12.0
        lines.append(f"rank-{lora_rank} adapters on all linear layers: {lora / 1e6:.1f}M params x 16 bytes "
                     "(fp32 weight, grad, 2 Adam moments)")
    if objective == "dpo":
        if method == "full" and not precompute_reference:
            parts["reference"] = P * BF16
            lines.append(f"DPO reference model: a second frozen copy, {P / 1e9:.2f}B params x 2 bytes (bf16); "
                         "precomputed reference log-probs avoid it")
        elif method == "full":
            lines.append("DPO reference log-probs precomputed before training: no second copy")
        else:
            lines.append("DPO reference: the base with the adapter switched off, no second copy")
    sequences = 2 if objective == "dpo" else 1
    tokens = seq_len * batch_size * sequences
    if sequences > 1:
        lines.append(f"two sequences per pair (chosen and rejected): {batch_size} x 2 x {seq_len:,} = {tokens:,} "
                     "tokens a step")
    per_layer = 4 * h + 3 * arch.q_dim + 3 * arch.kv_dim + (4 if arch.gated_mlp else 2) * i
    if method != "full" and lora_dropout:  # the dropped-out input of every adapted projection
        per_layer += (5 if arch.gated_mlp else 4) * h + arch.q_dim + i
    if gradient_checkpointing:
        act_elems = tokens * (arch.layers * h + per_layer)
        lines.append(f"activations with checkpointing: {tokens:,} tokens x ({arch.layers} layers x {h} + one layer's "
                     f"{per_layer:,}) x 2 bytes")
    else:
        act_elems = tokens * arch.layers * per_layer
        lines.append(f"activations: {tokens:,} tokens x {arch.layers} layers x {per_layer:,} values x 2 bytes")
    parts["activations"] = act_elems * BF16
    parts["logits"] = tokens * arch.vocab * LOGIT_BYTES
    lines.append(f"logits: {tokens:,} tokens x {arch.vocab:,} vocab x 12 bytes")
    subtotal = sum(parts.values())
    parts["overhead"] = OVERHEAD_FIXED_GB * GIB + OVERHEAD_SHARE * subtotal
    lines.append(f"overhead: {OVERHEAD_FIXED_GB} GB CUDA context + {OVERHEAD_SHARE:.0%} fragmentation")
    parts_gb = {k: round(v / GIB, 3) for k, v in parts.items()}
    total = sum(parts.values()) / GIB
    how = "; ".join(lines) + " = " + " + ".join(f"{k} {v:.1f}" for k, v in parts_gb.items()) + f" = {total:.1f} GB"
    return MemoryEstimate(method, seq_len, batch_size, gradient_checkpointing, lora_rank if method != "full" else 0,
                          parts_gb, round(total, 2), how, objective)


def fits(memory: MemoryEstimate | float, gpu: GPU) -> bool:
    total = memory.total_gb if isinstance(memory, MemoryEstimate) else float(memory)
    return total <= gpu.usable_gb


def gpus_needed(memory_gb: float, gpu: GPU) -> int:
    """Cards needed if the states are sharded (FSDP/ZeRO-3), a rough lower bound."""
    return max(1, math.ceil(memory_gb / gpu.usable_gb))


# --------------------------------------------------------------------------- time and money


@dataclass
class TimeEstimate:
    flops: float
    hours: float
    cost_usd: float
    how_hours: str
    how_cost: str

    def to_dict(self) -> dict:
        return asdict(self)


def training_flops(arch: ModelArch, method: str, tokens: int, gradient_checkpointing: bool = True,
                   objective: str = "sft") -> tuple[float, str]:
    """Total training FLOPs and how they were counted (DPO: + the reference forward over every token)."""
    method = _check_method(method)
    dpo = _check_objective(objective) == "dpo"
    per_param = (FLOPS_PER_TOKEN[method] + (RECOMPUTE_FLOPS if gradient_checkpointing else 0.0)
                 + (REFERENCE_FLOPS if dpo else 0.0))
    factor = QLORA_SLOWDOWN if method == "qlora" else 1.0
    P = arch.compute_params()
    flops = per_param * P * tokens * factor
    parts = [f"{per_param:g} x {P / 1e9:.2f}B x {tokens:,} tokens"]
    if factor != 1.0:
        parts.append(f"x {factor} dequant overhead")
    why = {"full": "6 = forward 2 + backward 4", "lora": "4 = forward 2 + backward 2 (no base weight grads)",
           "qlora": "4 = forward 2 + backward 2 (no base weight grads)"}[method]
    if gradient_checkpointing:
        why += ", + 2 recompute"
    if dpo:
        why += ", + 2 DPO reference forward"
    return flops, f"{' '.join(parts)} ({why}) = {flops:.3g} FLOPs"


def estimate_time(
    arch: ModelArch,
    method: str,
    tokens: int,
    gpu: GPU,
    mfu: float = DEFAULT_MFU,
    gradient_checkpointing: bool = True,
    objective: str = "sft",
) -> TimeEstimate:
    """Hours and dollars on one `gpu` at model-FLOPs utilisation `mfu`."""
    if not 0 < mfu <= 1:
        raise ValueError(f"Utilisation (MFU) must be in (0, 1], not {mfu}.")
    flops, how_flops = training_flops(arch, method, tokens, gradient_checkpointing, objective)
    seconds = flops / (gpu.peak_tflops * 1e12 * mfu)
    hours = seconds / 3600
    cost = hours * gpu.usd_per_hour
    how_hours = f"{how_flops} / ({gpu.peak_tflops:g} TFLOPS peak x {mfu:.0%} MFU) = {hours:.2f} h"
    how_cost = f"{hours:.2f} h x ${gpu.usd_per_hour:g}/h ({gpu.name}) = ${cost:,.2f}"
    return TimeEstimate(flops, hours, cost, how_hours, how_cost)
