"""Should I fine-tune at all, and how? A short questionnaire and table-driven rules.

Why rules in tables: each recommendation must come with its reason (one line each), and
each rule must be testable on its own, so the logic is data (rows of condition,
recommendation, reason) read top to bottom rather than nested ifs.

Three tables:
- APPROACH_RULES: the first row whose condition holds decides RAG, fine-tuning, both, or
  prompt engineering first;
- METHOD_RULES: when fine-tuning, the first matching row picks the method (OpenAI, LoRA, QLoRA or
  full fine-tuning) and where it runs (a local GPU, a rented one on Hugging Face Jobs, Together AI,
  or OpenAI), among the paths open to this person on that day (`providers.availability`): OpenAI only
  for its active fine-tuning customers, and never after it stops taking jobs;
- OBJECTIVE_RULES: when fine-tuning, the first matching row names what the run learns from: supervised
  fine-tuning (SFT) on the answers to give, or preference tuning (DPO) on pairs of a preferred and a worse
  answer, which pays off only once the model already does the task and format (otherwise SFT first, then DPO);
- NOTE_RULES and PITFALL_RULES: every matching row adds a reason or a pitfall with its remedy.
A checked dataset (its report) feeds in: its size replaces the guessed number of examples,
and errors or a failing checklist item put "fix the data first" ahead of everything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Callable

from . import providers

APPROACHES = ("rag", "fine_tune", "both", "prompt_engineering")
METHODS = ("openai", "lora", "qlora", "full")
BUDGETS = ("low", "medium", "high")
HARDWARE = ("none", "consumer_gpu", "datacenter_gpu", "multi_gpu")
WHERE = ("local", "hf-jobs", "together", "openai")  # where the recommended fine-tune runs

FULL_FT_MIN_EXAMPLES = 5_000  # below this, full fine-tuning mostly memorises: LoRA does as well
FEW_EXAMPLES = 100  # below this, overfitting is the main risk
MIN_EXAMPLES = 10  # OpenAI's minimum; below it, few-shot prompting with the examples


@dataclass
class Answers:
    """The questionnaire. None means "don't know", which the rules treat cautiously."""

    needs_current_info: bool = False  # answers depend on facts that change or are private documents
    style_or_format: bool = False  # the goal is a writing style, tone or output format
    domain_terminology: bool = False  # specialised vocabulary the base model handles badly
    n_examples: int | None = None  # good examples you have (or could write)
    budget: str = "medium"  # low | medium | high
    hardware: str = "none"  # none | consumer_gpu | datacenter_gpu | multi_gpu
    data_can_leave: bool = True  # may the data be sent to a provider (a rented GPU, Together, OpenAI)?
    openai_customer: bool = False  # an active OpenAI fine-tuning customer (False also means "don't know")
    high_volume: bool = False  # latency and inference cost at scale matter (many requests)
    tried_prompting: bool = False  # a good prompt with examples was already tried and fell short
    model_does_task: bool = False  # the model already does the task in the right format; people prefer other answers
    has_preference_data: bool = False  # pairs of a better and a worse answer to one prompt (or arena votes)

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, not {self.budget!r}.")
        if self.hardware not in HARDWARE:
            raise ValueError(f"hardware must be one of {', '.join(HARDWARE)}, not {self.hardware!r}.")
        if self.n_examples is not None:
            self.n_examples = int(self.n_examples)
            if self.n_examples < 0:
                raise ValueError("The number of examples cannot be negative.")

    @classmethod
    def from_dict(cls, d: dict) -> "Answers":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class Question:
    key: str
    text: str
    kind: str  # bool | int | choice
    choices: tuple[str, ...] = ()
    help: str = ""


QUESTIONS: tuple[Question, ...] = (
    Question("needs_current_info", "Does the task need current, changing or private-document information?", "bool",
             help="e.g. prices, policies, a product catalogue: facts that change or live in documents"),
    Question("style_or_format", "Is the goal a writing style, tone or output format?", "bool",
             help="e.g. always answer in our brand voice, always return this JSON shape"),
    Question("domain_terminology", "Does the domain use terminology the base model handles badly?", "bool"),
    Question("n_examples", "How many good examples do you have (or could write)?", "int",
             help="input and the ideal answer, checked by a person"),
    Question("budget", "Budget for training?", "choice", BUDGETS, "low: a few dollars; medium: tens to hundreds; high: more"),
    Question("hardware", "Hardware available?", "choice", HARDWARE,
             "consumer_gpu: e.g. a 24 GB RTX 4090; datacenter_gpu: one A100/H100; multi_gpu: several"),
    Question("data_can_leave", "May the data leave your machine (be sent to a rented GPU or a hosted service)?",
             "bool"),
    Question("openai_customer", "Is your organisation an active OpenAI fine-tuning customer?", "bool",
             help="it fine-tuned on OpenAI and used a fine-tuned model in the past 60 days; OpenAI's self-serve "
                  "fine-tuning is closed to everyone else and takes no new jobs after "
                  f"{providers.openai_dates()['no_new_jobs_after']}"),
    Question("high_volume", "Do latency and inference cost at scale matter (many requests)?", "bool"),
    Question("tried_prompting", "Have you already tried a good prompt with a few examples?", "bool"),
    Question("model_does_task", "Does the model already do the task in the right format, with people preferring "
             "some of its answers over others?", "bool",
             help="e.g. it answers support questions in the right shape, but users like some answers better: "
                  "that is preference tuning's job; if it cannot do the task yet, supervised fine-tuning comes first"),
    Question("has_preference_data", "Do you have preference data: pairs of a better and a worse answer to the same "
             "prompt (or arena votes)?", "bool",
             help="the Arena's votes export as such pairs (prompt, chosen, rejected)"),
)


@dataclass
class Pitfall:
    id: str
    name: str
    remedy: str


@dataclass
class Recommendation:
    approach: str  # rag | fine_tune | both | prompt_engineering
    method: str | None  # openai | lora | qlora | full | None
    reasons: list[str]
    pitfalls: list[Pitfall]
    fix_data_first: bool = False
    rule_ids: list[str] = field(default_factory=list)  # which rows fired, for tests and "why"
    facts: dict = field(default_factory=dict)
    where: str | None = None  # local | hf-jobs | together | openai (None when not fine-tuning)
    deadline: str | None = None  # ISO date until which the recommended path stays open (OpenAI's last day)
    objective: str | None = None  # sft | dpo: what the (first) run learns from (None when not fine-tuning)
    then_objective: str | None = None  # "dpo" when SFT must come first and preference tuning follows

    def to_dict(self) -> dict:
        return asdict(self)

    def headline(self) -> str:
        names = {"rag": "Retrieval (RAG)", "fine_tune": "Fine-tuning", "both": "RAG and fine-tuning",
                 "prompt_engineering": "Prompt engineering first"}
        methods = {"openai": "OpenAI fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit)", "full": "full fine-tuning"}
        places = {"hf-jobs": " on a rented GPU (Hugging Face Jobs)", "together": " on Together AI (hosted)"}
        text = names[self.approach]
        objectives = {"sft": "SFT", "dpo": "DPO preference tuning"}
        if self.objective:
            then = f", then {objectives[self.then_objective]}" if self.then_objective else ""
            text += f" ({objectives[self.objective]}{then})"
        if self.method:
            text += f", with {methods[self.method]}" + places.get(self.where or "", "")
            if self.deadline:
                text += f" (new jobs only until {self.deadline})"
        return ("Fix the data first. Then: " + text) if self.fix_data_first else text

    def to_markdown(self) -> str:
        lines = [f"### {self.headline()}", "", "**Why**"]
        lines += [f"- {r}" for r in self.reasons]
        if self.pitfalls:
            lines += ["", "**Pitfalls to watch**"]
            lines += [f"- **{p.name}**: {p.remedy}" for p in self.pitfalls]
        return "\n".join(lines)


# --------------------------------------------------------------------------- facts


@dataclass
class Facts:
    """The answers, with the checked dataset's figures merged in."""

    a: Answers
    n: int | None  # examples: the report's count when there is one, else the answer
    from_report: bool = False
    data_errors: int = 0
    failing: tuple[str, ...] = ()  # checklist ids with status "fail"
    warning: tuple[str, ...] = ()  # checklist ids with status "warn"
    openai: providers.Availability = providers.Availability(False, "", None)  # OpenAI for this person, today
    today: date | None = None
    where: str | None = None  # where the chosen method runs, once METHOD_RULES picked it (notes read it)

    @property
    def no_gpu_data_may_leave(self) -> bool:
        return self.a.data_can_leave and self.a.hardware == "none"

    @property
    def data_broken(self) -> bool:
        return bool(self.data_errors or self.failing)

    @property
    def wants_tuning(self) -> bool:
        return (self.a.style_or_format or self.a.domain_terminology or self.a.high_volume
                or self.a.has_preference_data)

    def n_is(self, pred: Callable[[int], bool]) -> bool:
        return self.n is not None and pred(self.n)


