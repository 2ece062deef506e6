"""The app's guidance as short texts the assistant can quote (both the no-key and the LLM path).

Why plain data: each topic is a title, a few keywords the intent matcher scores against,
and a short Markdown text. The texts agree with the Decide step's rule tables
(`ftassist.plan.guide`) and with OpenAI's published fine-tuning rules; they are advice, not
computation: every figure about *your* data, estimate or job comes from the tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    keywords: tuple[str, ...]
    text: str


TOPICS: tuple[Topic, ...] = (
    Topic(
        "fine_tune_vs_rag", "Fine-tuning or retrieval (RAG)?",
        ("rag", "retrieval", "fine-tune or", "fine tune or", "vs", "versus", "knowledge", "documents", "docs",
         "facts", "embedding", "vector"),
        "- **Retrieval (RAG)** puts the right documents into the prompt at question time: use it when answers "
        "depend on facts that change or live in your documents (product docs, policies, prices). It stays "
        "current (re-index the documents) and can cite its sources.\n"
        "- **Fine-tuning** changes the model's *behaviour*: a style or tone, an output format, domain "
        "vocabulary, or a small cheap model doing what a big prompted one did. It does **not** reliably teach "
        "facts, and whatever facts it learns go stale.\n"
        "- **Both**: retrieval for the facts, fine-tuning for how the answer is written.\n"
        "- **Prompt engineering first** when you have fewer than ~50 good examples or have not tried a good "
        "prompt with a few examples: it is the baseline a fine-tuned model must beat.",
    ),
    Topic(
        "methods", "Fine-tuning methods: OpenAI, LoRA, QLoRA, full",
        ("lora", "qlora", "full fine", "method", "adapter", "peft", "4-bit", "4 bit", "which method", "gpu"),
        "- **OpenAI fine-tuning**: no hardware, billed per training token (3 epochs by default); the data is "
        "sent to OpenAI. Good first choice without a GPU when the data may leave your machine.\n"
        "- **LoRA**: trains small adapter matrices (~1% of the weights) on a local model; close to full "
        "fine-tuning quality with far less memory (an 8B model in bf16 needs a data-centre GPU, ~16-20 GB).\n"
        "- **QLoRA**: LoRA on a 4-bit base model; an 8B model trains in about 10-16 GB (one consumer GPU).\n"
        "- **Full fine-tuning**: updates every weight; needs several GPUs (~18 GB per billion parameters with "
        "Adam) and pays off only with thousands of examples; most prone to catastrophic forgetting.",
    ),
    Topic(
        "sft_or_dpo", "SFT or preference tuning (DPO)?",
        ("dpo", "preference", "direct preference", "sft or dpo", "chosen", "rejected", "pairs"),
        "- **SFT** (supervised fine-tuning) learns from examples of the answer to give: use it while the model "
        "does not yet do the task or its format.\n"
        "- **DPO** (direct preference optimisation) learns from pairs of a preferred and a worse answer to the "
        "same prompt (the Arena's votes export as such pairs): use it once the model already does the task and "
        "people prefer some of its answers over others. It refines a working model; it does not teach a new task.\n"
        "- **SFT, then DPO**: the usual recipe when you have pairs but the model cannot do the task yet: SFT on "
        "the preferred answers, then DPO from that model.\n"
        "- Cost: each pair trains two sequences (prompt + chosen, prompt + rejected); with LoRA the reference "
        "model is the base with the adapter off (no second copy), full DPO holds a second copy. Together and "
        "OpenAI (gpt-4.1 models, for its remaining fine-tuning customers) run DPO hosted.",
    ),
    Topic(
        "overfitting", "Pitfall: overfitting",
        ("overfit", "overfitting", "memoris", "memoriz", "validation loss", "eval loss", "early stopping"),
        "The model memorises the training examples instead of learning the pattern: training loss keeps "
        "falling while **validation loss rises**. Remedies: hold out a validation set and watch it; early "
        "stopping (keep the checkpoint with the lowest validation loss; `early_stopping_patience`); fewer "
        "epochs; more and more varied examples; a lower learning rate or LoRA rank.",
    ),
    Topic(
        "forgetting", "Pitfall: catastrophic forgetting",
        ("forget", "forgetting", "catastrophic", "general skills", "worse at", "lost"),
        "A model tuned hard on one task loses general skills it had. Remedies: prefer LoRA/QLoRA over full "
        "fine-tuning, a low learning rate and few epochs, mix in some general-purpose examples, and compare "
        "the tuned model with the base model in the Arena on prompts outside your task.",
    ),
    Topic(
        "poor_data", "Pitfall: poor data",
        ("poor data", "bad data", "garbage", "noisy", "wrong answers", "inconsistent"),
        "A model learns mistakes as faithfully as good examples: wrong, inconsistent or contradictory answers "
        "become the model's behaviour. Remedies: check the dataset in the Data step, fix every error, read the "
        "checklist's warnings (duplicates, contradictions, imbalance, long examples), and have a person review "
        "a sample of answers before paying for training.",
    ),
    Topic(
        "wrong_use_case", "Pitfall: the wrong use case",
        ("wrong use", "use case", "teach facts", "up to date", "knowledge cutoff"),
        "Fine-tuning to teach facts (a catalogue, policies, yesterday's news) is the most common mistake: the "
        "facts blur and go stale. Remedy: put facts in retrieval (RAG) and fine-tune only the behaviour; if a "
        "good prompt already does the job, do not fine-tune at all.",
    ),
    Topic(
        "loss_curves", "Reading loss curves",
        ("loss", "curve", "went up", "goes up", "go up", "increase", "diverg", "spike", "nan", "plateau",
         "flat", "train loss", "training loss"),
        "- **Training loss** should fall quickly, then flatten; some noise step to step is normal with small "
        "batches.\n"
        "- **Validation loss rising while training loss falls** = overfitting: stop earlier (early stopping, "
        "fewer epochs), add data.\n"
        "- **Training loss jumping up (a spike) or climbing** = the learning rate is too high (or a bad batch): "
        "halve the learning rate, add warmup, check the examples around that step.\n"
        "- **Both flat from the start** = learning rate too low, too few steps, or a data problem (e.g. answers "
        "masked out, empty assistant messages).\n"
        "- **NaN loss** = numerical blow-up: lower the learning rate, use bf16 rather than fp16.\n"
        "- **Training loss near zero** = the model memorised the set; check validation loss.",
    ),
    Topic(
        "data_quality", "Data quality checklist",
        ("quality", "checklist", "good data", "how many examples", "duplicates", "diverse", "balanced",
         "contradict", "sensitive", "pii", "clean"),
        "Before training, each example should be:\n"
        "- **accurate**: the answer is the one you want the model to give (a person checked it);\n"
        "- **consistent**: the same style, format and system prompt throughout;\n"
        "- **diverse**: covers the real questions, not 50 variants of one;\n"
        "- **balanced**: no category or answer dominates by accident;\n"
        "- **free of contradictions**: the same question never gets two different answers;\n"
        "- **of sensible length**: under the model's per-example limit, no empty answers;\n"
        "- **free of sensitive data** you may not share (names, emails, keys).\n"
        "Start with 50-100 excellent examples rather than thousands of mediocre ones; the Data step checks all "
        "of this and splits off a validation set.",
    ),
    Topic(
        "openai_rules", "OpenAI fine-tuning rules",
        ("openai", "minimum", "at least", "limit", "jsonl", "format", "epochs", "auto epochs", "billing",
         "billed", "per-example", "gpt-4"),
        "- Data: a `.jsonl` file, one `{\"messages\": [...]}` chat per line (roles system, user, assistant), "
        "every example with at least one assistant message; at least **10** examples (50-100 is a sensible "
        "start); files up to 512 MB.\n"
        "- Per-example limit: 65,536 tokens (gpt-4.1-nano: 32,768); longer examples are truncated.\n"
        "- Epochs `auto`: 3, raised so that examples x epochs reaches 100 (at most 25), lowered so it stays "
        "under 25,000 (at least 1).\n"
        "- Billing: epochs x the sum of each example's tokens (capped at the limit) x the model's training price "
        "per 1M tokens; o4-mini reinforcement fine-tuning is billed per hour instead.",
    ),
)

_BY_ID = {t.id: t for t in TOPICS}


def topic_ids() -> list[str]:
    return [t.id for t in TOPICS]


def get(topic_id: str) -> Topic:
    """One topic by id; ValueError listing the ids when unknown."""
    try:
        return _BY_ID[topic_id]
    except KeyError:
        raise ValueError(f"Unknown topic {topic_id!r}: use one of {', '.join(_BY_ID)}.") from None


def _words(text: str) -> str:
    return " " + re.sub(r"\s+", " ", text.lower()) + " "


def score(topic: Topic, text: str) -> int:
    """How many of the topic's keywords occur in `text` (case-insensitive substring match)."""
    t = _words(text)
    return sum(1 for k in topic.keywords if k in t)


def search(text: str, limit: int = 2) -> list[Topic]:
    """The topics whose keywords best match `text`, best first (none when nothing matches)."""
    scored = [(score(t, text), i, t) for i, t in enumerate(TOPICS)]
    scored = [s for s in scored if s[0] > 0]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [t for _, _, t in scored[:limit]]


def as_markdown(topic: Topic) -> str:
    return f"**{topic.title}**\n\n{topic.text}"


def overview() -> str:
    """All topic titles, for the LLM's system prompt and the fallback answer."""
    return "\n".join(f"- {t.title} (`{t.id}`)" for t in TOPICS)
