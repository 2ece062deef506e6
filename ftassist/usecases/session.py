"""One person's way through the steps: the single truth every tab, the step bar and the assistant read.

Why typed: the session was a dict whose keys were read in seven modules, so a step could leave
a stale value that another read (the Arena took the latest job instead of the selected run; the
assistant ignored the Decide answers). Here each field has one meaning, and each step's result
enters through one transition method that also clears what it makes stale (a new dataset drops
the old split and chosen option). Transitions return a new Session; nothing mutates one in place.

It is stored as JSON (`to_dict`) by the UI's session store; `from_dict` also reads the dicts
earlier versions saved, so a reload after an upgrade keeps the person's work.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Decision:
    """The Decide step: the answers given and what they led to."""

    answers: dict[str, Any]
    approach: str  # fine_tune | rag | both | prompt_engineering
    method: str | None  # openai | lora | qlora | full | None
    headline: str = ""
    recommendation: dict[str, Any] = field(default_factory=dict)  # guide.Recommendation.to_dict()


@dataclass(frozen=True)
class Dataset:
    """The checked dataset: where its file is, the target model it was checked for, its report."""

    path: str
    report: dict[str, Any]  # DataReport.to_dict()
    model: str | None = None
    mapping: dict[str, str] | None = None  # which of the file's fields hold the prompt, answer, ... (when mapped)

    @property
    def n_examples(self) -> int:
        return int(self.report.get("n_examples") or 0)

    @property
    def n_errors(self) -> int:
        return len(self.report.get("errors") or [])


@dataclass(frozen=True)
class Split:
    """Fix & split's files: what the Estimate and Train steps use."""

    train: str
    valid: str | None
    folder: str
    n_train: int
    n_valid: int
    test: str | None = None
    n_test: int = 0

    def counts(self) -> str:
        """'54 train / 6 validation', and '/ 5 test' when a test split is held out: every step that names the
        split says all of it, so nobody wonders where the held-out examples went."""
        text = f"{self.n_train:,} train / {self.n_valid:,} validation"
        return text + (f" / {self.n_test:,} test" if self.n_test else "")


@dataclass(frozen=True)
class Session:
    decision: Decision | None = None
    dataset: Dataset | None = None
    split: Split | None = None
    option: dict[str, Any] | None = None  # the Estimate row chosen for training (EstimateRow as dict)
    run_id: str | None = None  # the run the person started or selected
    model_ids: tuple[str, ...] = ()  # arena models this person registered, newest last
    sample: bool = False  # the shipped sample was loaded ("Try with sample data")
    pending_action: dict[str, Any] | None = None  # an assistant proposal waiting for Confirm

    # -- transitions: one per step result ----------------------------------------------------------
    def decided(self, decision: Decision) -> "Session":
        return replace(self, decision=decision)

    def checked(self, dataset: Dataset) -> "Session":
        """A newly checked dataset: its old split and chosen option no longer describe it."""
        same_file = self.dataset is not None and self.dataset.path == dataset.path
        return replace(self, dataset=dataset, split=self.split if same_file else None,
                       option=self.option if same_file else None, sample=self.sample and same_file)

    def split_into(self, split: Split) -> "Session":
        """A new split: an option chosen for the old one is kept (it names a model and hardware, not files)."""
        return replace(self, split=split)

    def chose(self, option: dict[str, Any] | None) -> "Session":
        return replace(self, option=dict(option) if option else None)

    def selected_run(self, run_id: str | None) -> "Session":
        return replace(self, run_id=run_id or None)

    def registered_model(self, model_id: str) -> "Session":
        ids = tuple(m for m in self.model_ids if m != model_id) + (model_id,)
        return replace(self, model_ids=ids)

    def forgot_model(self, model_id: str) -> "Session":
        return replace(self, model_ids=tuple(m for m in self.model_ids if m != model_id))

    def proposed(self, action: dict[str, Any] | None) -> "Session":
        return replace(self, pending_action=action)

    def loaded_sample(self) -> "Session":
        return replace(self, sample=True)

    # -- what later steps ask -----------------------------------------------------------------------
    @property
    def training_files(self) -> tuple[str, str | None] | None:
        """(train, valid or None) for a run: the split when there is one, else the checked file itself.

        A dataset combined from several sources, or checked through a field mapping (its records are in no
        format the trainers read), has no file to train on until Fix & split writes one."""
        if self.split is not None and self.split.train:
            return self.split.train, (self.split.valid if self.split.n_valid else None)
        if self.dataset is not None and len(self.dataset.report.get("sources") or []) <= 1 and not self.dataset.mapping:
            return self.dataset.path, None
        return None

    @property
    def report(self) -> dict[str, Any] | None:
        return self.dataset.report if self.dataset is not None else None

    # -- storage ------------------------------------------------------------------------------------
    def __hash__(self) -> int:
        """By content (Gradio hashes a gr.State's value to see whether a handler changed it)."""
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_ids"] = list(self.model_ids)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Session":
        """A stored session, of this version or an earlier one (keys report/dataset_path/clean/estimate/
        job_id/guide). Unknown keys are ignored; a malformed part is dropped, never raised."""
        data = data if isinstance(data, dict) else {}
        if "dataset_path" in data or "clean" in data or "job_id" in data or "guide" in data or "report" in data:
            data = _from_first_version(data)
        return cls(
            decision=_build(Decision, data.get("decision")),
            dataset=_build(Dataset, data.get("dataset")),
            split=_build(Split, data.get("split")),
            option=data.get("option") if isinstance(data.get("option"), dict) else None,
            run_id=data.get("run_id") if isinstance(data.get("run_id"), str) else None,
            model_ids=tuple(m for m in (data.get("model_ids") or ()) if isinstance(m, str)),
            sample=bool(data.get("sample")),
            pending_action=data.get("pending_action") if isinstance(data.get("pending_action"), dict) else None,
        )

    @classmethod
    def of(cls, value: "Session | dict | None") -> "Session":
        """What a front end holds (a Session, a stored dict, or nothing) as a Session."""
        return value if isinstance(value, Session) else cls.from_dict(value)


def _build(kind, value):
    if not isinstance(value, dict):
        return None
    names = {f.name for f in fields(kind)}
    try:
        return kind(**{k: v for k, v in value.items() if k in names})
    except TypeError:  # a required field is missing: the part is unusable, the rest of the session is not
        return None


def _from_first_version(old: dict[str, Any]) -> dict[str, Any]:
    """The dict the first UI kept, mapped onto this version's fields."""
    new: dict[str, Any] = {}
    guide = old.get("guide")
    if isinstance(guide, dict) and guide.get("approach"):
        new["decision"] = {"answers": guide.get("answers") or {}, "approach": guide["approach"],
                           "method": guide.get("method"), "recommendation": guide}
    if old.get("dataset_path") and isinstance(old.get("report"), dict):
        new["dataset"] = {"path": old["dataset_path"], "report": old["report"], "model": old["report"].get("model")}
    clean = old.get("clean")
    if isinstance(clean, dict) and clean.get("train"):
        new["split"] = {"train": clean["train"], "valid": clean.get("valid"), "folder": clean.get("dir") or "",
                        "n_train": int(clean.get("n_train") or 0), "n_valid": int(clean.get("n_valid") or 0)}
    if isinstance(old.get("estimate"), dict):
        new["option"] = old["estimate"]
    if isinstance(old.get("job_id"), str):
        new["run_id"] = old["job_id"]
    new["sample"] = bool(old.get("sample"))
    if isinstance(old.get("assistant_pending"), dict):
        new["pending_action"] = old["assistant_pending"]
    return new
