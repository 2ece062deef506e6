"""OpenAI fine-tuning cost, computed the way OpenAI bills it, from token counts already made.

Why a data file: prices change more often than code, so they live in `prices.json` with the
date and source of every row, and every price can be overridden (UI and `--training-price`).

Billing rules (OpenAI cookbook "Chat_finetuning_data_prep", openai-cookbook examples/Chat_finetuning_data_prep.ipynb):
- billed tokens per epoch = sum over examples of min(tokens, the model's per-example limit);
- epochs = the chosen value, or `auto`: 3, raised so that n x epochs reaches 100 example-passes
  (at most 25 epochs), lowered so that n x epochs stays under 25,000 (at least 1);
- training cost = epochs x billed tokens x training price.
Reinforcement fine-tuning (o4-mini) is billed per hour of training time: we say so and give
no token price rather than invent one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

PRICES_FILE = Path(__file__).with_name("prices.json")

# The cookbook's constants for `auto` epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

PRICE_FIELDS = ("training", "input", "cached_input", "output")


@dataclass(frozen=True)
class ModelPrice:
    """One OpenAI model's fine-tuning prices (USD per 1M tokens) and limits."""

    model: str
    training: float | None  # None when training is not billed per token (RFT)
    input: float | None
    cached_input: float | None
    output: float | None
    example_limit: int
    encoding: str
    date: str
    source: str
    method: str = "supervised"  # supervised | reinforcement
    training_per_hour: float | None = None
    aliases: tuple[str, ...] = ()
    legacy: bool = False
    note: str = ""
    overridden: tuple[str, ...] = ()  # which fields the person changed

    @property
    def billed_per_hour(self) -> bool:
        return self.training is None and self.training_per_hour is not None

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _load_file() -> dict:
    with open(PRICES_FILE, encoding="utf-8") as f:
        return json.load(f)


def load_prices() -> dict[str, ModelPrice]:
    """All models of `prices.json`, keyed by their dated name, in file order."""
    out: dict[str, ModelPrice] = {}
    for name, row in _load_file()["models"].items():
        out[name] = ModelPrice(
            model=name,
            training=row.get("training"),
            input=row.get("input"),
            cached_input=row.get("cached_input"),
            output=row.get("output"),
            example_limit=int(row["example_limit"]),
            encoding=row["encoding"],
            date=row["date"],
            source=row["source"],
            method=row.get("method", "supervised"),
            training_per_hour=row.get("training_per_hour"),
            aliases=tuple(row.get("aliases", ())),
            legacy=bool(row.get("legacy", False)),
            note=row.get("note", ""),
        )
    return out


def model_names(include_legacy: bool = False, include_rft: bool = True) -> list[str]:
    """The dated model names of the price file (the defaults shown in the table)."""
    return [
        m.model
        for m in load_prices().values()
        if (include_legacy or not m.legacy) and (include_rft or not m.billed_per_hour)
    ]


def get_price(model: str, overrides: dict | None = None) -> ModelPrice:
    """The price row for `model` (dated name, alias, or `ft:` name), with overrides applied.

    `overrides` maps a price field (training, input, cached_input, output, example_limit) to a
    value; None values are ignored so a blank UI field means "keep the file's price".
    """
    prices = load_prices()
    name = (model or "").strip()
    base = name[3:].split(":", 1)[0] if name.startswith("ft:") else name
    row = prices.get(base)
    if row is None:
        for candidate in prices.values():
            if base in candidate.aliases:
                row = candidate
                break
    if row is None:
        known = ", ".join(sorted({*prices, *(a for p in prices.values() for a in p.aliases)}))
        raise ValueError(f"No prices for OpenAI model {model!r}. Known models: {known}. "
                         "Give the price yourself with --training-price, or pick a known model.")
    changed = []
    updates: dict = {}
    for key, value in (overrides or {}).items():
        if value is None or value == "":
            continue
        if key not in (*PRICE_FIELDS, "example_limit"):
            raise ValueError(f"Unknown price field {key!r}: use one of {', '.join(PRICE_FIELDS)}, example_limit.")
        number = float(value)
        if number < 0:
            raise ValueError(f"A price cannot be negative ({key}={value}).")
        updates[key] = int(number) if key == "example_limit" else number
        changed.append(key)
    if updates:
        row = replace(row, **updates, overridden=tuple(changed))
    return row


def example_limit_for(model: str | None) -> int | None:
    """The per-example token limit of a target model (what the Data check warns against), or None
    for no model or one the price file does not know: a self-hosted model has no such limit."""
    if not model or not model.strip():
        return None
    try:
        return get_price(model).example_limit
    except ValueError:
        return None


def auto_epochs(n_examples: int) -> int:
    """OpenAI's `auto` epochs (cookbook): 3, adjusted to land between 100 and 25,000 example-passes."""
    n = int(n_examples)
    if n <= 0:
        return TARGET_EPOCHS
    epochs = TARGET_EPOCHS
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
    elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return epochs


