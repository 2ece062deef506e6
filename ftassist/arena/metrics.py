"""Automatic metrics, base vs fine-tuned, on the held-out split.

What each number answers:

- loss / perplexity on the assistant tokens of the validation examples: does the tuned
  model find the reference answers more likely? (the same quantity training minimises,
  measured on data it did not see);
- ROUGE-L and BLEU of generated answers against the references (the `rouge-score` and
  `sacrebleu` packages, the implementations papers report, never re-implemented here);
- exact-match accuracy, when the references are labels (short answers from a small set);
- task accuracy with a per-class table, when the references are labels;
- a forgetting check: base vs fine-tuned on general-knowledge prompts outside the task
  (`forgetting.jsonl`, shipped with the app): how many they answer right and, for local models,
  the perplexity of the reference answers, since a fine-tune that wins on its task but degrades
  general answers is a known pitfall;
- an overfitting signal from the run's own train and validation losses (its events file);
- 95% intervals by bootstrap over the examples (the same resamples for every measure), where
  there are enough examples for one to mean something.

Loss and perplexity need the weights, so they apply to local models (`hf`, `hf_adapter`);
for API models they are reported as None with the reason. The functions that measure a model
take it loaded (`models.load_registered(store, id)`); `evaluate` takes the store and ids.
"""

from __future__ import annotations

import json
import math
import re
import string
from pathlib import Path
from typing import Any

from . import models

GENERAL_TEXT_PATH = Path(__file__).with_name("general_text.txt")
FORGETTING_PATH = Path(__file__).with_name("forgetting.jsonl")
BOOTSTRAP_ROUNDS = 1000
MIN_EXAMPLES_FOR_INTERVAL = 5  # below this a bootstrap interval says more about the resampling than the model
GENERAL_MAX_NEW_TOKENS = 32  # the general prompts ask for a few words
FORGET_ACCURACY_DROP = 0.10  # general answers right 10 points less than the base: it forgot


# -- data ---------------------------------------------------------------------------------


def load_examples(path: str | Path, max_examples: int | None = None) -> list[dict]:
    """Canonical chat examples ({"messages": [...]}) from a JSONL file; lines that are not skipped silently
    would hide problems, so a line that is not a chat example raises with its line number."""
    examples: list[dict] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc}); run `ftassist check` on the file.") from None
            messages = obj.get("messages") if isinstance(obj, dict) else None
            if not isinstance(messages, list) or not messages:
                raise ValueError(f"{path}:{number}: no messages list; run `ftassist check` on the file.")
            examples.append(obj)
            if max_examples and len(examples) >= max_examples:
                break
    return examples


def split_prompt_reference(example: dict) -> tuple[list[dict], str] | None:
    """(messages before the last assistant turn, that turn's content), or None when there is none."""
    messages = [{"role": m.get("role"), "content": m.get("content") or ""} for m in example["messages"]]
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "assistant":
            if i == 0:
                return None
            return messages[:i], messages[i]["content"]
    return None


