"""The no-key assistant: match the question to an intent, pull the numbers out, call the use cases.

Why keywords and regexes rather than a model: the questions people ask a fine-tuning app
fall into a handful of kinds (decide, method, cost, loss, data, run, an action, a concept),
each recognisable from a few words, and the figures in the answer must be the app's own (the
estimate code's dollars, the run's losses), which only the use cases give. Every intent has
a score function; the best score wins, and nothing matching gives a helpful fallback that
lists what the assistant can do. Use cases that need the person's confirmation are only
proposed (`actions.use`), exactly as when the LLM asks for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ftassist.formatting import format_money
from ftassist.plan import hardware, pricing
from ftassist.usecases.context import Context
from ftassist.usecases.session import Session

from ftassist.plan import knowledge

from . import actions

# The use cases behind the actions: a check and a run are proposed (confirm=True), the estimate is read.
CHECK, ESTIMATE, PLAN, TRAIN = "check_dataset", "estimate_options", "plan_run", "start_run_from_session"
VOTES = "train_on_votes"  # the preference loop: an arena model's votes train its next version (DPO)


@dataclass
class Reply:
    """One assistant turn: the Markdown answer, the session after it, and how it was produced."""

    text: str
    session: Session
    intent: str
    tool_calls: list[dict] = field(default_factory=list)  # [{"name", "arguments", "result"}] in call order
    used_llm: bool = False

    @property
    def pending(self) -> dict | None:
        return self.session.pending_action


# --------------------------------------------------------------------------- entity extraction

_COUNT_WORDS = r"(?:examples?|rows?|samples?|conversations?|records?|pairs?|lines?|chats?|dialogues?)"
_NUM = r"(\d[\d,_]*(?:\.\d+)?)\s*([km])?\b"


def _to_int(number: str, suffix: str | None) -> int:
    value = float(number.replace(",", "").replace("_", ""))
    value *= {"k": 1_000, "m": 1_000_000}.get((suffix or "").lower(), 1)
    return int(round(value))


def normalise(text: str) -> str:
    """Lower case, model names joined up ("GPT 4.1 mini" -> "gpt-4.1-mini"), single spaces."""
    t = " ".join((text or "").lower().split())
    t = t.replace("’", "'")
    t = re.sub(r"\bgpt\s*-?\s*(4o|4\.1|3\.5|4)\b", r"gpt-\1", t)
    t = re.sub(r"\b(gpt-(?:4o|4\.1|3\.5))[\s-]+(mini|nano|turbo)\b", r"\1-\2", t)
    return t


def find_n_examples(t: str) -> int | None:
    m = re.search(_NUM + r"\s*(?:\w+\s+)?" + _COUNT_WORDS, t)
    return _to_int(m.group(1), m.group(2)) if m else None


def find_tokens(t: str) -> int | None:
    m = re.search(_NUM + r"\s*tokens?\b", t)
    return _to_int(m.group(1), m.group(2)) if m else None


def find_epochs(t: str) -> int | None:
    m = re.search(r"(\d+)\s*epochs?\b", t)
    return int(m.group(1)) if m else None


def find_steps(t: str) -> int | None:
    m = re.search(r"(\d[\d,]*)\s*steps?\b", t)
    return _to_int(m.group(1), None) if m else None


def find_openai_models(t: str) -> list[str]:
    """OpenAI model names (dated or alias) in the text, in order of appearance, longest match at each place."""
    names: list[str] = []
    for p in pricing.load_prices().values():
        names += [p.model, *p.aliases]
    found: list[tuple[int, str]] = []
    taken: set[int] = set()
    for name in sorted(names, key=len, reverse=True):
        for m in re.finditer(r"(?<![\w.\-])" + re.escape(name.lower()) + r"(?![\w\-]|\.\d)", t):
            if m.start() not in taken:
                taken.add(m.start())
                found.append((m.start(), name))
    return [name for _, name in sorted(found)]


def find_openai_model(t: str) -> str | None:
    found = find_openai_models(t)
    return found[0] if found else None


def find_gpu(t: str) -> str | None:
    for name in sorted(hardware.gpu_catalogue(), key=len, reverse=True):
        if name.lower() in t:
            return name
    m = re.search(r"\b(h100|a100|a10g|4090|l4|t4)\b", t)
    return hardware.find_gpu(m.group(1)).name if m else None


def find_open_model(t: str) -> str | None:
    if re.search(r"\btiny[- ]random\b", t):
        return "tiny-random"
    for name in sorted(hardware.catalogue_names(), key=len, reverse=True):
        short = name.split("/", 1)[-1].lower()
        if name.lower() in t or re.search(r"(?<![\w.\-])" + re.escape(short) + r"(?![\w\-])", t):
            return name
    return None


def find_method(t: str) -> str | None:
    if re.search(r"\bq-?lora\b", t):
        return "qlora"
    if re.search(r"\blora\b", t):
        return "lora"
    if re.search(r"\bfull(?: fine-?tun\w*| parameter)?\b", t) and "full fine" in t:
        return "full"
    return None


def _any(t: str, words: tuple[str, ...]) -> list[str]:
    return [w for w in words if w in t]


_CURRENT_INFO = ("docs", "documentation", "documents", "knowledge base", "faq", "manual", "policies", "policy",
                 "catalog", "catalogue", "up to date", "up-to-date", "current", "latest", "changing", "wiki",
                 "articles", "product information", "facts")
_STYLE = ("style", "tone", "voice", "format", "json", "persona", "brand", "structured output")
_TERMS = ("terminology", "jargon", "medical", "legal", "domain-specific", "vocabulary")
_PRIVATE = ("private", "confidential", "sensitive", "on-prem", "on prem", "can't leave", "cannot leave",
            "must not leave", "gdpr", "hipaa")
_SCALE = ("at scale", "high volume", "millions of requests", "latency", "many requests", "cheaper model")
_TRIED = ("tried prompting", "tried a prompt", "prompt didn't", "prompting isn't", "prompting is not",
          "already tried", "prompts don't", "prompting didn't")


_PREFERENCES = ("preference pairs", "preference data", "chosen and rejected", "chosen/rejected", "better and a worse",
                "better and worse answer", "arena votes", "votes", "pairs of answers", "dpo")
_DOES_TASK = ("already does the task", "already does it", "already answers", "already works", "right format already",
              "already in the right format", "users prefer", "people prefer", "prefer some answers")


def find_objective(t: str) -> str | None:
    """"dpo" or "sft" when the message names one ("DPO", "preference tuning", "SFT", "supervised")."""
    if re.search(r"\bdpo\b|preference (tuning|optimi[sz]ation|training)", t):
        return "dpo"
    if re.search(r"\bsft\b|supervised", t):
        return "sft"
    return None


def find_beta(t: str) -> float | None:
    m = re.search(r"\bbeta\s*(?:=|of|at)?\s*(\d*\.?\d+)", t)
    return float(m.group(1)) if m else None


def find_run_id(t: str) -> str | None:
    """A run id after "from" ("DPO from run 20250101-000000-abcdef"): SFT, then DPO."""
    m = re.search(r"\bfrom (?:run |the run |job )?`?([0-9]{8}-[0-9]{6}-[0-9a-f]{6})`?", t)
    return m.group(1) if m else None


def decide_answers(t: str) -> tuple[dict, list[str]]:
    """Questionnaire answers read from the question, and the phrases that led to them."""
    answers: dict = {}
    why: list[str] = []
    for key, words, label in (("needs_current_info", _CURRENT_INFO, "needs document/current knowledge"),
                              ("style_or_format", _STYLE, "a style or format to teach"),
                              ("domain_terminology", _TERMS, "domain vocabulary"),
                              ("high_volume", _SCALE, "cost/latency at scale matters"),
                              ("tried_prompting", _TRIED, "prompting already tried")):
        hits = _any(t, words)
        if hits:
            answers[key] = True
            why.append(f"{label} (you wrote “{hits[0]}”)")
    hits = _any(t, _PRIVATE)
    if hits:
        answers["data_can_leave"] = False
        why.append(f"the data must stay private (“{hits[0]}”)")
    if re.search(r"\b(4090|3090|4080|rtx|consumer gpu|gaming gpu)\b", t):
        answers["hardware"], _ = "consumer_gpu", why.append("a consumer GPU")
    elif re.search(r"\b(several|multiple|many|8|4) (gpus|h100s|a100s)\b|\bcluster\b", t):
        answers["hardware"], _ = "multi_gpu", why.append("several GPUs")
    elif re.search(r"\b(a100|h100|h200|l40s?)\b", t):
        answers["hardware"], _ = "datacenter_gpu", why.append("a data-centre GPU")
    elif re.search(r"\bno gpu\b|\bwithout (a )?gpu\b", t):
        answers["hardware"], _ = "none", why.append("no GPU")
    if re.search(r"\b(low|small|tight|limited) budget\b|\bcheap(ly)?\b", t):
        answers["budget"], _ = "low", why.append("a low budget")
    elif re.search(r"\b(big|large|high) budget\b", t):
        answers["budget"], _ = "high", why.append("a high budget")
    hits = _any(t, _PREFERENCES)
    if hits:
        answers["has_preference_data"] = True
        why.append(f"preference data (“{hits[0]}”)")
    hits = _any(t, _DOES_TASK)
    if hits:
        answers["model_does_task"] = True
        why.append(f"the model already does the task (“{hits[0]}”)")
    n = find_n_examples(t)
    if n is not None:
        answers["n_examples"] = n
        why.append(f"{n:,} examples")
    return answers, why


# --------------------------------------------------------------------------- intents


def _score_words(t: str, weighted: dict[str, float]) -> float:
    return sum(w for k, w in weighted.items() if re.search(k, t))


def _s_action_check(t: str) -> float:
    return 6.0 if re.search(r"\b(run|do|start|perform|launch|redo)\b.{0,20}\b(the |a )?(data |dataset )?check\b"
                            r"|\bcheck (my|the|this) (data|dataset|file|upload)\b"
                            r"|\bvalidate (my|the|this) (data|dataset|file)\b", t) else 0.0


def _s_action_estimate(t: str) -> float:
    return 6.0 if re.search(r"\b(make|produce|run|do|create|compute|give me|prepare)\b.{0,15}\b(the |an |my )?estimate\b"
                            r"|\bestimate (it|my data|my dataset|for me|the dataset)\b", t) else 0.0


def _s_action_train(t: str) -> float:
    return 6.0 if re.search(r"\b(start|launch|begin|kick off|run)\b.{0,25}\b(train|training|fine-?tun\w*|run|job)\b"
                            r"|\btrain (it|a model|the model|my model|now)\b", t) else 0.0


def _s_action_votes(t: str) -> float:
    return 7.0 if re.search(r"\b(train|tune|improve|fine-?tune)\b.{0,40}\b(on|from|with)\b.{0,12}\bvotes\b", t) else 0.0


def _s_loss(t: str) -> float:
    return _score_words(t, {r"\bloss\b": 4, r"overfit": 2, r"diverg": 2, r"\bspike": 1,
                            r"(learning|training|loss) curve": 2, r"\bnan\b": 1, r"went up|go(es)? up": 1})


def _s_cost(t: str) -> float:
    s = _score_words(t, {r"how much": 3, r"\bcost": 3, r"\bprice|\bpricing": 2, r"\$|dollar|usd": 2,
                         r"expensive|cheap": 1, r"\bbill": 1, r"how long .*train|training time": 2})
    if len(find_openai_models(t)) >= 2 and re.search(r"\bor\b|\bvs\.?\b|versus|compare|better|cheaper", t):
        s += 4  # "gpt-4o-mini or gpt-4.1-mini?": a model comparison
    if s:
        s += (find_n_examples(t) is not None) + (find_openai_model(t) is not None)
    return s


def _s_status(t: str) -> float:
    return _score_words(t, {r"\bstatus\b": 3, r"\bprogress\b": 2, r"how('s| is) (my|the) (training|run|job)": 4,
                            r"is (it|my run|my job|training) (done|finished|over)": 4, r"\beta\b|time left": 2,
                            r"did (it|my run|my job|training) fail|why did .*fail": 3})


def _s_data(t: str) -> float:
    return _score_words(t, {r"\bmy (data|dataset|examples|file)\b": 3, r"\bdataset\b": 1, r"\bchecklist\b": 2,
                            r"\berrors?\b": 1, r"data quality|quality of": 2, r"\bduplicat": 1,
                            r"\b(is|are) (my|the) (data|dataset|examples) (ok|good|ready|fine)": 3})


def _s_decide(t: str) -> float:
    return _score_words(t, {r"\brag\b": 3, r"retrieval": 3, r"should (i|we) (fine-?tune|train|use)": 3,
                            r"fine-?tun\w* or\b|\bor fine-?tun": 2, r"worth (it|fine-?tun)": 2,
                            r"do (i|we) need (to )?fine-?tun": 3, r"prompt engineering|just prompt": 2,
                            r"which approach|what approach": 2, r"\bvs\.?\b|versus": 1})


def _s_method(t: str) -> float:
    """"LoRA or QLoRA?", "which method should I use?": the person wants *their* method, not a definition."""
    s = _score_words(t, {r"\bq?lora\b.{0,20}\b(or|vs\.?|versus)\b.{0,20}\b(q?lora|full|openai)\b": 5,
                         r"\b(which|what) (fine-?tuning )?method\b": 4,
                         r"should (i|we) (use|go with|pick|choose) (q?lora|full|openai)": 4})
    if s and re.match(r"(what('s| is| are)|explain|define)\b", t):
        s -= 3  # "what is LoRA or QLoRA" asks for the concept
    return s


def _s_topic(t: str) -> float:
    hits = knowledge.search(t, limit=1)
    if not hits:
        return 0.0
    s = float(knowledge.score(hits[0], t))
    if re.match(r"(what('s| is| are)|explain|tell me about|how do(es)?|define|why)\b", t) and " my " not in f" {t} ":
        s += 2.5
    return s


def _s_help(t: str) -> float:
    return 5.0 if re.fullmatch(r"\W*(help|hi|hello|hey|what can you do|what do you do|commands)\W*", t) else 0.0


def _s_thanks(t: str) -> float:
    return 5.0 if re.fullmatch(r"\W*(thanks|thank you|thx|cheers|great|perfect|ok thanks)( a lot| so much)?\W*", t) else 0.0


SCORERS: tuple[tuple[str, Callable[[str], float]], ...] = (
    ("action_check", _s_action_check), ("action_estimate", _s_action_estimate), ("action_votes", _s_action_votes),
    ("action_train", _s_action_train),
    ("loss", _s_loss), ("cost", _s_cost), ("job_status", _s_status), ("data", _s_data), ("method", _s_method),
    ("decide", _s_decide),
    ("topic", _s_topic), ("help", _s_help), ("thanks", _s_thanks),
)


def classify(message: str) -> tuple[str, float]:
    """(intent, score) for a message; ("unknown", 0) when nothing matches. Earlier intents win ties."""
    t = normalise(message)
    best = ("unknown", 0.0)
    for name, fn in SCORERS:
        s = fn(t)
        if s > best[1]:
            best = (name, s)
    return best


# --------------------------------------------------------------------------- handlers

FALLBACK = (
    "I'm the fine-tuning assistant. I answer from the app's own guidance and from *your* dataset, estimate and "
    "training run. Try:\n"
    "- **Decide**: “Should I fine-tune or use RAG for our product docs?”, “LoRA or QLoRA?”\n"
    "- **Cost**: “How much for 5,000 examples on gpt-4.1-mini?” (add “with 800 tokens each” or “on QLoRA”)\n"
    "- **Your data**: “Is my dataset OK?” (after a check in the Data tab)\n"
    "- **Training**: “Why did my loss go up?”, “How is my training going?”\n"
    "- **Actions** (you confirm first): “Check my data”, “Make the estimate”, “Start training with tiny-random”, "
    "“Start DPO training from run RUN_ID”, “Train 'my-model' on its votes”\n"
    "- **Concepts**: " + ", ".join(t.title for t in knowledge.TOPICS) + "."
)


class _Calls:
    """Uses tools on the turn's session and records each use (what the reply is grounded on)."""

    def __init__(self, ctx: Context, session: Session):
        self.ctx = ctx
        self.session = session
        self.log: list[dict] = []

    def __call__(self, name: str, **arguments) -> dict:
        args = {k: v for k, v in arguments.items() if v is not None}
        outcome = actions.use(self.ctx, name, args, self.session)
        self.session = outcome.session
        self.log.append({"name": name, "arguments": args, "result": outcome.result})
        return outcome.result