def summarize_report(report: Any) -> dict:
    """The bits of a DataReport (object or dict) the guide uses."""
    if report is None:
        return {}
    get = (lambda k, d=None: report.get(k, d)) if isinstance(report, dict) else (lambda k, d=None: getattr(report, k, d))
    checklist = get("checklist") or []

    def status(item, key):
        return item.get(key) if isinstance(item, dict) else getattr(item, key)

    errors = get("errors") or []
    return {
        "n_examples": int(get("n_examples") or 0),
        "n_errors": len(errors),
        "failing": [status(c, "id") for c in checklist if status(c, "status") == "fail"],
        "warning": [status(c, "id") for c in checklist if status(c, "status") == "warn"],
    }


def make_facts(answers: Answers, report_summary: dict | None = None, today: date | None = None) -> Facts:
    day = today or providers.today()
    openai = providers.availability("openai", day, answers.openai_customer)
    s = report_summary or {}
    if s and "n_examples" in s:
        return Facts(answers, int(s["n_examples"]), True, int(s.get("n_errors", 0)),
                     tuple(s.get("failing", ())), tuple(s.get("warning", ())), openai, day)
    return Facts(answers, answers.n_examples, openai=openai, today=day)


# --------------------------------------------------------------------------- rule tables


@dataclass(frozen=True)
class Rule:
    id: str
    when: Callable[[Facts], bool]
    then: str | None  # the approach / method this row recommends (None for notes and pitfalls)
    reason: str  # one line; {n}, {openai_why}, {openai_shutdown}, {cheapest_gpu} are filled in (see _fmt)
    tuning_only: bool = False  # pitfalls: only when the advice is to fine-tune
    where: str | None = None  # method rows: where the method runs (local | hf-jobs | together | openai)