def general_texts() -> list[str]:
    """The shipped general-text sample (one sentence a line) for the forgetting check."""
    return [line.strip() for line in GENERAL_TEXT_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def forgetting_examples() -> list[dict]:
    """The shipped general-knowledge prompts (chat examples with a short reference answer, and optionally
    `accept`: other ways to say it) that the forgetting check asks base and fine-tuned models."""
    return load_examples(FORGETTING_PATH)


# -- loss and perplexity ------------------------------------------------------------------


def _assistant_spans(loaded: "models.LocalModel", messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of the assistant turns in it.

    Each span runs from the end of the generation prompt to the end of that assistant turn
    (its end-of-turn marker included, since the model must learn to stop), found by
    rendering growing prefixes of the conversation, which works for any template that
    renders a prefix as a prefix. Otherwise we fall back to the content string itself.
    """
    full = loaded.chat_text(messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    search_from = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = loaded.chat_text(messages[:i], add_generation_prompt=True) if i else ""
        upto = loaded.chat_text(messages[: i + 1], add_generation_prompt=False)
        if full.startswith(upto) and upto.startswith(prefix) and len(upto) > len(prefix):
            end = len(upto.rstrip("\n"))
            spans.append((len(prefix), end))
            search_from = end
        else:
            at = full.find(m["content"], search_from)
            if at >= 0 and m["content"]:
                spans.append((at, at + len(m["content"])))
                search_from = at + len(m["content"])
    return full, spans


def _token_nll(loaded: "models.LocalModel", items: list[tuple[str, list[tuple[int, int]] | None]],
               batch_size: int, max_length: int) -> list[tuple[float, int]]:
    """(sum of NLL, number of scored tokens) per item, for texts with the spans to score
    (None: every token after the first). An item with no token to score is (0.0, 0)."""
    import torch

    tok = loaded.tokenizer
    per_item: list[tuple[float, int]] = []
    old_side = tok.padding_side
    tok.padding_side = "right"
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            enc = tok(
                [t for t, _ in chunk], return_tensors="pt", padding=True, truncation=True, max_length=max_length,
                add_special_tokens=any(s is None for _, s in chunk), return_offsets_mapping=True,
            )
            offsets = enc.pop("offset_mapping")
            labels = enc["input_ids"].clone()
            labels[enc["attention_mask"] == 0] = -100
            for row, (_, spans) in enumerate(chunk):
                if spans is None:
                    continue
                keep = torch.zeros(labels.shape[1], dtype=torch.bool)
                for j, (a, b) in enumerate(offsets[row].tolist()):
                    if b > a and any(s <= a < e for s, e in spans):
                        keep[j] = True
                labels[row, ~keep] = -100
            enc = {k: v.to(loaded.device) for k, v in enc.items()}
            labels = labels.to(loaded.device)
            with loaded.lock, torch.no_grad():
                logits = loaded.model(**enc).logits.float()
            shift_logits = logits[:, :-1, :]
            shift_labels = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
                ignore_index=-100, reduction="none",
            ).view(shift_labels.shape)
            mask = shift_labels != -100
            sums = (nll * mask).sum(dim=1).tolist()
            counts = mask.sum(dim=1).tolist()
            per_item.extend((float(a), int(b)) for a, b in zip(sums, counts))
    finally:
        tok.padding_side = old_side
    return per_item


def loss_and_perplexity(loaded: "models.LocalModel", examples: list[dict], *, batch_size: int = 4,
                        max_length: int = 2048) -> dict[str, Any]:
    """Mean NLL per assistant token over `examples` (token-weighted, like a trainer's eval loss) and exp of it."""
    items = []
    for ex in examples:
        messages = [{"role": m.get("role"), "content": m.get("content") or ""} for m in ex["messages"]]
        items.append(_assistant_spans(loaded, messages))
    per_item = _token_nll(loaded, items, batch_size, max_length)
    total, count = sum(a for a, _ in per_item), sum(b for _, b in per_item)
    skipped = sum(1 for _, b in per_item if b == 0)
    if count == 0:
        return {"loss": None, "perplexity": None, "n_examples": len(examples), "n_tokens": 0, "n_skipped": skipped,
                "note": "no assistant tokens to score", "per_example": per_item}
    loss = total / count
    return {"loss": loss, "perplexity": models.perplexity_from_loss(loss), "n_examples": len(examples),
            "n_tokens": count, "n_skipped": skipped, "per_example": per_item}


def text_perplexity(loaded: "models.LocalModel", texts: list[str], *, batch_size: int = 8,
                    max_length: int = 512) -> dict[str, Any]:
    """Perplexity of plain texts (every token predicted from the ones before it)."""
    per_item = _token_nll(loaded, [(t, None) for t in texts if t.strip()], batch_size, max_length)
    total, count = sum(a for a, _ in per_item), sum(b for _, b in per_item)
    loss = total / count if count else None
    return {"loss": loss, "perplexity": None if loss is None else models.perplexity_from_loss(loss),
            "n_texts": len(texts), "n_tokens": count}


def forgetting_check(base: "models.LocalModel", tuned: "models.LocalModel",
                     texts: list[str] | None = None, *, tolerance: float = 1.10) -> dict[str, Any]:
    """Perplexity on general text before and after fine-tuning.

    `forgot` is True when the tuned model's perplexity exceeds the base's by more than
    `tolerance` (10% by default): a hint to lower the learning rate or epochs, or to mix
    general data back into the training set.
    """
    texts = texts if texts is not None else general_texts()
    before = text_perplexity(base, texts)
    after = text_perplexity(tuned, texts)
    b, a = before["perplexity"], after["perplexity"]
    ratio = (a / b) if (a is not None and b) else None
    return {
        "base_perplexity": b,
        "tuned_perplexity": a,
        "base_loss": before["loss"],
        "tuned_loss": after["loss"],
        "ratio": ratio,
        "forgot": bool(ratio is not None and ratio > tolerance),
        "tolerance": tolerance,
        "n_texts": before["n_texts"],
        "n_tokens": before["n_tokens"],
    }


# -- text metrics ---------------------------------------------------------------------------


def _rouge_scores(predictions: list[str], references: list[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]


def bleu_statistics(predictions: list[str], references: list[str]) -> list[list[int]]:
    """sacrebleu's per-sentence BLEU statistics ([hypothesis length, reference length, 4 n-gram matches,
    4 n-gram totals]); corpus BLEU is `bleu_from_statistics` of their sum, which is how a bootstrap
    resamples it without re-tokenising every round."""
    from sacrebleu.metrics.bleu import BLEU

    return [list(map(int, row)) for row in BLEU()._extract_corpus_statistics(list(predictions), [list(references)])]


def bleu_from_statistics(stats: Any) -> float:
    """Corpus BLEU (0-100) from summed sentence statistics, exactly as sacrebleu's corpus_bleu computes it."""
    from sacrebleu.metrics.bleu import BLEU

    stats = [int(x) for x in stats]
    return float(BLEU.compute_bleu(correct=stats[2:6], total=stats[6:10], sys_len=stats[0], ref_len=stats[1]).score)


def text_metrics(predictions: list[str], references: list[str]) -> dict[str, Any]:
    """ROUGE-L F1 (mean over pairs, 0-1, rouge-score with stemming) and corpus BLEU (0-100, sacrebleu).

    Note: rouge-score's tokenizer keeps only ASCII letters and digits, so it scores
    non-Latin scripts as empty; BLEU (sacrebleu's 13a tokenizer) is the figure to read there.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: they must pair up.")
    if not predictions:
        return {"rouge_l": None, "bleu": None, "n": 0}
    import sacrebleu

    rouge = _rouge_scores(predictions, references)
    bleu = sacrebleu.corpus_bleu(list(predictions), [list(references)])
    return {"rouge_l": sum(rouge) / len(rouge), "bleu": float(bleu.score), "n": len(predictions)}


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_label(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    text = str(text).lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_accuracy(predictions: list[str], references: list[str]) -> dict[str, Any]:
    """Share of predictions equal to their reference after `normalize_label`."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: they must pair up.")
    correct = sum(normalize_label(p) == normalize_label(r) for p, r in zip(predictions, references))
    n = len(predictions)
    return {"accuracy": correct / n if n else None, "correct": correct, "n": n}


def looks_like_labels(references: list[str], max_words: int = 3) -> bool:
    """True when the references read as class labels: all short and drawn from a small set."""
    if len(references) < 2:
        return False
    normal = [normalize_label(r) for r in references]
    if any(not r or len(r.split()) > max_words for r in normal):
        return False
    return len(set(normal)) <= max(2, min(20, len(normal) // 2))


OTHER_LABEL = "(other)"


def per_class_table(predictions: list[str], references: list[str]) -> list[dict[str, Any]]:
    """Per reference label (normalised): how many examples have it (`n`), how many it was predicted,
    how many right, recall, precision and F1. A prediction that is no label at all counts for no class
    and shows in an "(other)" row, so the table accounts for every answer."""
    refs = [normalize_label(r) for r in references]
    preds = [normalize_label(p) for p in predictions]
    labels = sorted(set(refs))
    rows = []
    for label in labels:
        n = sum(r == label for r in refs)
        predicted = sum(p == label for p in preds)
        correct = sum(r == label and p == label for r, p in zip(refs, preds))
        recall = correct / n if n else None
        precision = correct / predicted if predicted else None
        f1 = (2 * precision * recall / (precision + recall)) if precision and recall else 0.0
        rows.append({"label": label, "n": n, "predicted": predicted, "correct": correct, "recall": recall,
                     "precision": precision, "f1": f1})
    other = sum(p not in labels for p in preds)
    if other:
        rows.append({"label": OTHER_LABEL, "n": 0, "predicted": other, "correct": 0, "recall": None,
                     "precision": None, "f1": None})
    return rows


def answer_matches(prediction: str, accepted: list[str]) -> bool:
    """True when one of the accepted answers appears, as whole words, in the prediction (both normalised):
    "The capital is Paris." answers "Paris"."""
    said = f" {normalize_label(prediction)} "
    return any(f" {normalize_label(a)} " in said for a in accepted if normalize_label(a))


# -- intervals ------------------------------------------------------------------------------------------


def bootstrap_indices(n: int, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0):
    """`rounds` resamples (with replacement) of n example positions, one row each: every measure of a
    model is resampled over the same rows, so their intervals describe the same uncertainty."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(rounds, n))


def percentile_interval(values: Any, confidence: float = 0.95) -> list[float] | None:
    """The (low, high) percentile interval of bootstrap statistics (non-finite ones left out)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def mean_interval(values: list[float], indices: Any) -> list[float] | None:
    """Bootstrap interval of a mean (ROUGE-L, exact match) over the resamples `indices`."""
    import numpy as np

    if len(values) < MIN_EXAMPLES_FOR_INTERVAL:
        return None
    return percentile_interval(np.asarray(values, dtype=float)[indices].mean(axis=1))


def bleu_interval(stats: list[list[int]], indices: Any) -> list[float] | None:
    """Bootstrap interval of corpus BLEU: the sentence statistics summed per resample."""
    import numpy as np

    if len(stats) < MIN_EXAMPLES_FOR_INTERVAL:
        return None
    sums = np.asarray(stats, dtype=np.int64)[indices].sum(axis=1)
    return percentile_interval([bleu_from_statistics(row) for row in sums])


def loss_interval(per_example: list[tuple[float, int]], indices: Any) -> list[float] | None:
    """Bootstrap interval of the token-weighted loss (resampled examples' NLL over their tokens)."""
    import numpy as np

    if len(per_example) < MIN_EXAMPLES_FOR_INTERVAL:
        return None
    nll = np.asarray([a for a, _ in per_example], dtype=float)[indices].sum(axis=1)
    tokens = np.asarray([b for _, b in per_example], dtype=float)[indices].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return percentile_interval(nll / tokens)


def _sized(indices: Any, n: int, n_full: int) -> Any:
    """The resample rows for a measure over `n` examples: the shared ones, or, when some examples have no
    figure (an answer failed: n < n_full), fresh resamples of that size from the same seed."""
    return indices if n == n_full else bootstrap_indices(n, rounds=indices.shape[0])


# -- the run's own losses -------------------------------------------------------------------------------


def overfitting_signal(run_dir: str | Path | None, *, rise: float = 0.05) -> dict[str, Any]:
    """What the training run's own losses say: the last train loss, the validation losses, and whether the
    validation loss rose (by more than `rise`, 5%) from its best while training went on, the usual sign of
    overfitting. `overfitting` is None when the run had no validation loss to judge by."""
    from ftassist.train import events as run_events

    out: dict[str, Any] = {"train_loss": None, "eval_loss": None, "best_eval_loss": None, "best_eval_step": None,
                           "last_eval_step": None, "gap": None, "overfitting": None, "note": None}
    if not run_dir or not Path(run_dir).is_dir():
        out["note"] = "no training run is known for this model"
        return out
    events, _ = run_events.read_events(run_dir)
    train = [(e.get("step"), e["loss"]) for e in events if e.get("type") == "log" and _finite(e.get("loss"))]
    evals = [(e.get("step"), e["eval_loss"]) for e in events if e.get("type") == "eval" and _finite(e.get("eval_loss"))]
    if train:
        out["train_loss"] = float(train[-1][1])
    if not evals:
        out["note"] = "the run had no validation loss (no validation split)"
        return out
    best_step, best = min(evals, key=lambda item: item[1])
    last_step, last = evals[-1]
    out.update(eval_loss=float(last), best_eval_loss=float(best), best_eval_step=best_step, last_eval_step=last_step)
    if out["train_loss"] is not None:
        out["gap"] = out["eval_loss"] - out["train_loss"]
    out["overfitting"] = bool(len(evals) >= 2 and last > best * (1 + rise))
    if out["overfitting"]:
        out["note"] = (f"validation loss rose from {best:.3g} (step {best_step}) to {last:.3g} (step {last_step}) "
                       "while training went on")
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# -- the forgetting check on general prompts -------------------------------------------------------------


def general_answers(store, model_id: str, examples: list[dict], sampling: dict,
                    batch_size: int | None = None) -> dict[str, Any]:
    """One model on the general prompts: which it answered right (`answer_matches`) and, for a local model,
    the loss of the reference answers (`per_example` NLL and tokens)."""
    row = models.get_model(store, model_id)
    pairs = [split_prompt_reference(ex) for ex in examples]
    accepted = [[ref, *(ex.get("accept") or [])] for ex, (_, ref) in zip(examples, pairs)]
    settings = dict(sampling, max_new_tokens=min(int(sampling["max_new_tokens"]), GENERAL_MAX_NEW_TOKENS))
    answers = models.generate(store, row["id"], [p for p, _ in pairs], settings, batch_size=batch_size)
    right = [None if a.get("error") else float(answer_matches(a["text"], acc)) for a, acc in zip(answers, accepted)]
    out: dict[str, Any] = {"right": right, "answers": [a["text"] for a in answers], "loss": None, "per_example": None}
    if row["kind"] in ("hf", "hf_adapter"):
        scored = loss_and_perplexity(models.load_registered(store, row["id"]), examples)
        out["loss"], out["per_example"] = scored["loss"], scored["per_example"]
    return out


def compare_general(base: dict[str, Any], tuned: dict[str, Any], *, rounds: int = BOOTSTRAP_ROUNDS,
                    tolerance: float = 1.10) -> dict[str, Any]:
    """Base vs fine-tuned on the general prompts: the share each answered right, the change (with a paired
    bootstrap interval over the prompts both answered), and for local models the perplexity of the reference
    answers and its ratio. `forgot`: right answers fell by more than 10 points, or perplexity rose by more
    than `tolerance`."""
    import numpy as np

    both = [(b, t) for b, t in zip(base["right"], tuned["right"]) if b is not None and t is not None]
    out: dict[str, Any] = {"n_prompts": len(both), "base_accuracy": None, "tuned_accuracy": None,
                           "accuracy_change": None, "accuracy_change_interval": None,
                           "base_perplexity": None, "tuned_perplexity": None, "ratio": None}
    if both:
        b = np.asarray([x for x, _ in both])
        t = np.asarray([y for _, y in both])
        out.update(base_accuracy=float(b.mean()), tuned_accuracy=float(t.mean()),
                   accuracy_change=float(t.mean() - b.mean()))
        if len(both) >= MIN_EXAMPLES_FOR_INTERVAL:
            idx = bootstrap_indices(len(both), rounds)
            out["accuracy_change_interval"] = percentile_interval(t[idx].mean(axis=1) - b[idx].mean(axis=1))
    if base["loss"] is not None and tuned["loss"] is not None:
        out["base_perplexity"] = models.perplexity_from_loss(base["loss"])
        out["tuned_perplexity"] = models.perplexity_from_loss(tuned["loss"])
        out["ratio"] = out["tuned_perplexity"] / out["base_perplexity"] if out["base_perplexity"] else None
    dropped = out["accuracy_change"] is not None and out["accuracy_change"] < -FORGET_ACCURACY_DROP
    out["forgot"] = bool(dropped or (out["ratio"] is not None and out["ratio"] > tolerance))
    return out


# -- everything together -----------------------------------------------------------------------


def _model_metrics(store, model_id: str, examples: list[dict], pairs: list[tuple[list[dict], str]],
                   sampling: dict, batch_size: int | None, indices: Any) -> dict[str, Any]:
    row = models.get_model(store, model_id)
    out: dict[str, Any] = {"model": row["id"], "display_name": row["display_name"], "kind": row["kind"],
                           "run_dir": row["config"].get("run_dir")}
    intervals: dict[str, list[float] | None] = {}
    if row["kind"] in ("hf", "hf_adapter"):
        scored = loss_and_perplexity(models.load_registered(store, row["id"]), examples)
        per_example = scored.pop("per_example")
        out.update(scored)
        low_high = loss_interval(per_example, _sized(indices, len(per_example), indices.shape[1])) \
            if out["loss"] is not None else None
        intervals["loss"] = low_high
        intervals["perplexity"] = [models.perplexity_from_loss(x) for x in low_high] if low_high else None
    else:
        out.update({"loss": None, "perplexity": None, "note": "API model: loss and perplexity need local weights"})
    answers = models.generate(store, row["id"], [p for p, _ in pairs], sampling, batch_size=batch_size)
    ok = [(a["text"], ref) for a, (_, ref) in zip(answers, pairs) if not a.get("error")]
    out["n_generated"] = len(ok)
    out["n_generation_errors"] = len(pairs) - len(ok)
    errors = [a["error"] for a in answers if a.get("error")]
    out["first_error"] = errors[0] if errors else None
    preds, refs = [p for p, _ in ok], [r for _, r in ok]
    out.update({k: v for k, v in text_metrics(preds, refs).items() if k != "n"})
    out["exact_match"] = exact_match_accuracy(preds, refs)["accuracy"]
    if ok:
        rows = _sized(indices, len(ok), len(pairs))
        intervals["rouge_l"] = mean_interval(_rouge_scores(preds, refs), rows)
        intervals["bleu"] = bleu_interval(bleu_statistics(preds, refs), rows)
        intervals["exact_match"] = mean_interval(
            [float(normalize_label(p) == normalize_label(r)) for p, r in ok], rows)
    out["intervals"] = intervals
    out["per_class"] = per_class_table(preds, refs)
    out["predictions"] = [a["text"] for a in answers]
    return out


def evaluate(store, model_ids: list[str], valid_path: str | Path, max_examples: int | None = 50, *,
             sampling: dict | None = None, general: list[str] | list[dict] | None = None,
             batch_size: int | None = None, rounds: int = BOOTSTRAP_ROUNDS) -> dict[str, Any]:
    """Every model on the same held-out chat examples: each example's prompt is all its turns but
    the last assistant one, that turn is the reference. Per model: loss/perplexity (local models),
    ROUGE-L, BLEU, exact match (read it when `labels` says the references are labels; `per_class` then
    holds the per-label table), their bootstrap `intervals`, the run's `overfitting` signal, and, for every
    model after the first (the base), the `forgetting` check against it on the shipped general prompts
    (`general`: other prompts, or plain texts for a perplexity-only check of local models). Greedy decoding
    by default, so the figures are repeatable; the sampling used is part of the result."""
    if not model_ids:
        raise ValueError("Name at least one model to evaluate.")
    examples = load_examples(valid_path, max_examples)
    if not examples:
        raise ValueError(f"{valid_path} holds no examples.")
    pairs = [p for p in (split_prompt_reference(ex) for ex in examples) if p is not None]
    if not pairs:
        raise ValueError(f"No example in {valid_path} ends with an assistant turn to compare against.")
    settings = models.normalize_sampling(sampling or {"temperature": 0.0, "max_new_tokens": 256, "seed": 0})
    indices = bootstrap_indices(len(pairs), rounds=max(1, int(rounds)))
    scored = [_model_metrics(store, model_id, examples, pairs, settings, batch_size, indices)
              for model_id in model_ids]
    for row in scored:
        row["overfitting"] = overfitting_signal(row.pop("run_dir"))
    if len(scored) >= 2:
        _forgetting(store, scored, settings, general, batch_size, rounds)
    return {
        "data": str(valid_path),
        "n_examples": len(examples),
        "n_scored": len(pairs),
        "labels": looks_like_labels([ref for _, ref in pairs]),
        "sampling": settings,
        "models": scored,
        "references": [ref for _, ref in pairs],
    }


def _forgetting(store, scored: list[dict], settings: dict, general: list[str] | list[dict] | None,
                batch_size: int | None, rounds: int) -> None:
    """Each model after the first gets `forgetting`: its general answers against the first model's."""
    base_row, others = scored[0], scored[1:]
    if general and all(isinstance(t, str) for t in general):  # plain texts: perplexity only, local models only
        if base_row["kind"] not in ("hf", "hf_adapter"):
            return
        base = models.load_registered(store, base_row["model"])
        for row in others:
            if row["kind"] in ("hf", "hf_adapter"):
                check = forgetting_check(base, models.load_registered(store, row["model"]), list(general))
                row["forgetting"] = {k: check[k] for k in ("base_perplexity", "tuned_perplexity", "ratio", "forgot")}
        return
    examples = [ex for ex in (general or forgetting_examples()) if split_prompt_reference(ex) is not None]
    if not examples:
        return
    base = general_answers(store, base_row["model"], examples, settings, batch_size)
    for row in others:
        row["forgetting"] = compare_general(base, general_answers(store, row["model"], examples, settings, batch_size),
                                            rounds=max(1, int(rounds)))