def resolve_epochs(epochs: int | str | None, n_examples: int) -> tuple[int, str]:
    """`(epochs, how)`: an explicit positive integer, or `auto` (also None/"") by the cookbook rule."""
    if epochs is None or (isinstance(epochs, str) and epochs.strip().lower() in ("", "auto")):
        value = auto_epochs(n_examples)
        n = n_examples
        if n <= 0:
            why = f"no examples yet, so the default {value}"
        elif n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
            why = f"{n} x 3 < 100 example-passes, so min(25, 100 // {n}) = {value}"
        elif n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
            why = f"{n:,} x 3 > 25,000 example-passes, so max(1, 25,000 // {n:,}) = {value}"
        else:
            why = f"{n:,} x 3 is between 100 and 25,000 example-passes, so the default 3"
        return value, f"auto epochs: {why}"
    try:
        value = int(str(epochs).strip())
    except ValueError:
        raise ValueError(f"Epochs must be a whole number or 'auto', not {epochs!r}.") from None
    if value < 1 or value > 50:
        raise ValueError(f"Epochs must be between 1 and 50 (OpenAI allows up to 50), not {value}.")
    return value, f"epochs: {value}, as chosen"


def billed_tokens_per_epoch(per_example: Iterable[int], limit: int | None) -> int:
    """Sum over examples of min(limit, tokens): OpenAI drops tokens past the per-example limit."""
    if limit is None:
        return int(sum(per_example))
    return int(sum(t if t < limit else limit for t in per_example))


def n_clipped(per_example: Sequence[int], limit: int | None) -> int:
    return 0 if limit is None else sum(1 for t in per_example if t > limit)


@dataclass
class TrainingCost:
    model: str
    epochs: int
    billing_tokens: int  # per epoch
    trained_tokens: int  # all epochs
    training_cost_usd: float | None
    price_per_1m: float | None
    clipped_examples: int
    billed_per_hour: bool = False
    how: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def training_cost(
    per_example: Sequence[int],
    price: ModelPrice,
    epochs: int | str | None = "auto",
    n_examples: int | None = None,
    sequences: int = 1,
) -> TrainingCost:
    """OpenAI's training bill for these per-example token counts (no tokenising here).

    `sequences` 2: the examples are preference pairs (prompt + chosen + prompt + rejected), each of whose two
    sequences may reach the per-example limit."""
    n = len(per_example) if n_examples is None else n_examples
    n_epochs, epochs_how = resolve_epochs(epochs, n)
    limit = price.example_limit * sequences
    what = "pair" if sequences == 2 else "example"
    billed = billed_tokens_per_epoch(per_example, limit)
    clipped = n_clipped(per_example, limit)
    trained = billed * n_epochs
    clip_note = (
        f"; {clipped:,} {what}(s) over the {limit:,}-token limit count as {limit:,}"
        if clipped else f"; no {what} is over the {limit:,}-token limit"
    )
    how = {
        "epochs": epochs_how,
        "billing_tokens": f"sum over {n:,} {what}s of min(tokens, {limit:,}) = {billed:,}{clip_note}",
        "trained_tokens": f"{n_epochs} epochs x {billed:,} = {trained:,}",
    }
    src = f" ({price.model}, {price.date}, {'overridden by you' if 'training' in price.overridden else price.source})"
    if price.billed_per_hour:
        cost = None
        how["training_cost_usd"] = (
            f"{price.model} is reinforcement fine-tuning, billed ${price.training_per_hour:g} per hour of "
            "training time, not per token: no token-based estimate is possible"
        )
    else:
        cost = trained / 1_000_000 * float(price.training or 0.0)
        how["training_cost_usd"] = (
            f"{trained:,} tokens x ${price.training:g} per 1M = ${cost:,.2f}"
            f" (${billed / 1_000_000 * float(price.training or 0):,.2f} per epoch){src}"
        )
    return TrainingCost(
        model=price.model,
        epochs=n_epochs,
        billing_tokens=billed,
        trained_tokens=trained,
        training_cost_usd=cost,
        price_per_1m=price.training,
        clipped_examples=clipped,
        billed_per_hour=price.billed_per_hour,
        how=how,
    )


@dataclass
class InferenceCost:
    requests_per_month: int
    avg_input_tokens: float
    avg_output_tokens: float
    monthly_usd: float | None
    how: str

    def to_dict(self) -> dict:
        return asdict(self)


def inference_cost(
    price: ModelPrice,
    requests_per_month: int,
    avg_input_tokens: float,
    avg_output_tokens: float,
    cached_share: float = 0.0,
) -> InferenceCost:
    """Monthly cost of serving the fine-tuned model: requests x (input x input price + output x output price).

    `cached_share` is the fraction of input tokens billed at the cached-input price (a shared
    system prompt); 0 by default because caching depends on how requests are sent.
    """
    if price.input is None or price.output is None:
        return InferenceCost(requests_per_month, avg_input_tokens, avg_output_tokens, None,
                             f"no inference price for {price.model}")
    cached_price = price.cached_input if price.cached_input is not None else price.input
    share = min(max(float(cached_share), 0.0), 1.0)
    input_rate = (1 - share) * price.input + share * cached_price
    per_request = (avg_input_tokens * input_rate + avg_output_tokens * price.output) / 1_000_000
    monthly = per_request * requests_per_month
    cached = f" ({share:.0%} of input at the cached ${cached_price:g})" if share else ""
    how = (
        f"{requests_per_month:,} requests/month x ({avg_input_tokens:,.0f} input tokens x ${price.input:g}/1M{cached}"
        f" + {avg_output_tokens:,.0f} output tokens x ${price.output:g}/1M) = ${monthly:,.2f}/month"
    )
    return InferenceCost(requests_per_month, avg_input_tokens, avg_output_tokens, monthly, how)
