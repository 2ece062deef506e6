"""Every way to fine-tune this dataset, side by side: this machine's GPU, Hugging Face Jobs flavors, Together AI,
OpenAI models, and full/LoRA/QLoRA on each catalogue GPU for comparison.

Why one table: the person's real question is "which option, and what will it cost me?", so
every option gets the same columns (epochs, tokens, memory, fits, hours, dollars) and every
figure carries a `how` string so it can be checked by hand.

Token counts come from the Data step's report and are never recounted here (that is what
makes the estimate after a check cheap); quick mode builds the counts from "N examples of
about T tokens", or counts one pasted example. Preference tuning (objective "dpo") is estimated on pairs: each
pair counts as its two sequences, prompt + chosen + prompt + rejected, and every path prices it as such (DPO
rates on Together, OpenAI's DPO models only, two sequences and a reference model for the GPU memory and time).
Counts made with an OpenAI encoding are exact for OpenAI
rows and approximate for open models (their own tokenizers differ), and every such row says so; counts made
with an open model's own tokenizer (a check for that model, when its tokenizer was on the machine) make
that model's rows exact.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import hardware, pricing, providers

DEFAULT_BASE_MODEL = "meta-llama/Llama-3.1-8B"
DEFAULT_REQUESTS_PER_MONTH = 10_000
DEFAULT_OUTPUT_SHARE = 0.25  # quick mode: assumed share of each example's tokens that are the reply
MAX_DEFAULT_SEQ_LEN = 8192


# --------------------------------------------------------------------------- token inputs


@dataclass
class TokenInput:
    """Per-example token counts for the estimate, and where they came from."""

    per_example: list[int]
    assistant_per_example: list[int] | None
    encoding: str
    exact: bool
    source: str  # "report" | "quick" | "pasted example"
    note: str = ""
    path: str | None = None  # the dataset file counted, for the command lines that start a run
    sequences: int = 1  # sequences per example: 2 for preference pairs (prompt + chosen, prompt + rejected)
    longest_sequence: int | None = None  # pairs: the longest single sequence (what the sequence length must hold)

    @property
    def n(self) -> int:
        return len(self.per_example)

    @property
    def total(self) -> int:
        return int(sum(self.per_example))

    @property
    def assistant_total(self) -> int:
        if self.assistant_per_example is None:
            return int(round(self.total * DEFAULT_OUTPUT_SHARE))
        return int(sum(self.assistant_per_example))

    @property
    def max(self) -> int:
        return max(self.per_example) if self.per_example else 0

    @property
    def longest(self) -> int:
        """The longest sequence training sees: an example, or one half of a pair."""
        return self.longest_sequence if self.longest_sequence is not None else self.max

    @property
    def pairs(self) -> bool:
        return self.sequences == 2

    def averages(self) -> tuple[float, float]:
        """(average input tokens, average output tokens) per request: input = total - assistant."""
        if not self.n:
            return 0.0, 0.0
        out = self.assistant_total / self.n
        return max(self.total / self.n - out, 0.0), out


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def tokens_from_report(report: Any) -> TokenInput:
    """Counts from a DataReport (object or its `to_dict()`); no tokenising."""
    tokens = _get(report, "tokens")
    if not tokens:
        raise ValueError("The dataset report has no token counts: check the dataset first (no valid examples?).")
    per_example = list(_get(tokens, "per_example") or [])
    if not per_example:
        raise ValueError("The dataset has no valid examples to estimate: fix the errors the Data step lists.")
    assistant = _get(tokens, "assistant_per_example") or None
    return TokenInput(
        per_example=per_example,
        assistant_per_example=list(assistant) if assistant else None,
        encoding=_get(tokens, "encoding") or "o200k_base",
        exact=bool(_get(tokens, "exact", True)),
        source="report",
        path=_get(report, "path"),
        note=f"{'exact' if _get(tokens, 'exact', True) else 'approximate'} counts from the Data step's check of "
        f"{_get(report, 'path', 'the dataset')} "
        f"({_get(tokens, 'encoding')}), not recounted",
    )


def tokens_quick(n_examples: int, avg_tokens: float, avg_output_tokens: float | None = None,
                 pairs: bool = False) -> TokenInput:
    """Quick mode: `n_examples` examples of about `avg_tokens` tokens each (no dataset needed).

    With `pairs`, preference pairs: `avg_tokens` is a pair's prompt + chosen + prompt + rejected, and
    `avg_output_tokens` its chosen + rejected."""
    n = int(n_examples or 0)
    t = int(round(float(avg_tokens or 0)))
    if n < 1 or t < 1:
        raise ValueError("Quick mode needs the number of examples and their average tokens (both at least 1).")
    if n > 50_000_000:
        raise ValueError("More than 50 million examples: give a smaller number.")
    if avg_output_tokens is None:
        out, note = int(round(t * DEFAULT_OUTPUT_SHARE)), f"reply tokens assumed {DEFAULT_OUTPUT_SHARE:.0%} of each example"
    else:
        out, note = int(round(float(avg_output_tokens))), "reply tokens as given"
    if out > t:
        raise ValueError("The reply (output) tokens cannot exceed the example's total tokens.")
    if pairs:
        note = note.replace("of each example", "of each pair (chosen + rejected)")
        return TokenInput([t] * n, [out] * n, "o200k_base", False, "quick",
                          f"quick mode: {n:,} preference pairs x {t:,} tokens (prompt + chosen + prompt + rejected; "
                          f"a guess, check the pairs file for exact counts); {note}",
                          sequences=2, longest_sequence=max(1, (t + 1) // 2))
    return TokenInput([t] * n, [out] * n, "o200k_base", False, "quick",
                      f"quick mode: {n:,} examples x {t:,} tokens (a guess; check the dataset for exact counts); {note}")


def tokens_from_pairs(counts: Any, path: str | None = None) -> TokenInput:
    """Counts of preference pairs (`data.preference_pairs.count_pairs`): each pair is prompt + chosen + prompt +
    rejected, the two sequences DPO trains on."""
    if not counts.per_pair:
        raise ValueError("No preference pairs to estimate.")
    return TokenInput(list(counts.per_pair), list(counts.answer_per_pair), counts.encoding, counts.exact, "pairs",
                      f"{'exact' if counts.exact else 'approximate'} counts of {len(counts.per_pair):,} preference "
                      f"pairs{' in ' + str(path) if path else ''} ({counts.encoding}): each pair is prompt + chosen + "
                      "prompt + rejected", path=path, sequences=2, longest_sequence=counts.longest_sequence)


def tokens_from_example(example: str | dict, n_examples: int, model: str | None = None) -> TokenInput:
    """Quick mode from one pasted example (a chat JSON object), counted exactly and repeated `n_examples` times."""
    if isinstance(example, str):
        try:
            example = json.loads(example)
        except ValueError:
            raise ValueError('The pasted example is not JSON: paste one line like {"messages": [...]}.') from None
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list) or not example["messages"]:
        raise ValueError('The pasted example needs a "messages" list (OpenAI chat format).')
    from ftassist.data import tokens as tok  # lazy: tiktoken loads only when an example is pasted

    name = tok.encoding_name_for_model(model)
    total, assistant = tok.count_chat(example, tok.get_encoding(name))
    n = int(n_examples or 1)
    if n < 1:
        raise ValueError("The number of examples must be at least 1.")
    return TokenInput([int(total)] * n, [int(assistant)] * n, name, False, "pasted example",
                      f"one pasted example counted exactly ({total:,} tokens, {assistant:,} in the reply, {name}), "
                      f"assumed typical of {n:,} examples")


# --------------------------------------------------------------------------- options and rows


@dataclass
class EstimateOptions:
    """What to compare. None lists mean the defaults; every price can be overridden."""

    openai_models: list[str] | None = None  # None: the current (non-legacy) models of prices.json
    epochs: int | str = "auto"
    training_price: float | None = None  # USD per 1M, applied to every listed OpenAI model
    price_overrides: dict[str, dict] = field(default_factory=dict)  # model -> {training, input, cached_input, output}
    prices: dict[str, float | None] = field(default_factory=dict)  # {input, output, ...} for every listed model
    base_models: list[str] | None = None  # None: [DEFAULT_BASE_MODEL]
    methods: list[str] | None = None  # None: full, lora, qlora
    gpus: list[str] | None = None  # None: the whole GPU catalogue
    gpu_prices: dict[str, float] = field(default_factory=dict)  # GPU name -> USD per hour
    seq_len: int | None = None  # None: the longest example, capped at the model's context and 8192
    batch_size: int = 1
    gradient_checkpointing: bool = True
    lora_rank: int = 16
    mfu: float = hardware.DEFAULT_MFU
    objective: str = "sft"  # sft (chats) | dpo (preference pairs: DPO rates, two sequences, a reference model)
    precompute_reference: bool = False  # full DPO: reference log-probs computed before training (no second copy)
    requests_per_month: int = DEFAULT_REQUESTS_PER_MONTH
    include_openai: bool = True
    include_self_hosted: bool = True  # this machine's GPUs and the catalogue GPUs
    include_hf_jobs: bool | None = None  # None: as include_self_hosted (open models or not)
    include_together: bool | None = None  # None: as include_self_hosted
    flavors: list[str] | None = None  # Hugging Face Jobs flavors; None: the single-GPU ones (more GPUs only go faster)
    together_rate: float | None = None  # USD per 1M tokens, when the provider file has no rate
    local_gpus: list[dict] | None = None  # this machine's GPUs [{name, memory_gb}]; None: not looked at
    data_path: str | None = None  # the file named in the command lines (default: the dataset counted)
    prefer: str | None = None  # openai | full | lora | qlora: recommend among these first (e.g. from the guide)
    openai_customer: bool | None = None  # an active OpenAI fine-tuning customer (None: unknown, treated as no)
    today: str | None = None  # YYYY-MM-DD the availability is judged on (None: the current date)
    allow_network: bool = True  # resolve Hub ids of base models

    @classmethod
    def from_dict(cls, d: dict | None) -> "EstimateOptions":
        d = dict(d or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown estimate option(s): {', '.join(sorted(unknown))}.")
        return cls(**d)


@dataclass
class EstimateRow:
    id: str
    kind: str  # openai | self_hosted | hf_jobs | together
    label: str
    model: str  # OpenAI model or base model
    method: str  # openai_sft | openai_dpo | openai_rft | full | lora | qlora
    gpu: str | None
    epochs: int
    billing_tokens: int  # tokens per epoch (OpenAI: clipped to its limit; self-hosted: clipped to seq_len)
    trained_tokens: int  # all epochs
    training_cost_usd: float | None
    cost_usd: float | None  # the same figure, under the name both kinds share
    hours: float | None = None
    memory_gb: float | None = None
    gpu_memory_gb: float | None = None
    fits: bool | None = None
    inference_cost_month_usd: float | None = None
    recommended: bool = False
    note: str = ""
    how: dict[str, str] = field(default_factory=dict)
    available: bool = True  # open to this person today (OpenAI: customers only, models not shut down)
    why: str = ""  # why not, when unavailable (or why there is no cost)
    # local | hf-jobs | together | openai: what `ftassist train --backend` takes; "elsewhere": a catalogue GPU
    # rented from another cloud, shown for comparison (ftassist would run there as `--backend local`)
    backend: str = "local"
    hardware: str = ""  # where it runs, in words
    flavor: str | None = None  # the Hugging Face Jobs flavor
    tokens_exact: bool = True  # False: an OpenAI encoding's count standing in for an open model's tokenizer
    start: str = ""  # the command line that starts this run
    objective: str = "sft"  # sft | dpo: what the run optimises


@dataclass
class EstimateTable:
    inputs: dict
    rows: list[EstimateRow]
    recommended_id: str | None
    recommendation: str
    notes: list[str] = field(default_factory=list)
    memory: list[dict] = field(default_factory=list)  # per base model x method: parts and total
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @property
    def recommended(self) -> EstimateRow | None:
        return next((r for r in self.rows if r.id == self.recommended_id), None)

    def row(self, row_id: str) -> EstimateRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(row_id)


DISPLAY_HEADERS = ["", "option", "backend", "epochs", "tokens/epoch", "memory GB", "fits", "hours", "training $",
                   "inference $/month", "available"]


def _sig(x: float, digits: int = 3) -> float:
    """A number rounded to `digits` significant figures, so tiny costs do not show as 0.00."""
    return float(f"{x:.{digits}g}") if abs(x) < 100 else round(x, 2)


def duration(hours: float) -> str:
    """Hours as a person reads them: "under a minute", "12 min", "3.4 h"."""
    minutes = hours * 60
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes:.0f} min"
    return f"{hours:,.1f} h"


def _short(text: str, limit: int = 60) -> str:
    first = text.split(";")[0].strip()
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def _cost_cell(row: dict) -> str | float:
    if row["cost_usd"] is not None:
        return _sig(row["cost_usd"])
    return "per hour (RFT)" if row["method"] == "openai_rft" else "unknown"


def display_rows(table: EstimateTable | dict, only_fitting: bool = False) -> list[list]:
    """The table as rows of plain values (for a terminal or a gr.Dataframe)."""
    rows = table["rows"] if isinstance(table, dict) else [asdict(r) for r in table.rows]
    out = []
    for r in rows:
        if only_fitting and r["fits"] is False:
            continue
        out.append([
            "★" if r["recommended"] else "",
            r["label"],
            r.get("backend", ""),
            r["epochs"],
            r["billing_tokens"] if r.get("tokens_exact", True) else f"~{r['billing_tokens']:,}",
            "" if r["memory_gb"] is None else round(r["memory_gb"], 1),
            "" if r["fits"] is None else ("yes" if r["fits"] else "no"),
            "" if r["hours"] is None else _sig(r["hours"]),
            _cost_cell(r),
            "" if r["inference_cost_month_usd"] is None else _sig(r["inference_cost_month_usd"]),
            "yes" if r.get("available", True) else "no: " + _short(r.get("why") or "not open to you"),
        ])
    return out


# --------------------------------------------------------------------------- the estimate


def _as_token_input(source: Any) -> TokenInput:
    if isinstance(source, TokenInput):
        return source
    if source is None:
        raise ValueError("Nothing to estimate: give a checked dataset, or the number of examples and tokens.")
    return tokens_from_report(source)


def _openai_access(model: str, opts: EstimateOptions) -> tuple[bool, str, str]:
    """(available, why not, warning) for fine-tuning `model` on OpenAI, for this person on the options' day."""
    open_, why, _ = providers.availability("openai", opts.today, opts.openai_customer)
    shutdown = providers.shutdown_of(model, opts.today)
    if shutdown is not None and shutdown.shut_down:
        return False, shutdown.sentence(), ""
    warning = providers.model_warning(model, opts.today)
    return open_, ("" if open_ else why), warning