APPROACH_RULES: tuple[Rule, ...] = (
    Rule("both_facts_and_style", lambda f: f.a.needs_current_info and f.wants_tuning, "both",
         "The answers need changing facts (retrieval supplies them at question time) and a consistent "
         "style/format or vocabulary (fine-tuning teaches it): use both."),
    Rule("rag_for_facts", lambda f: f.a.needs_current_info, "rag",
         "The task needs current or document knowledge: retrieval keeps it fresh and citable; fine-tuning "
         "does not reliably teach facts and goes stale."),
    Rule("too_few_examples", lambda f: f.n_is(lambda n: n < MIN_EXAMPLES), "prompt_engineering",
         "Only {n} examples: too few to fine-tune (OpenAI needs at least 10, 50-100 is a sensible start); put "
         "them in the prompt as few-shot examples and collect more."),
    Rule("nothing_to_teach", lambda f: not f.wants_tuning, "prompt_engineering",
         "No style, format or vocabulary to teach and no scale pressure: a well-written prompt is cheaper "
         "and faster to iterate; fine-tune only if it falls short."),
    Rule("prompt_not_tried", lambda f: not f.a.tried_prompting and not f.a.high_volume and f.n_is(lambda n: n < FEW_EXAMPLES),
         "prompt_engineering",
         "With {n} examples and no prompt tried yet, try a prompt with a few of them first: it sets the "
         "baseline a fine-tuned model must beat."),
    Rule("fine_tune", lambda f: True, "fine_tune",
         "The goal is behaviour (style, format, vocabulary, or a cheaper model at scale): that is what "
         "fine-tuning changes."),
)

