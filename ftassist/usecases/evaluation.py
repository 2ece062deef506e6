"""Use cases of automatic evaluation: the arena's models measured on held-out chat examples.

`ftassist.arena.metrics` holds the measures (ROUGE-L, BLEU, exact match, loss/perplexity, the
forgetting check); this is the one way a person reaches them (`ftassist eval`, the assistant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ftassist.arena import metrics
from ftassist.arena import models as arena_models

from .context import Context, NotFound, UseCaseError
from .registry import use_case


@dataclass(frozen=True)
class ModelScores:
    """One model's figures on the held-out examples (None: does not apply, e.g. loss of an API model)."""

    model: str
    display_name: str
    kind: str
    rouge_l: float | None
    bleu: float | None
    exact_match: float | None
    loss: float | None
    perplexity: float | None
    n_generated: int
    n_generation_errors: int
    first_error: str | None = None
    note: str | None = None
    n_tokens: int | None = None  # assistant tokens scored for the loss
    forgetting: dict[str, Any] | None = None  # vs the first model: base/tuned perplexity on general text, ratio, forgot
    predictions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation:
    data: str
    n_examples: int
    n_scored: int  # examples that end with an assistant turn (the reference)
    labels: bool  # the references read as labels: exact match is the figure to read
    sampling: dict[str, Any]
    models: list[ModelScores]
    references: list[str]


@use_case(assistant=True, confirm=True)
def evaluate_models(ctx: Context, models: list[str], data: str, max_examples: int | None = 50,
                    temperature: float = 0.0, max_new_tokens: int = 256) -> Evaluation:
    """Measure arena models on held-out chat examples: ROUGE-L, BLEU, exact match, loss and perplexity
    (local models) and, for local models after the first, forgetting against the first.

    Each example's prompt is all its turns but the last assistant one; that turn is the reference.

    Args:
        models: Model ids or display names; put the base model first to get the forgetting check.
        data: A chat JSONL file of examples the models were not trained on (the validation split).
        max_examples: Use at most this many examples (None: all).
        temperature: Sampling temperature; 0 (greedy) makes the figures repeatable.
        max_new_tokens: The longest answer, in tokens.
    """
    ids = []
    for name in models:
        found = arena_models.find_model(ctx.store, (name or "").strip())
        if found is None:
            raise NotFound(f"No model {name!r} in the arena: `ftassist arena models` lists them.")
        ids.append(found["id"])
    try:
        result = metrics.evaluate(ctx.store, ids, data, max_examples,
                                  sampling={"temperature": temperature, "max_new_tokens": max_new_tokens, "seed": 0})
    except FileNotFoundError:
        raise UseCaseError(f"No file at {data}: give the held-out chat JSONL (e.g. the validation split).") from None
    except ValueError as exc:  # a bad line (with its number), bad sampling, nothing to score
        raise UseCaseError(str(exc)) from None
    names = set(ModelScores.__dataclass_fields__)
    scores = [ModelScores(**{k: v for k, v in row.items() if k in names}) for row in result["models"]]
    return Evaluation(data=result["data"], n_examples=result["n_examples"], n_scored=result["n_scored"],
                      labels=result["labels"], sampling=result["sampling"], models=scores,
                      references=result["references"])