def _text(result: dict) -> str:
    return result.get("text") or f"Sorry, that did not work: {result.get('error', 'unknown error')}"


def _h_decide(t: str, call: _Calls) -> str:
    answers, why = decide_answers(t)
    r = call("advise_approach", **answers)
    if "error" in r:
        return _text(r)
    if why:
        took = "From your question I took: " + "; ".join(why) + "."
    elif r.get("from_decide_step"):
        took = "You did not restate your situation, so I used your answers from the Decide step."
    else:
        took = "Your question did not say much about the task, so I used cautious defaults."
    return (f"{took}\n\n{r['text']}\n\n**In short**\n\n{knowledge.get('fine_tune_vs_rag').text}\n\n"
            "For advice that fits your case exactly, answer the questions in the **Decide** tab (budget, hardware, "
            "privacy, examples).")


_METHOD_NAMES = {"openai": "OpenAI fine-tuning", "lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}


def _h_method(t: str, call: _Calls) -> str:
    """"LoRA or QLoRA?": the method for this person (their Decide answers plus what the question says)."""
    answers, why = decide_answers(t)
    r = call("advise_approach", **answers)
    if "error" in r:
        return _text(r)
    methods = knowledge.as_markdown(knowledge.get("methods"))
    if r["method"]:
        basis = ("your answers in the Decide step" if r.get("from_decide_step") else "what you told me")
        lead = (f"For you: **{_METHOD_NAMES[r['method']]}** (from {basis}; the advice is {r['headline']}).")
    else:
        lead = (f"The advice for your situation is **{r['headline']}**, so no fine-tuning method yet. Answer the "
                "questions in the **Decide** tab (or tell me your hardware, privacy and number of examples) for a "
                "method that fits.")
    return f"{lead}\n\n{r['text']}\n\n{methods}"


def _h_cost(t: str, call: _Calls) -> str:
    n, tokens, epochs = find_n_examples(t), find_tokens(t), find_epochs(t)
    models = find_openai_models(t)
    if len(models) >= 2:  # compare OpenAI models: their prices, and the cost for this data when there is a count
        parts, assumption = [], None
        for m in models:
            if n is not None or call.session.report:
                r = call("estimate_cost", n_examples=n, tokens_per_example=tokens, model=m, epochs=epochs)
                if "error" not in r:
                    parts.append(r["text"].split("\n")[0])
                    assumption = r["assumption"]
            parts.append(_text(call("model_price", model=m)))
        if assumption:
            parts.append(f"Assumed: {assumption}.")
        elif n is None:
            parts.append("Say how many examples (e.g. “for 2,000 examples”) for the training cost of each.")
        return "\n\n".join(parts)
    model = find_openai_model(t) or find_open_model(t)
    if model == "tiny-random":
        model = None
    hosted = bool(re.search(r"\b(q?lora|gpu|self-?host\w*|locally|local|own hardware|full fine)", t))
    if model and model in hardware.catalogue_names():
        hosted = True
    r = call("estimate_cost", n_examples=n, tokens_per_example=tokens, model=model, epochs=epochs,
             include_self_hosted=hosted or None, method=find_method(t), gpu=find_gpu(t))
    if "error" in r:
        if find_openai_model(t):
            return f"{_text(call('model_price', model=model))}\n\n{r['error']}"
        return r["error"]
    return _text(r)


def _h_loss(t: str, call: _Calls) -> str:
    r = call("explain_loss")
    if "error" in r:
        return _text(r)
    text = r["text"]
    kinds = {f["kind"] for f in r["findings"]}
    if r.get("objective") == "dpo":  # its own rules; the SFT curves' guide would mislead
        return text
    if r.get("run_id") and not kinds & {"overfitting", "spike", "diverging"}:
        text += "\n\n" + knowledge.as_markdown(knowledge.get("loss_curves"))
    return text


def _h_status(t: str, call: _Calls) -> str:
    return _text(call("run_progress"))


def _h_data(t: str, call: _Calls) -> str:
    return _text(call("dataset_summary"))


def _h_topic(t: str, call: _Calls) -> str:
    hits = knowledge.search(t, limit=2)
    parts = [_text(call("explain_topic", topic=h.id)) for h in hits]
    return "\n\n".join(parts) if parts else FALLBACK


def _h_check(t: str, call: _Calls) -> str:
    dataset = call.session.dataset
    if dataset is None:
        return ("There is no dataset to check yet: upload one in the **Data** tab (or press *Try with sample data*), "
                "then ask me again.")
    r = call(CHECK, path=dataset.path, model=dataset.model)
    return _text(r) if "error" not in r else f"I can't do that yet: {r['error']}"


def _h_estimate(t: str, call: _Calls) -> str:
    if not call.session.report:
        return ("I can't do that yet: the estimate uses your checked dataset's exact token counts. Check the dataset "
                "first, or ask e.g. 'how much for 2,000 examples on gpt-4.1-mini?'.")
    r = call(ESTIMATE)
    if "error" in r:
        return _text(r)
    table = r["table"]
    lines = [f"**{table['recommendation']}**", "", f"Counted: {r['counted']}."]
    rows = [row for row in table["rows"] if row.get("cost_usd") is not None and row.get("fits") is not False]
    lines += [f"- {row['label']}: {format_money(row['cost_usd'])}" for row in rows if row["kind"] == "openai"]
    hosted = sorted((row for row in rows if row["kind"] == "self_hosted"), key=lambda row: row["cost_usd"])[:3]
    lines += [f"- {row['label']}: {format_money(row['cost_usd'])}" for row in hosted]
    lines.append("\nChoose an option in the **Estimate** tab: the Train tab then starts from it.")
    return "\n".join(lines)


def _h_train(t: str, call: _Calls) -> str:
    """The Train tab's run for this session, as the person changed it; proposed with its own description."""
    arguments = dict(base_model=find_open_model(t), method=find_method(t), num_epochs=find_epochs(t),
                     max_steps=find_steps(t), objective=find_objective(t), dpo_beta=find_beta(t),
                     start_from=find_run_id(t))
    plan = call(PLAN, **arguments)
    if "error" in plan:
        return f"I can't do that yet: {plan['error']}"
    outcome = actions.propose(call.session, TRAIN, {k: v for k, v in arguments.items() if v is not None},
                              summary=plan["summary"])
    call.session = outcome.session
    call.log.append({"name": TRAIN, "arguments": arguments, "result": outcome.result})
    return outcome.result["text"]


def _h_votes(t: str, call: _Calls) -> str:
    """"Train it on the votes": the arena model named (in quotes), else the one this person registered last, trains
    on its votes (DPO from its own run); proposed, as every run is."""
    named = re.search(r"[`'\"“]([^`'\"”]+)[`'\"”]", t)
    model = named.group(1) if named else (call.session.model_ids[-1] if call.session.model_ids else None)
    if not model:
        return ("Which arena model should train on its votes? Name it in quotes (e.g. train 'my-model' on its votes), "
                "or register your fine-tuned model in the **Arena** tab first.")
    least = re.search(r"\b(?:at least|min(?:imum)?(?: of)?)\s*(\d+)\s*(?:usable )?(?:votes?|pairs?)?\b", t)
    r = call(VOTES, model=model, max_steps=find_steps(t), dpo_beta=find_beta(t),
             min_votes=int(least.group(1)) if least else None)
    return r.get("text") or f"I can't do that yet: {r.get('error', 'unknown error')}"


HANDLERS: dict[str, Callable[[str, _Calls], str]] = {
    "decide": _h_decide, "method": _h_method, "cost": _h_cost, "loss": _h_loss, "job_status": _h_status,
    "data": _h_data, "topic": _h_topic, "action_check": _h_check, "action_estimate": _h_estimate,
    "action_train": _h_train, "action_votes": _h_votes, "help": lambda t, c: FALLBACK,
    "thanks": lambda t, c: "You're welcome! Ask me anything else about your data, the cost or your training run.",
}

YES = re.compile(r"\W*(yes|y|yep|ok|okay|confirm(ed)?|go ahead|do it|sure|please do|run it|go)\W*")
NO = re.compile(r"\W*(no|n|nope|cancel|stop|don't|do not|never ?mind)\W*")


def answer(ctx: Context, message: str, session: Session | None = None, api_key: str | None = None) -> Reply:
    """Answer one message with no LLM. `api_key` is only used when a typed "yes" confirms an OpenAI run."""
    session = Session.of(session)
    t = normalise(message)
    if not t:
        return Reply("Ask me something about fine-tuning, your data, an estimate or your training run.", session,
                     "empty")
    if session.pending_action:
        if YES.fullmatch(t):
            text, session = actions.confirm(ctx, session, api_key=api_key)
            return Reply(text, session, "confirm")
        if NO.fullmatch(t):
            text, session = actions.cancel(session)
            return Reply(text, session, "cancel")
    intent, _ = classify(message)
    call = _Calls(ctx, session)
    if intent == "unknown":
        return Reply("I'm not sure what you mean. " + FALLBACK, call.session, "unknown")
    text = HANDLERS[intent](t, call)
    return Reply(text, call.session, intent, call.log)