METHOD_RULES: tuple[Rule, ...] = (
    Rule("private_no_gpu", lambda f: not f.a.data_can_leave and f.a.hardware == "none", "qlora",
         "The data may not leave your machine, so no rented or hosted fine-tuning; with no GPU, QLoRA needs the "
         "least: an 8B model fits a 24 GB card (buy or use a private one).", where="local"),
    Rule("openai_customer_no_gpu", lambda f: f.no_gpu_data_may_leave and f.openai.available, "openai",
         "You are an active OpenAI fine-tuning customer and have no GPU: OpenAI fine-tuning needs no hardware and "
         "bills per token, but it is {openai_why}. A fine-tune stops serving when its base model does: "
         "{openai_shutdown}.", where="openai"),
    Rule("hosted_full_big_data", lambda f: f.no_gpu_data_may_leave and f.a.budget == "high"
         and f.n_is(lambda n: n >= FULL_FT_MIN_EXAMPLES), "full",
         "No GPU, a high budget and {n} examples: Together AI runs full fine-tuning of an open model for you and "
         "bills per training token, with no multi-GPU cluster to set up.", where="together"),
    Rule("rented_gpu_no_gpu", lambda f: f.no_gpu_data_may_leave, "lora",
         "No GPU here and the data may be sent out: rent one by the minute on Hugging Face Jobs (from "
         "{cheapest_gpu}) and run the same LoRA training; the model you get is yours to keep and serve.",
         where="hf-jobs"),
    Rule("full_big_data", lambda f: f.a.hardware == "multi_gpu" and f.a.budget == "high"
         and f.n_is(lambda n: n >= FULL_FT_MIN_EXAMPLES), "full",
         "Several GPUs, a high budget and {n} examples: enough data for full fine-tuning to pay off over LoRA.",
         where="local"),
    Rule("lora_datacenter", lambda f: f.a.hardware in ("datacenter_gpu", "multi_gpu"), "lora",
         "A data-centre GPU holds a 7-8B model's bf16 weights: LoRA trains ~1% of the parameters at "
         "close to full fine-tuning quality, with far less memory.", where="local"),
    Rule("qlora_consumer", lambda f: f.a.hardware == "consumer_gpu", "qlora",
         "A consumer GPU: QLoRA keeps the base model in 4 bits, so an 8B model trains in about 10-16 GB.",
         where="local"),
)

OBJECTIVE_RULES: tuple[Rule, ...] = (
    Rule("dpo_ready", lambda f: f.a.has_preference_data and f.a.model_does_task, "dpo",
         "The model already does the task in the right format and you have pairs of a preferred and a worse "
         "answer: preference tuning (DPO) learns from the gap between them, which SFT on single answers cannot. "
         "Start it from the model that already works (your SFT model, or the instruct model)."),
    Rule("sft_before_dpo", lambda f: f.a.has_preference_data and not f.a.model_does_task, "sft",
         "You have preference pairs, but the model does not yet do the task or its format: DPO only refines a "
         "model that already works. Train SFT first (the preferred answers make SFT examples), then DPO from that "
         "model on the pairs."),
    Rule("dpo_needs_pairs", lambda f: f.a.model_does_task and not f.a.has_preference_data, "sft",
         "The model already does the task; if people prefer some answers over others, collect pairs (the Arena's "
         "votes export as DPO pairs) and tune with DPO. Until then, SFT on the answers you want."),
    Rule("sft", lambda f: True, "sft",
         "You have examples of the answers to give: supervised fine-tuning (SFT) teaches the model to give them."),
)

