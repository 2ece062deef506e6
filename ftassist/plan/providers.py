"""Where a fine-tune can run today, for this person, and which OpenAI models are about to shut down.

Why a station of its own: availability changes by date (OpenAI's self-serve fine-tuning closes in
steps, base models shut down), so every place that suggests a path (the Decide guide, the estimate,
the defaults of the Data and Train tabs, the page header) asks here with a `today` rather than
carrying its own copy of the dates. The facts live in `providers.json`, each with its source and
the date it was read; this module only reads them and answers for a given day.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, NamedTuple

PROVIDERS_FILE = Path(__file__).with_name("providers.json")
PROVIDER_IDS = ("local", "hf-jobs", "together", "openai")
WARN_WITHIN_DAYS = 90  # a default model that shuts down sooner than this gets a warning beside it
ALTERNATIVES = "Hugging Face Jobs (a rented GPU), Together AI (hosted open-model fine-tuning) or a local GPU"


def today() -> date:
    """The current date: the one place the clock is read, so a caller (or a test) can pass its own day."""
    return date.today()


@lru_cache(maxsize=1)
def load() -> dict[str, Any]:
    """The provider file, parsed once."""
    with open(PROVIDERS_FILE, encoding="utf-8") as f:
        return json.load(f)["providers"]


def provider(provider_id: str) -> dict[str, Any]:
    """One provider's facts; ValueError naming the known ones for a wrong id."""
    providers = load()
    if provider_id not in providers:
        raise ValueError(f"Unknown provider {provider_id!r}: use one of {', '.join(providers)}.")
    return providers[provider_id]


def as_date(value: str | date | None) -> date:
    if value is None:
        return today()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-11-30.") from None


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


# -- availability --------------------------------------------------------------------------------
class Availability(NamedTuple):
    """Whether a path is open to this person on a given day, why (or why not), and until when."""

    available: bool
    why: str
    deadline: date | None


def openai_dates() -> dict[str, date]:
    """OpenAI's wind-down dates: closed_to_new_organisations_since, closed_to_inactive_organisations_since,
    no_new_jobs_after."""
    facts = provider("openai")["availability"]
    keys = ("closed_to_new_organisations_since", "closed_to_inactive_organisations_since", "no_new_jobs_after")
    return {key: date.fromisoformat(facts[key]) for key in keys}


def availability(provider_id: str, today: str | date | None = None,
                 openai_customer: bool | None = None) -> Availability:
    """May this person start a fine-tune with `provider_id` on `today`?

    `openai_customer`: True for an organisation that runs OpenAI fine-tuning now (it has fine-tuned and
    used a fine-tuned model in the past 60 days); False or None (unknown) for anyone else, who is
    treated as a newcomer, so a closed path is never suggested on a guess.
    """
    day = as_date(today)
    facts = provider(provider_id)
    if provider_id != "openai":
        return Availability(True, f"open to {facts['availability']['open_to']}", None)
    d = openai_dates()
    last = d["no_new_jobs_after"]
    if day > last:
        return Availability(False, f"OpenAI takes no new fine-tuning jobs after {last} (self-serve fine-tuning "
                                   f"has wound down); use {ALTERNATIVES}.", None)
    if openai_customer:
        left = (last - day).days
        return Availability(True, f"open to active OpenAI fine-tuning customers until {last} ({_days(left)} left), "
                                  "then no new jobs for anyone", last)
    if day >= d["closed_to_inactive_organisations_since"]:
        return Availability(False, f"closed since {d['closed_to_inactive_organisations_since']} to organisations "
                                   "with no inference on a fine-tuned model in the past 60 days (and since "
                                   f"{d['closed_to_new_organisations_since']} to those that never fine-tuned); "
                                   f"use {ALTERNATIVES}.", None)
    if day >= d["closed_to_new_organisations_since"]:
        return Availability(False, f"closed since {d['closed_to_new_organisations_since']} to organisations that "
                                   "never ran OpenAI fine-tuning (say you are a customer if yours has); use "
                                   f"{ALTERNATIVES}.", None)
    first = d["closed_to_new_organisations_since"]
    return Availability(True, f"open to every organisation until {first} ({_days((first - day).days)} left); "
                              f"only active customers may start jobs after that, and nobody after {last}", first)


def openai_dpo_models() -> list[str]:
    """The OpenAI base models that take preference (DPO) fine-tuning, as the provider file lists them."""
    return list(provider("openai").get("dpo_models") or [])


# -- model shutdowns -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Shutdown:
    """An OpenAI base model's shutdown (its fine-tunes go with it), seen from one day."""

    model: str
    shutdown_date: date
    days_left: int  # 0 or less: already shut down

    @property
    def shut_down(self) -> bool:
        return self.days_left <= 0

    def sentence(self) -> str:
        if self.shut_down:
            return f"{self.model} shut down on {self.shutdown_date}: OpenAI no longer serves it or its fine-tunes"
        return f"{self.model} shuts down on {self.shutdown_date} ({_days(self.days_left)})"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "shutdown_date": self.shutdown_date.isoformat(), "days_left": self.days_left,
                "shut_down": self.shut_down}