def _openai_rows(tin: TokenInput, opts: EstimateOptions, notes: list[str]) -> list[EstimateRow]:
    dpo = opts.objective == "dpo"
    dpo_models = providers.openai_dpo_models()
    names = opts.openai_models or [n for n in pricing.model_names() if not dpo or n in dpo_models]
    avg_in, avg_out = tin.averages()
    rows = []
    closed = providers.availability("openai", opts.today, opts.openai_customer)
    if not closed.available:
        notes.append(f"OpenAI rows are shown for comparison only: {closed.why}")
    for name in names:
        overrides = dict(opts.prices)
        overrides.update(opts.price_overrides.get(name, {}))
        price0 = pricing.get_price(name)
        overrides.update(opts.price_overrides.get(price0.model, {}))
        if opts.training_price is not None:
            overrides["training"] = opts.training_price
        price = pricing.get_price(name, overrides)
        cost = pricing.training_cost(tin.per_example, price, opts.epochs, sequences=tin.sequences)
        inf = pricing.inference_cost(price, opts.requests_per_month, avg_in, avg_out)
        how = dict(cost.how)
        if dpo and cost.training_cost_usd is not None:
            how["training_cost_usd"] += (f"; DPO: {providers.provider('openai')['dpo_billing']} Each pair counts as "
                                         "prompt + chosen + prompt + rejected (ftassist's count; OpenAI's may differ)")
        how["inference_cost_month_usd"] = inf.how + " (input = total - reply tokens, output = reply tokens, per example)"
        if tin.encoding != price.encoding:
            how["tokens"] = (f"counted with {tin.encoding}, but {price.model} uses {price.encoding}: "
                             "re-check the dataset with this model for exact figures")
        note = ""
        if price.billed_per_hour:
            note = price.note or f"billed ${price.training_per_hour:g} per hour of training, not per token"
        elif cost.clipped_examples:
            note = f"{cost.clipped_examples:,} example(s) over the {price.example_limit:,}-token limit"
        if price.overridden:
            note = (note + "; " if note else "") + "price overridden: " + ", ".join(price.overridden)
        available, why, warning = _openai_access(price.model, opts)
        if dpo and price.model not in dpo_models:
            available, why = False, (f"OpenAI does not train DPO on {price.model}: only on {', '.join(dpo_models)}")
        if warning:
            note = (note + "; " if note else "") + warning
        rows.append(EstimateRow(
            id=f"openai:{price.model}",
            kind="openai",
            label=("DPO " if dpo else "") + f"OpenAI {price.model}" + (" (RFT)" if price.billed_per_hour else "")
            + ("" if available else " (unavailable)"),
            model=price.model,
            method="openai_rft" if price.billed_per_hour else "openai_dpo" if dpo else "openai_sft",
            gpu=None,
            epochs=cost.epochs,
            billing_tokens=cost.billing_tokens,
            trained_tokens=cost.trained_tokens,
            training_cost_usd=cost.training_cost_usd,
            cost_usd=cost.training_cost_usd,
            inference_cost_month_usd=inf.monthly_usd,
            note=note,
            how=how,
            available=available,
            why=why,
            backend="openai",
            hardware="OpenAI (hosted)",
            tokens_exact=tin.exact and tin.encoding == price.encoding,
            start=_command("openai", opts.data_path or tin.path or "DATA", price.model, cost.epochs,
                           objective=opts.objective),
            objective=opts.objective,
        ))
    return rows


