"""Automatic metrics, base vs fine-tuned, on the held-out split.

What each number answers:

- loss / perplexity on the assistant tokens of the validation examples: does the tuned
  model find the reference answers more likely? (the same quantity training minimises,
  measured on data it did not see);
- ROUGE-L and BLEU of generated answers against the references (the `rouge-score` and
  `sacrebleu` packages, the implementations papers report, never re-implemented here);
- exact-match accuracy, when the references are labels (short answers from a small set);
- a forgetting check: perplexity on a small general-text sample before and after, since
  a fine-tune that wins on its task but degrades general language is a known pitfall.

Loss and perplexity need the weights, so they apply to local models (`hf`, `hf_adapter`);
for API models they are reported as None with the reason. The functions that measure a model
take it loaded (`models.load_registered(store, id)`); `evaluate` takes the store and ids.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any

from . import models

GENERAL_TEXT_PATH = Path(__file__).with_name("general_text.txt")


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
               batch_size: int, max_length: int) -> tuple[float, int, int]:
    """(sum of NLL, number of scored tokens, items skipped) for texts with the spans to score
    (None: every token after the first)."""
    import torch

    tok = loaded.tokenizer
    total, count, skipped = 0.0, 0, 0
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
            per_row = mask.sum(dim=1)
            skipped += int((per_row == 0).sum())
            total += float(nll[mask].sum())
            count += int(mask.sum())
    finally:
        tok.padding_side = old_side
    return total, count, skipped


def loss_and_perplexity(loaded: "models.LocalModel", examples: list[dict], *, batch_size: int = 4,
                        max_length: int = 2048) -> dict[str, Any]:
    """Mean NLL per assistant token over `examples` (token-weighted, like a trainer's eval loss) and exp of it."""
    items = []
    for ex in examples:
        messages = [{"role": m.get("role"), "content": m.get("content") or ""} for m in ex["messages"]]
        items.append(_assistant_spans(loaded, messages))
    total, count, skipped = _token_nll(loaded, items, batch_size, max_length)
    if count == 0:
        return {"loss": None, "perplexity": None, "n_examples": len(examples), "n_tokens": 0, "n_skipped": skipped,
                "note": "no assistant tokens to score"}
    loss = total / count
    return {"loss": loss, "perplexity": models.perplexity_from_loss(loss), "n_examples": len(examples),
            "n_tokens": count, "n_skipped": skipped}


def text_perplexity(loaded: "models.LocalModel", texts: list[str], *, batch_size: int = 8,
                    max_length: int = 512) -> dict[str, Any]:
    """Perplexity of plain texts (every token predicted from the ones before it)."""
    total, count, _ = _token_nll(loaded, [(t, None) for t in texts if t.strip()], batch_size, max_length)
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
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references)]
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


# -- everything together -----------------------------------------------------------------------


def _model_metrics(store, model_id: str, examples: list[dict], pairs: list[tuple[list[dict], str]],
                   sampling: dict, batch_size: int | None) -> dict[str, Any]:
    row = models.get_model(store, model_id)
    out: dict[str, Any] = {"model": row["id"], "display_name": row["display_name"], "kind": row["kind"]}
    if row["kind"] in ("hf", "hf_adapter"):
        out.update(loss_and_perplexity(models.load_registered(store, row["id"]), examples))
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
    out["predictions"] = [a["text"] for a in answers]
    return out


def evaluate(store, model_ids: list[str], valid_path: str | Path, max_examples: int | None = 50, *,
             sampling: dict | None = None, general: list[str] | None = None,
             batch_size: int | None = None) -> dict[str, Any]:
    """Every model on the same held-out chat examples: each example's prompt is all its turns but
    the last assistant one, that turn is the reference. Per model: loss/perplexity (local models),
    ROUGE-L, BLEU, exact match (read it when `labels` says the references are labels), and, for local
    models after the first, the forgetting check against the first (the base). Greedy decoding by
    default, so the figures are repeatable; the sampling used is part of the result."""
    if not model_ids:
        raise ValueError("Name at least one model to evaluate.")
    examples = load_examples(valid_path, max_examples)
    if not examples:
        raise ValueError(f"{valid_path} holds no examples.")
    pairs = [p for p in (split_prompt_reference(ex) for ex in examples) if p is not None]
    if not pairs:
        raise ValueError(f"No example in {valid_path} ends with an assistant turn to compare against.")
    settings = models.normalize_sampling(sampling or {"temperature": 0.0, "max_new_tokens": 256, "seed": 0})
    scored = [_model_metrics(store, model_id, examples, pairs, settings, batch_size) for model_id in model_ids]
    local = [m for m in scored if m["kind"] in ("hf", "hf_adapter")]
    texts = general if general is not None else general_texts()
    if len(local) >= 2 and local[0] is scored[0]:
        base = models.load_registered(store, scored[0]["model"])
        for row in local[1:]:
            check = forgetting_check(base, models.load_registered(store, row["model"]), texts)
            row["forgetting"] = {k: check[k] for k in ("base_perplexity", "tuned_perplexity", "ratio", "forgot")}
    return {
        "data": str(valid_path),
        "n_examples": len(examples),
        "n_scored": len(pairs),
        "labels": looks_like_labels([ref for _, ref in pairs]),
        "sampling": settings,
        "models": scored,
        "references": [ref for _, ref in pairs],
    }