def base_model_name(model: str) -> str:
    """The dated base model of a name, an alias (gpt-4.1-mini) or a fine-tune (ft:BASE:org::id)."""
    name = (model or "").strip()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    if name in provider("openai")["models"]:
        return name
    from . import pricing  # the price file knows the aliases

    try:
        return pricing.get_price(name).model
    except ValueError:
        return name


def shutdown_of(model: str, today: str | date | None = None) -> Shutdown | None:
    """The model's shutdown as seen on `today`, or None when none is announced (or it is not OpenAI's)."""
    name = base_model_name(model)
    row = provider("openai")["models"].get(name)
    if not row or not row.get("shutdown_date"):
        return None
    when = date.fromisoformat(row["shutdown_date"])
    return Shutdown(name, when, (when - as_date(today)).days)


def shutting_down(within_days: int = WARN_WITHIN_DAYS, today: str | date | None = None,
                  include_past: bool = False) -> list[Shutdown]:
    """Models that shut down within `within_days` of `today` (and those already shut, with include_past),
    soonest first."""
    found = [s for s in (shutdown_of(m, today) for m in provider("openai")["models"]) if s is not None]
    kept = [s for s in found if s.days_left <= within_days and (include_past or not s.shut_down)]
    return sorted(kept, key=lambda s: (s.shutdown_date, s.model))


def model_warning(model: str | None, today: str | date | None = None, within_days: int = WARN_WITHIN_DAYS) -> str:
    """One line to show beside a model shutting down within `within_days` (or already shut); "" otherwise."""
    if not model:
        return ""
    found = shutdown_of(model, today)
    if found is None or found.days_left > within_days:
        return ""
    return found.sentence()


def preferred_model(candidates: Iterable[str], current: str, today: str | date | None = None,
                    within_days: int = WARN_WITHIN_DAYS) -> str:
    """The default to show: `current` unless it shuts down within `within_days` and a candidate does not;
    a model already shut down is never kept when any candidate still runs."""

    def days(model: str) -> float:
        found = shutdown_of(model, today)
        return float("inf") if found is None else found.days_left

    pool = [current, *[c for c in candidates if c != current]]
    lasting = [m for m in pool if days(m) > within_days]
    if lasting:
        return lasting[0]
    running = [m for m in pool if days(m) > 0]
    return running[0] if running else current


# -- the whole picture ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ProviderStatus:
    """One provider as `ftassist providers` shows it: open or not to this person today, and the facts."""

    id: str
    name: str
    available: bool
    why: str
    deadline: str | None  # ISO date until which it stays open to this person, when there is one
    trains: dict[str, Any]
    billing: str
    needs: str
    data_leaves_machine: bool
    prices: dict[str, Any] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)  # OpenAI's wind-down dates
    models: list[dict[str, Any]] = field(default_factory=list)  # OpenAI base models with a shutdown date
    sources: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prices(provider_id: str, facts: dict[str, Any]) -> dict[str, Any]:
    if provider_id == "hf-jobs":
        return {"unit": "USD per hour, billed by the minute",
                "flavors": {name: f["usd_per_hour"] for name, f in facts["flavors"].items()}}
    if provider_id == "together":
        return {"unit": "USD per 1M tokens", "rates": facts["rates_usd_per_1m_tokens"],
                "brackets": facts["size_brackets"], "note": facts["rates_note"]}
    if provider_id == "openai":
        return {"unit": "USD per 1M training tokens", "note": "per model in prices.json (`ftassist estimate`)"}
    return {}


def status(today: str | date | None = None, openai_customer: bool | None = None) -> list[ProviderStatus]:
    """Every provider's availability to this person on `today`, with dates, prices and sources."""
    day = as_date(today)
    out = []
    for provider_id in PROVIDER_IDS:
        facts = provider(provider_id)
        open_, why, deadline = availability(provider_id, day, openai_customer)
        extra: dict[str, Any] = {}
        if provider_id == "openai":
            extra["dates"] = {key: value.isoformat() for key, value in openai_dates().items()}
            extra["models"] = [s.to_dict() for s in shutting_down(10**6, day, include_past=True)]
        out.append(ProviderStatus(
            id=provider_id, name=facts["name"], available=open_, why=why,
            deadline=deadline.isoformat() if deadline else None, trains=facts["trains"], billing=facts["billing"],
            needs=facts["needs"], data_leaves_machine=bool(facts["data_leaves_machine"]),
            prices=_prices(provider_id, facts), sources=list(facts.get("sources", [])), **extra))
    return out