def _command(backend: str, data: str, model: str, epochs: int, method: str | None = None,
             flavor: str | None = None, objective: str = "sft") -> str:
    """The `ftassist train` line that starts this option (DATA stands for the file when none was counted)."""
    parts = ["ftassist", "train", shlex.quote(data) if data != "DATA" else data, "--backend", backend]
    if flavor:
        parts += ["--flavor", flavor]
    parts += ["--base-model", shlex.quote(model)]
    if method:
        parts += ["--method", method]
    if objective != "sft":
        parts += ["--objective", objective]
    return " ".join(parts + ["--epochs", str(epochs)])


@dataclass
class _Base:
    """What every open-model row of one base model shares: its shape, sequence length and token counts."""

    arch: hardware.ModelArch
    seq_len: int
    per_epoch: int
    trained: int
    tokens_how: str
    exact: bool  # counted with this model's own tokenizer


def _bases(tin: TokenInput, opts: EstimateOptions, epochs: int, notes: list[str]) -> list[_Base]:
    from ftassist.data.tokens import counted_with_tokenizer_of

    out = []
    for base in opts.base_models or [DEFAULT_BASE_MODEL]:
        arch = hardware.resolve_model(base, allow_network=opts.allow_network)
        exact = tin.exact and (counted_with_tokenizer_of(tin.encoding, base)
                               or counted_with_tokenizer_of(tin.encoding, arch.name))
        cap = min(arch.max_context or MAX_DEFAULT_SEQ_LEN, MAX_DEFAULT_SEQ_LEN)
        seq_len = int(opts.seq_len) if opts.seq_len else max(1, min(tin.longest, cap))
        if opts.seq_len and arch.max_context and seq_len > arch.max_context:
            notes.append(f"{arch.name}: sequence length {seq_len:,} is over its context of {arch.max_context:,}")
        limit = seq_len * tin.sequences  # a pair holds two sequences of up to seq_len each
        per_epoch = pricing.billed_tokens_per_epoch(tin.per_example, limit)
        truncated = pricing.n_clipped(tin.per_example, limit)
        what = "pairs" if tin.pairs else "examples"
        if truncated:
            notes.append(f"{arch.name}: {truncated:,} {what} longer than {limit:,} tokens would be truncated")
        trained = per_epoch * epochs
        counted = (f"exact: counted with {tin.encoding} and its chat template" if exact else
                   f"approximate: counted with {tin.encoding}; {arch.name}'s own tokenizer may differ by 10-20%")
        clip = f"2 x seq_len {seq_len:,}" if tin.pairs else f"seq_len {seq_len:,}"
        how = (f"sum over {tin.n:,} {what}{' (prompt + chosen + prompt + rejected)' if tin.pairs else ''} of "
               f"min(tokens, {clip}) = {per_epoch:,} per epoch x {epochs} epochs = {trained:,} ({counted})")
        out.append(_Base(arch, seq_len, per_epoch, trained, how, exact))
    approximate = [b.arch.name for b in out if not b.exact]
    if approximate:
        notes.append(f"Open-model token counts are approximate for {', '.join(approximate)}: counted with "
                     f"{tin.encoding}, not each model's own tokenizer")
    return out