NOTE_RULES: tuple[Rule, ...] = (
    Rule("few_steers_from_full", lambda f: f.a.hardware == "multi_gpu" and f.n_is(lambda n: n < FULL_FT_MIN_EXAMPLES),
         None, "{n} examples are too few for full fine-tuning (it would memorise them and forget more); "
         "LoRA changes far fewer weights."),
    Rule("openai_closed", lambda f: f.no_gpu_data_may_leave and not f.openai.available, None,
         "OpenAI fine-tuning is not suggested: {openai_why}"),
    Rule("together_alternative", lambda f: f.where == "hf-jobs", None,
         "Or let Together AI fine-tune an open model for you (LoRA or full, SFT or DPO, billed per training "
         "token): no training code or GPU to look after."),
    Rule("low_budget_openai", lambda f: f.a.budget == "low" and f.where == "openai",
         None, "On a low budget start with the cheapest OpenAI model that still runs (the Estimate step marks "
         "the ones shut down): a few dollars for a thousand examples."),
    Rule("low_budget_rented", lambda f: f.a.budget == "low" and f.where == "hf-jobs", None,
         "On a low budget, LoRA of a 1-3B model on {cheapest_gpu} costs a few dollars for a thousand examples."),
    Rule("scale_small_model", lambda f: f.a.high_volume, None,
         "At high volume a fine-tuned small model can replace a large prompted one: shorter prompts and a "
         "cheaper model cut latency and cost per request."),
    Rule("from_report", lambda f: f.from_report, None,
         "Your checked dataset has {n} valid examples; this advice uses that count."),
)

PITFALL_RULES: tuple[tuple[Rule, str, str], ...] = (
    (Rule("poor_data", lambda f: f.data_broken, None, ""), "Poor data",
     "the dataset check found errors or a failing checklist item: fix them in the Data step before paying "
     "for training; a model learns the mistakes as faithfully as the good examples."),
    (Rule("data_warnings", lambda f: not f.data_broken and bool(f.warning), None, ""), "Data warnings",
     "some checklist items warn: read them in the Data step (duplicates, imbalance, long examples)."),
    (Rule("overfitting", lambda f: f.n_is(lambda n: MIN_EXAMPLES <= n < FEW_EXAMPLES), None, "", True), "Overfitting",
     "with under 100 examples, hold out a validation set, keep epochs low (OpenAI's auto rule raises them "
     "for tiny sets) and watch validation loss; collect more examples."),
    (Rule("forgetting", lambda f: f.a.hardware in ("datacenter_gpu", "multi_gpu") or f.a.domain_terminology, None, "",
          True),
     "Catastrophic forgetting", "a model tuned hard on one task loses general skills: prefer LoRA, a low learning "
     "rate and few epochs, mix in some general examples, and compare against the base model in the Arena."),
    (Rule("wrong_use_case", lambda f: f.a.needs_current_info, None, ""), "Wrong use case",
     "fine-tuning does not keep facts up to date: put facts in retrieval and fine-tune only the behaviour."),
    (Rule("model_shutdown", lambda f: f.where == "openai", None, "", True), "Model shutdown",
     "a fine-tune stops serving when its base model shuts down ({openai_shutdown}); keep your dataset so you can "
     "retrain an open model elsewhere."),
    (Rule("privacy", lambda f: not f.a.data_can_leave, None, ""), "Privacy",
     "do not upload this data to a hosted service; train locally and keep the outputs on your machine."),
    (Rule("unknown_size", lambda f: f.n is None, None, ""), "Unknown dataset size",
     "count your good examples (or check the dataset in the Data step): the advice depends on it."),
)


def _cheapest_gpu() -> str:
    flavors = providers.provider("hf-jobs")["flavors"]
    name, row = min(flavors.items(), key=lambda item: item[1]["usd_per_hour"])
    return f"a {row['gpu']} ({name}) at ${row['usd_per_hour']:.2f} an hour"


def _openai_shutdown(f: Facts) -> str:
    soonest = providers.shutting_down(10**6, f.today)
    return soonest[0].sentence() if soonest else "no shutdown announced yet"


def _fmt(reason: str, f: Facts) -> str:
    fills = {
        "{n}": lambda: f"{f.n:,}" if f.n is not None else "an unknown number of",
        "{openai_why}": lambda: f.openai.why,
        "{openai_shutdown}": lambda: _openai_shutdown(f),
        "{cheapest_gpu}": _cheapest_gpu,
    }
    for key, value in fills.items():
        if key in reason:
            reason = reason.replace(key, value())
    return reason