def paths_without_a_gpu(today: str | date | None = None) -> str:
    """The ways to fine-tune without a GPU here, for the page header (OpenAI only while it takes jobs)."""
    text = "rent a GPU on Hugging Face Jobs or use hosted open-model fine-tuning (Together AI)"
    last = openai_dates()["no_new_jobs_after"]
    if as_date(today) <= last:
        text += f"; OpenAI fine-tuning only for its active customers, until {last}"
    return text


# -- Together AI's per-token bill ------------------------------------------------------------------
# Upper bounds (billions of parameters) of the size brackets, in the order of `size_brackets` in the file.
TOGETHER_BRACKET_LIMITS_B = (16.0, 69.0, 100.0, float("inf"))


@dataclass(frozen=True)
class TokenBill:
    """What a Together fine-tune costs: billed tokens x a rate per 1M tokens; `usd` None (with `reason`)
    when the rate is not known."""

    usd: float | None
    billed_tokens: int
    bracket: str
    rate_usd_per_1m: float | None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def together_bracket(params_b: float) -> str:
    """The model-size bracket (as `size_brackets` in the provider file names it) of a model of `params_b` billions."""
    if not isinstance(params_b, (int, float)) or params_b <= 0:
        raise ValueError(f"the model size must be a positive number of billions of parameters (got {params_b!r}).")
    names = provider("together")["size_brackets"]
    return next(name for name, limit in zip(names, TOGETHER_BRACKET_LIMITS_B) if params_b <= limit)


def together_cost(train_tokens: int, n_epochs: int, params_b: float, *, valid_tokens: int = 0, n_evals: int = 0,
                  objective: str = "sft", method: str = "lora", rate_usd_per_1m: float | None = None) -> TokenBill:
    """Together's bill: (n_epochs x training tokens + n_evals x validation tokens) x the rate per 1M tokens.

    The rate is `rate_usd_per_1m` when given, else the provider file's
    `rates_usd_per_1m_tokens[bracket][objective][method]` (objective "sft" or "dpo", method "lora" or
    "full"); when neither is known the bill has `usd` None and says why, never a guess.
    """
    if objective not in ("sft", "dpo"):
        raise ValueError(f"objective {objective!r} is unknown: use 'sft' or 'dpo'.")
    if method not in ("lora", "full"):
        raise ValueError(f"method {method!r}: Together trains with 'lora' or 'full'.")
    for name, value in (("train_tokens", train_tokens), ("n_epochs", n_epochs), ("valid_tokens", valid_tokens),
                        ("n_evals", n_evals)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative whole number (got {value!r}).")
    bracket = together_bracket(params_b)
    billed = n_epochs * train_tokens + n_evals * valid_tokens
    rate = rate_usd_per_1m
    if rate is None:
        facts = provider("together")
        table = facts.get("rates_usd_per_1m_tokens") or {}
        rate = ((table.get(bracket) or {}).get(objective) or {}).get(method)
        if rate is None:
            return TokenBill(None, billed, bracket, None,
                             f"no {objective.upper()} {method} rate for models {bracket} in the provider file: "
                             + facts.get("rates_note", "give the rate yourself"))
    return TokenBill(billed * float(rate) / 1e6, billed, bracket, float(rate))


# -- Hugging Face Jobs' flavors ------------------------------------------------------------------------
@dataclass(frozen=True)
class Flavor:
    """One GPU hardware flavor of Hugging Face Jobs and what it costs (the provider file's figures)."""

    name: str
    gpu: str
    gpus: int
    gpu_memory_gb: float  # all its GPUs together
    usd_per_hour: float | None

    @property
    def per_gpu_gb(self) -> float:
        """What one training process sees: DDP keeps a whole copy of the model on every GPU."""
        return self.gpu_memory_gb / max(1, self.gpus)

    def describe(self) -> str:
        price = f"${self.usd_per_hour:.2f}/h" if self.usd_per_hour is not None else "price unknown"
        count = f"{self.gpus} x " if self.gpus > 1 else ""
        return f"{self.name} ({count}{self.gpu}, {self.gpu_memory_gb:g} GB, {price})"


def jobs_flavors() -> list[Flavor]:
    """Hugging Face Jobs' GPU flavors and hourly prices, as the provider file lists them (read on its date).

    Here rather than in the train station so the estimate (plan) can price them without importing train;
    `ftassist.train.hf_jobs` can take these instead of its own copy.
    """
    rows = provider("hf-jobs")["flavors"]
    return [Flavor(name, f["gpu"], int(f["gpus"]), float(f["gpu_memory_gb"]), f.get("usd_per_hour"))
            for name, f in rows.items()]


def jobs_startup_minutes() -> float:
    """Billed minutes before a job's first step (image, installs, base model): the provider file's assumption."""
    return float(provider("hf-jobs").get("startup_minutes") or 0)