def _method_label(method: str, opts: EstimateOptions | None = None) -> str:
    label = {"qlora": "QLoRA 4-bit", "lora": "LoRA", "full": "Full"}[method]
    return f"DPO {label}" if opts is not None and opts.objective == "dpo" else label


def _memory_how(mem: hardware.MemoryEstimate, opts: EstimateOptions) -> str:
    return mem.how + (f" (seq_len {mem.seq_len:,}, batch {opts.batch_size}, gradient checkpointing "
                      f"{'on' if opts.gradient_checkpointing else 'off'})")


def _words(name: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", name.lower()))


def _catalogue_match(name: str, memory_gb: float | None, gpus: dict[str, hardware.GPU]) -> hardware.GPU | None:
    """The catalogue GPU a detected card is ("NVIDIA L4" -> L4, not L40S), for its peak; None when unknown."""
    words = _words(name)
    found = [g for n, g in gpus.items() if {w for w in _words(n) if not re.fullmatch(r"\d+gb", w)} <= words]
    if not found:
        return None
    return min(found, key=lambda g: abs(g.memory_gb - (memory_gb or g.memory_gb)))


def _self_hosted_rows(bases: list[_Base], opts: EstimateOptions, epochs: int, methods: list[str],
                      mems: dict, data: str) -> list[EstimateRow]:
    """The catalogue GPUs at indicative rental prices. Named GPUs (`gpus`) are ones the person says they can use;
    the whole catalogue, once this machine was looked at, is a comparison that cannot be chosen."""
    all_gpus = hardware.gpu_catalogue(opts.gpu_prices)
    gpus = [hardware.find_gpu(g, all_gpus) for g in opts.gpus] if opts.gpus else list(all_gpus.values())
    here = opts.local_gpus is not None and not opts.gpus
    rows = []
    for b in bases:
        for method in methods:
            mem = mems[b.arch.name, method]
            for gpu in gpus:
                t = hardware.estimate_time(b.arch, method, b.trained, gpu, opts.mfu, opts.gradient_checkpointing,
                                           opts.objective)
                ok = hardware.fits(mem, gpu)
                note = "" if ok else (f"needs {mem.total_gb:.0f} GB > {gpu.usable_gb:.1f} GB usable; about "
                                      f"{hardware.gpus_needed(mem.total_gb, gpu)} such cards with sharding (FSDP/ZeRO-3)")
                if gpu.note:
                    note = (note + "; " if note else "") + gpu.note
                rows.append(EstimateRow(
                    id=f"{method}:{b.arch.name}:{gpu.name}", kind="self_hosted",
                    label=f"{_method_label(method, opts)} {b.arch.name.split('/')[-1]} on {gpu.name}"
                          + (" (rented elsewhere)" if here else ""),
                    model=b.arch.name, method=method, gpu=gpu.name, epochs=epochs, billing_tokens=b.per_epoch,
                    trained_tokens=b.trained, training_cost_usd=t.cost_usd, cost_usd=t.cost_usd, hours=t.hours,
                    memory_gb=mem.total_gb, gpu_memory_gb=gpu.memory_gb, fits=ok, note=note,
                    how={"trained_tokens": b.tokens_how, "memory_gb": _memory_how(mem, opts),
                         "fits": f"{mem.total_gb:.1f} GB {'<=' if ok else '>'} {gpu.usable_gb:.1f} GB "
                                 f"({hardware.USABLE_SHARE:.0%} of the card's {gpu.memory_gb:g} GB)",
                         "hours": t.how_hours, "cost_usd": t.how_cost},
                    available=not here,
                    why=(f"comparison only: {gpu.name} rented elsewhere at ${gpu.usd_per_hour:g}/h; ftassist trains "
                         "on this machine's GPU or on Hugging Face Jobs") if here else "",
                    backend="elsewhere" if here else "local",
                    hardware=f"{gpu.name} ({gpu.memory_gb:g} GB)" + (", rented from another cloud" if here else ""),
                    tokens_exact=b.exact, start=_command("local", data, b.arch.name, epochs, method,
                                                         objective=opts.objective),
                    objective=opts.objective,
                ))
    return rows


def _local_rows(bases: list[_Base], opts: EstimateOptions, epochs: int, methods: list[str], mems: dict,
                data: str) -> list[EstimateRow]:
    """This machine's GPUs (several of one kind train together under DDP): no provider bill."""
    counts: dict[str, list[dict]] = {}
    for g in opts.local_gpus or []:
        counts.setdefault(str(g.get("name") or "GPU"), []).append(g)
    catalogue = hardware.gpu_catalogue()
    rows = []
    for name, cards in counts.items():
        memory = min(float(c.get("memory_gb") or 0) for c in cards)
        n = len(cards)
        known = _catalogue_match(name, memory, catalogue)
        usable = memory * hardware.USABLE_SHARE
        where = f"{n} x {name}" if n > 1 else name
        for b in bases:
            for method in methods:
                mem = mems[b.arch.name, method]
                ok = mem.total_gb <= usable
                how = {"trained_tokens": b.tokens_how, "memory_gb": _memory_how(mem, opts),
                       "fits": f"{mem.total_gb:.1f} GB {'<=' if ok else '>'} {usable:.1f} GB "
                               f"({hardware.USABLE_SHARE:.0%} of this machine's {memory:g} GB per card)",
                       "cost_usd": "$0: your own hardware (electricity not counted)"}
                hours = None
                if known is not None:
                    flops, how_flops = hardware.training_flops(b.arch, method, b.trained, opts.gradient_checkpointing,
                                                               opts.objective)
                    hours = flops / (known.peak_tflops * 1e12 * opts.mfu * n) / 3600
                    how["hours"] = (f"{how_flops} / ({n} x {known.peak_tflops:g} TFLOPS peak ({known.name}) x "
                                    f"{opts.mfu:.0%} MFU) = {hours:.2f} h")
                else:
                    how["hours"] = f"unknown: {name} is not in the GPU catalogue (no peak throughput)"
                rows.append(EstimateRow(
                    id=f"local:{method}:{b.arch.name}:{name}", kind="self_hosted",
                    label=f"{_method_label(method, opts)} {b.arch.name.split('/')[-1]} on this machine ({where})",
                    model=b.arch.name, method=method, gpu=name, epochs=epochs, billing_tokens=b.per_epoch,
                    trained_tokens=b.trained, training_cost_usd=0.0, cost_usd=0.0, hours=hours,
                    memory_gb=mem.total_gb, gpu_memory_gb=memory, fits=ok,
                    note="" if ok else f"needs {mem.total_gb:.0f} GB > {usable:.1f} GB usable on this machine",
                    how=how, backend="local", hardware=f"{where} (this machine, {memory:g} GB)", tokens_exact=b.exact,
                    start=_command("local", data, b.arch.name, epochs, method, objective=opts.objective),
                    objective=opts.objective,
                ))
    return rows


def _jobs_rows(bases: list[_Base], opts: EstimateOptions, epochs: int, methods: list[str], mems: dict,
               data: str, notes: list[str]) -> list[EstimateRow]:
    """Hugging Face Jobs: hours = FLOPs / (GPUs x peak x MFU) + the start-up minutes, billed at the flavor's $/h."""
    every = providers.jobs_flavors()
    if opts.flavors:
        by_name = {f.name: f for f in every}
        unknown = [name for name in opts.flavors if name not in by_name]
        if unknown:
            raise ValueError(f"Unknown Hugging Face Jobs flavor(s) {', '.join(unknown)}: use one of "
                             f"{', '.join(by_name)}.")
        flavors = [by_name[name] for name in opts.flavors]
    else:
        flavors = [f for f in every if f.gpus == 1]
    if opts.gpus:
        wanted = {"".join(g.lower().split()) for g in opts.gpus}
        flavors = [f for f in flavors if "".join(f.gpu.lower().split()) in wanted]
    catalogue = hardware.gpu_catalogue()
    startup = providers.jobs_startup_minutes()
    open_, why_closed, _ = providers.availability("hf-jobs", opts.today)
    missing = sorted({f.gpu for f in flavors if f.gpu not in catalogue})
    if missing:
        notes.append(f"Hugging Face Jobs flavors on {', '.join(missing)} have no time or cost: the GPU catalogue has "
                     "no peak throughput for them")
    rows = []
    for b in bases:
        for method in methods:
            mem = mems[b.arch.name, method]
            flops, how_flops = hardware.training_flops(b.arch, method, b.trained, opts.gradient_checkpointing,
                                                       opts.objective)
            for f in flavors:
                usable = f.per_gpu_gb * hardware.USABLE_SHARE
                ok = mem.total_gb <= usable
                gpu = catalogue.get(f.gpu)
                how = {"trained_tokens": b.tokens_how, "memory_gb": _memory_how(mem, opts),
                       "fits": f"{mem.total_gb:.1f} GB {'<=' if ok else '>'} {usable:.1f} GB "
                               f"({hardware.USABLE_SHARE:.0%} of {f.per_gpu_gb:g} GB per GPU)"}
                hours = cost = None
                why = ""
                if gpu is None:
                    why = f"no peak throughput for {f.gpu} in the GPU catalogue, so no time or cost"
                    how["hours"] = "unknown: " + why
                else:
                    train_hours = flops / (gpu.peak_tflops * 1e12 * opts.mfu * f.gpus) / 3600
                    hours = train_hours + startup / 60
                    scale = f"{f.gpus} x " if f.gpus > 1 else ""
                    how["hours"] = (f"{how_flops} / ({scale}{gpu.peak_tflops:g} TFLOPS peak x {opts.mfu:.0%} MFU) = "
                                    f"{train_hours:.2f} h + {startup:g} min start-up = {hours:.2f} h")
                    if f.usd_per_hour is not None:
                        cost = hours * f.usd_per_hour
                        how["cost_usd"] = f"{hours:.2f} h x ${f.usd_per_hour:g}/h ({f.name}) = ${cost:,.2f}"
                    else:
                        why = f"no hourly price for {f.name} in the provider file"
                how.setdefault("cost_usd", f"unknown: {why}")
                rows.append(EstimateRow(
                    id=f"hf-jobs:{method}:{b.arch.name}:{f.name}", kind="hf_jobs",
                    label=f"{_method_label(method, opts)} {b.arch.name.split('/')[-1]} on HF Jobs {f.name}",
                    model=b.arch.name, method=method, gpu=f.gpu, epochs=epochs, billing_tokens=b.per_epoch,
                    trained_tokens=b.trained, training_cost_usd=cost, cost_usd=cost, hours=hours,
                    memory_gb=mem.total_gb, gpu_memory_gb=f.per_gpu_gb, fits=ok,
                    note="" if ok else f"needs {mem.total_gb:.0f} GB > {usable:.1f} GB usable per GPU",
                    how=how, available=open_, why=why if open_ else why_closed, backend="hf-jobs",
                    hardware=f.describe(), flavor=f.name, tokens_exact=b.exact,
                    start=_command("hf-jobs", data, b.arch.name, epochs, method, f.name, opts.objective),
                    objective=opts.objective,
                ))
    return rows


def _together_rows(bases: list[_Base], opts: EstimateOptions, epochs: int, methods: list[str],
                   data: str) -> list[EstimateRow]:
    """Together AI, per token: (epochs x tokens) x the size bracket's rate; no cost when the rate is unknown."""
    open_, why_closed, _ = providers.availability("together", opts.today)
    rows = []
    for b in bases:
        params_b = b.arch.params() / 1e9
        for method in [m for m in methods if m in ("lora", "full")]:  # Together has no 4-bit QLoRA
            bill = providers.together_cost(b.per_epoch, epochs, params_b, objective=opts.objective, method=method,
                                           rate_usd_per_1m=opts.together_rate)
            how = {"trained_tokens": b.tokens_how}
            if bill.usd is None:
                how["cost_usd"] = f"unknown: {bill.reason}"
            else:
                how["cost_usd"] = (f"{epochs} epochs x {b.per_epoch:,} tokens = {bill.billed_tokens:,} billed tokens x "
                                   f"${bill.rate_usd_per_1m:g} per 1M ({b.arch.name}: {params_b:.1f}B, "
                                   f"{bill.bracket}, {opts.objective.upper()} {method}) = ${bill.usd:,.2f}")
            rows.append(EstimateRow(
                id=f"together:{method}:{b.arch.name}", kind="together",
                label=f"{_method_label(method, opts)} {b.arch.name.split('/')[-1]} on Together AI",
                model=b.arch.name, method=method, gpu=None, epochs=epochs, billing_tokens=b.per_epoch,
                trained_tokens=bill.billed_tokens, training_cost_usd=bill.usd, cost_usd=bill.usd,
                note="Together names its models its own way: pass its model id as --base-model", how=how,
                available=open_, why=(bill.reason if open_ else why_closed), backend="together",
                hardware="Together AI (hosted)", tokens_exact=b.exact,
                start=_command("together", data, b.arch.name, epochs, method if method == "full" else None,
                               objective=opts.objective),
                objective=opts.objective,
            ))
    return rows


def _open_model_rows(tin: TokenInput, opts: EstimateOptions, epochs: int, notes: list[str],
                     memory_out: list[dict]) -> list[EstimateRow]:
    """Every open-model path: this machine, the catalogue GPUs, Hugging Face Jobs and Together AI."""
    methods = [hardware._check_method(m) for m in (opts.methods or hardware.METHODS)]
    bases = _bases(tin, opts, epochs, notes)
    data = opts.data_path or tin.path or "DATA"
    mems = {}
    for b in bases:
        for method in methods:
            mem = hardware.estimate_memory(b.arch, method, b.seq_len, opts.batch_size, opts.gradient_checkpointing,
                                           opts.lora_rank, objective=opts.objective,
                                           precompute_reference=opts.precompute_reference)
            mems[b.arch.name, method] = mem
            memory_out.append({"base_model": b.arch.name, "method": method, "total_gb": mem.total_gb,
                               "parts_gb": mem.parts_gb, "seq_len": b.seq_len, "batch_size": opts.batch_size,
                               "objective": opts.objective})
    rows: list[EstimateRow] = []
    if opts.include_self_hosted:
        rows += _local_rows(bases, opts, epochs, methods, mems, data)
        rows += _self_hosted_rows(bases, opts, epochs, methods, mems, data)
    if opts.include_hf_jobs:
        rows += _jobs_rows(bases, opts, epochs, methods, mems, data, notes)
    if opts.include_together and not opts.gpus:  # asked about given GPUs: Together chooses its own
        rows += _together_rows(bases, opts, epochs, methods, data)
    return rows


def choosable(row: EstimateRow | dict) -> bool:
    """Whether a person may pick this option for training: its cost is known, it fits, and it is open to them."""
    return (_get(row, "cost_usd") is not None and _get(row, "fits") is not False
            and _get(row, "available", True) is not False)


def _prefers(row: EstimateRow, prefer: str) -> bool:
    return row.kind == "openai" if prefer == "openai" else row.method == prefer


def _recommend(rows: list[EstimateRow], prefer: str | None) -> tuple[str | None, str]:
    """The cheapest row this person can choose (the preferred method first, when one of those can be)."""
    candidates = [r for r in rows if choosable(r)]
    p = (prefer or "").lower()
    if p:
        preferred = [r for r in candidates if _prefers(r, p)]
        if preferred:
            candidates = preferred
    if not candidates:
        return None, ("No option you can use both fits a GPU and has a price: try QLoRA, or a bigger GPU "
                      "(rent one on Hugging Face Jobs).")
    best = min(candidates, key=lambda r: (round(r.cost_usd, 4), r.hours if r.hours is not None else float("inf")))
    dollars = f"${best.cost_usd:,.2f}" if best.cost_usd >= 0.01 or best.cost_usd == 0 else f"${best.cost_usd:.2g}"
    why = f"the cheapest option that fits ({dollars})"
    if p and _prefers(best, p):
        why = f"the cheapest {prefer} option that fits ({dollars}), as the decision guide suggested"
    if best.kind == "hf_jobs" and best.hours is not None:
        why += (f"; about {duration(best.hours)} on Hugging Face Jobs {best.flavor}, including "
                f"{providers.jobs_startup_minutes():g} min start-up")
    elif best.kind == "self_hosted" and best.hours is not None:
        where = "this machine" if best.id.startswith("local:") else f"one {best.gpu}"
        why += f"; {duration(best.hours)} on {where}, not counting setup time"
    return best.id, f"Recommended: {best.label}, {why}. Start it with: {best.start}"


def estimate_all(source: Any, options: EstimateOptions | dict | None = None) -> EstimateTable:
    """The side-by-side table for a TokenInput, a DataReport or its dict (quick mode: see tokens_quick)."""
    started = time.perf_counter()
    opts = options if isinstance(options, EstimateOptions) else EstimateOptions.from_dict(options)
    tin = _as_token_input(source)
    if opts.batch_size < 1:
        raise ValueError("Batch size must be at least 1.")
    if opts.requests_per_month < 0:
        raise ValueError("Requests per month cannot be negative.")
    if opts.objective not in ("sft", "dpo"):
        raise ValueError(f"Unknown objective {opts.objective!r}: use sft (chats) or dpo (preference pairs).")
    if (opts.objective == "dpo") != tin.pairs:
        raise ValueError("DPO is estimated on preference pairs (prompt, chosen, rejected), SFT on examples: give "
                         "counts of the matching kind." if opts.objective == "dpo" else
                         "These are preference pairs: estimate them with the objective dpo.")
    epochs, epochs_how = pricing.resolve_epochs(opts.epochs, tin.n)
    opts = replace(opts, today=providers.as_date(opts.today).isoformat(),  # one day for every row
                   include_hf_jobs=opts.include_self_hosted if opts.include_hf_jobs is None else opts.include_hf_jobs,
                   include_together=(opts.include_self_hosted if opts.include_together is None
                                     else opts.include_together))
    notes: list[str] = [tin.note] if tin.note else []
    memory: list[dict] = []
    rows: list[EstimateRow] = []
    if opts.include_openai:
        rows += _openai_rows(tin, opts, notes)
    if opts.include_self_hosted or opts.include_hf_jobs or opts.include_together:
        rows += _open_model_rows(tin, opts, epochs, notes, memory)
    if not rows:
        raise ValueError("Nothing to compare: include OpenAI models, self-hosted GPUs, Hugging Face Jobs or Together.")
    rec_id, why = _recommend(rows, opts.prefer)
    for r in rows:
        r.recommended = r.id == rec_id
    avg_in, avg_out = tin.averages()
    open_rows = [r for r in rows if r.kind != "openai"]
    inputs = {
        "n_examples": tin.n,
        "total_tokens": tin.total,
        "assistant_tokens": tin.assistant_total,
        "avg_tokens": round(tin.total / tin.n, 1) if tin.n else 0,
        "avg_input_tokens": round(avg_in, 1),
        "avg_output_tokens": round(avg_out, 1),
        "max_tokens": tin.max,
        "encoding": tin.encoding,
        "exact": tin.exact,
        "source": tin.source,
        "epochs": epochs,
        "epochs_how": epochs_how,
        "requests_per_month": opts.requests_per_month,
        "mfu": opts.mfu,
        "batch_size": opts.batch_size,
        "gradient_checkpointing": opts.gradient_checkpointing,
        "lora_rank": opts.lora_rank,
        "objective": opts.objective,
        "pairs": tin.pairs,
        "today": opts.today,
        "openai_customer": opts.openai_customer,
        "open_model_tokens": "exact" if open_rows and all(r.tokens_exact for r in open_rows) else "approximate",
        "local_gpus": opts.local_gpus,
    }
    return EstimateTable(inputs, rows, rec_id, why, notes, memory, round(time.perf_counter() - started, 4))


def estimate_from_report(report: Any, options: EstimateOptions | dict | None = None) -> EstimateTable:
    """The estimate after a check: reuses the report's token counts, never tokenises (bench entry point)."""
    return estimate_all(tokens_from_report(report), options)


def how_markdown(table: EstimateTable | dict, max_rows: int | None = None) -> str:
    """Every figure's computation, as Markdown (for the UI's "how" accordion and `--how`)."""
    d = table if isinstance(table, dict) else table.to_dict()
    inp = d["inputs"]
    lines = [f"**Inputs**: {inp['n_examples']:,} examples, {inp['total_tokens']:,} tokens ({inp['encoding']}, "
             f"{'exact' if inp['exact'] else 'estimated'}); {inp['epochs_how']}."]
    lines += [f"- {n}" for n in d.get("notes", [])]
    for r in d["rows"][: max_rows or None]:
        lines.append(f"\n**{'★ ' if r['recommended'] else ''}{r['label']}**")
        lines += [f"- *{k}*: {v}" for k, v in r["how"].items()]
    return "\n".join(lines)