def recommend(answers: Answers | dict, report_summary: dict | Any | None = None,
              today: date | None = None) -> Recommendation:
    """The recommendation for these answers on `today` (default: the current date); `report_summary` is
    `summarize_report(report)` or the report itself."""
    if isinstance(answers, dict):
        answers = Answers.from_dict(answers)
    if report_summary is not None and not (isinstance(report_summary, dict) and "n_errors" in report_summary):
        report_summary = summarize_report(report_summary)
    f = make_facts(answers, report_summary, today)
    reasons: list[str] = []
    fired: list[str] = []
    if f.data_broken:
        what = []
        if f.data_errors:
            what.append(f"{f.data_errors:,} error(s)")
        if f.failing:
            what.append("failing checklist item(s): " + ", ".join(f.failing))
        reasons.append(f"Fix the data first: the dataset check found {' and '.join(what)}.")
        fired.append("fix_data_first")
    approach_rule = next(r for r in APPROACH_RULES if r.when(f))
    reasons.append(_fmt(approach_rule.reason, f))
    fired.append(approach_rule.id)
    method = objective = then_objective = None
    if approach_rule.then in ("fine_tune", "both"):
        objective_rule = next(r for r in OBJECTIVE_RULES if r.when(f))
        objective = objective_rule.then
        then_objective = "dpo" if objective_rule.id == "sft_before_dpo" else None
        reasons.append(_fmt(objective_rule.reason, f))
        fired.append(objective_rule.id)
        method_rule = next((r for r in METHOD_RULES if r.when(f)), None)
        if method_rule is not None:
            method, f.where = method_rule.then, method_rule.where
            reasons.append(_fmt(method_rule.reason, f))
            fired.append(method_rule.id)
        for rule in NOTE_RULES:
            if rule.when(f):
                reasons.append(_fmt(rule.reason, f))
                fired.append(rule.id)
    elif f.from_report:
        reasons.append(_fmt(NOTE_RULES[-1].reason, f))
        fired.append(NOTE_RULES[-1].id)
    tuning = approach_rule.then in ("fine_tune", "both")
    pitfalls = []
    for rule, name, remedy in PITFALL_RULES:
        if rule.when(f) and (tuning or not rule.tuning_only):
            pitfalls.append(Pitfall(rule.id, name, _fmt(remedy, f)))
            fired.append(rule.id)
    deadline = f.openai.deadline if f.where == "openai" else None
    return Recommendation(
        approach=approach_rule.then,
        method=method,
        reasons=reasons,
        pitfalls=pitfalls,
        fix_data_first=f.data_broken,
        rule_ids=fired,
        facts={"n_examples": f.n, "from_report": f.from_report, "data_errors": f.data_errors,
               "failing": list(f.failing), "warning": list(f.warning), "today": f.today.isoformat(),
               "openai_available": f.openai.available, "openai_why": f.openai.why},
        where=f.where,
        deadline=deadline.isoformat() if deadline else None,
        objective=objective,
        then_objective=then_objective,
    )


def all_rule_ids() -> set[str]:
    """Every rule id (tests check there is a test per branch)."""
    ids = {r.id for r in (*APPROACH_RULES, *OBJECTIVE_RULES, *METHOD_RULES, *NOTE_RULES)}
    ids |= {r.id for r, _, _ in PITFALL_RULES}
    return ids | {"fix_data_first"}


def estimate_preference(rec: Recommendation) -> str | None:
    """The `prefer` option for the Estimate step that matches this recommendation."""
    return rec.method


def parse_answer(q: Question, text: str) -> Any:
    """One typed answer from the terminal; ValueError with what to type instead."""
    t = (text or "").strip().lower()
    if q.kind == "bool":
        if t in ("y", "yes", "true", "1"):
            return True
        if t in ("n", "no", "false", "0"):
            return False
        raise ValueError("answer y or n")
    if q.kind == "int":
        if t in ("", "?", "unknown", "don't know", "dont know"):
            return None
        try:
            value = int(t.replace(",", "").replace("_", ""))
        except ValueError:
            raise ValueError("type a whole number, or press Enter if you don't know") from None
        if value < 0:
            raise ValueError("the number cannot be negative")
        return value
    for i, c in enumerate(q.choices, 1):
        if t in (c, str(i)):
            return c
    raise ValueError("type one of " + ", ".join(f"{i} ({c})" for i, c in enumerate(q.choices, 1)))
