"""The plain-data contracts of the Data station (see docs/ARCHITECTURE.md, "Contracts").

Everything here is a dataclass that serialises to plain JSON values (`to_dict`), because the
report travels: to the CLI's `--json`, to DuckDB, to the Estimate step, to the UI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]
Status = Literal["pass", "warn", "fail", "not_checked"]  # not_checked: nothing to judge, never a PASS

FORMATS = ("chat", "instruction", "completion", "sharegpt", "preference")


@dataclass(slots=True)  # one per record of a file: slots make each cheaper to make and to free
class Record:
    """One record as read from the file, before any judgement.

    `line` is the 1-based source line (JSONL: the line; JSON array: the line where the
    object starts; CSV: the file line of the row, header is line 1; Parquet: row index + 1).
    `data` is the parsed object (anything JSON can hold) or None when it could not be
    parsed, in which case `problem` says why.
    """

    line: int
    data: Any = None
    problem: "Issue | None" = None
    raw_size: int = 0  # bytes of the source text of this record


@dataclass
class Issue:
    """An error or warning pinned to a line (0 = the file as a whole)."""

    line: int
    code: str
    message: str
    hint: str = ""
    severity: Severity = "error"
    column: int | None = None
    source: str | None = None  # the file (or Hub dataset) it is in, when a check reads several; `line` is its line

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)  # one per valid record, as Record
class Example:
    """A record that parsed and converted: the canonical chat form keeps OpenAI's keys.

    `chat` is `{"messages": [{"role", "content", optional "name", "weight", "tool_calls",
    "tool_call_id"}...], optional "tools"}`; `source_format` is one of FORMATS; `extra`
    holds non-message columns (e.g. a `category` or `label`) that the checklist can use.
    """

    line: int
    chat: dict
    source_format: str
    extra: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # the record's top-level keys as found in the file (sorted)


@dataclass
class Diagnosis:
    """One cause behind many failing lines, said once: what the file is, and how to fix it.

    `lines` is the grouped text ("1-4,130"), `count` how many records it concerns; `fixable`
    means Fix & split can convert those records safely (no guess about the person's intent).
    """

    code: str
    message: str
    hint: str
    lines: str
    count: int
    fixable: bool = False
    source: str | None = None  # the file it concerns, when a check reads several


@dataclass
class IssueGroup:
    """Identical problems (same code, same message shape) on many lines, shown as one row."""

    code: str
    message: str
    hint: str
    lines: str  # "1-4,130; 4,200"
    count: int
    first_line: int
    severity: Severity = "error"
    source: str | None = None  # the file the lines are in, when a check reads several


@dataclass
class ChecklistItem:
    id: str  # accurate | consistent | diverse | balanced | no_contradictions | lengths | sensitive
    title: str
    status: Status
    summary: str
    evidence: list[dict] = field(default_factory=list)  # each: {"line": int, "sample": str, "note": str}
    details: dict = field(default_factory=dict)


@dataclass
class TokenStats:
    encoding: str
    exact: bool
    per_example: list[int] = field(default_factory=list)  # record order, valid examples only
    assistant_per_example: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # source line of each per_example entry
    total: int = 0
    assistant_total: int = 0
    stats: dict = field(default_factory=dict)  # {"total": {min,max,mean,median,p5,p95}, "assistant": {...}}
    over_limit: list[int] = field(default_factory=list)  # lines over the target's per-example limit
    limit: int | None = None


@dataclass
class PreferenceSummary:
    """What a check of preference pairs (DPO data) adds: the pairs' format and the pair checks' findings.

    `format` is one of `preferences.PAIR_FORMATS` ("openai_dpo", "trl", "sharegpt"); `style` and
    `prompt` say how a TRL file writes its pairs (text or messages, the prompt explicit or implicit).
    Each list names the lines involved; `length` has the length-bias figures (the share of pairs
    whose chosen answer is longer, the median and mean chosen/rejected length ratio)."""

    format: str
    title: str  # the format in words
    n_pairs: int = 0
    style: str = "conversational"
    prompt: str = "explicit"
    identical_lines: list[int] = field(default_factory=list)
    empty_lines: list[int] = field(default_factory=list)
    duplicate_lines: list[list[int]] = field(default_factory=list)  # [line, line of the first]
    contradiction_lines: list[list[int]] = field(default_factory=list)  # [line, line of the opposite pair]
    length: dict = field(default_factory=dict)


@dataclass
class SourceSummary:
    """One of several sources combined into one check: what it is and what it gave.

    Its examples are contiguous in the report's per-example token lists, in the order of `DataReport.sources`;
    every line the report names for it reads `name:line`, the line being the source's own."""

    name: str  # as shown: the file's name, or the Hub id with its subset and split
    path: str  # the file read (a Hub dataset as the JSONL it was written to)
    format: str | None = None  # this source's own format (the mixed-format rule applies within one source)
    n_records: int = 0
    n_examples: int = 0
    file_size: int = 0


@dataclass
class DataReport:
    path: str
    n_records: int  # everything read, valid or not
    n_examples: int  # records that are valid examples
    format: str | None  # the detected format, "mixed" when several, None when nothing parsed
    n_vision_examples: int = 0  # valid examples with an image part (OpenAI vision fine-tuning)
    errors: list[Issue] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)
    tokens: TokenStats | None = None
    checklist: list[ChecklistItem] = field(default_factory=list)
    model: str | None = None
    file_size: int = 0
    seconds: float = 0.0
    diagnosis: list[Diagnosis] = field(default_factory=list)  # file-level causes, said once at the top
    error_groups: list[IssueGroup] = field(default_factory=list)  # `errors` grouped, for people
    warning_groups: list[IssueGroup] = field(default_factory=list)
    mapping: dict[str, str] | None = None  # the field mapping the records went through (role -> key path)
    proposed_mapping: dict[str, str] | None = None  # in no known format and not mapped: what the keys point at
    found_keys: list[str] = field(default_factory=list)  # key paths a mapping can name (`key`, `list[].key`)
    # a file of preference pairs: `format` is "preference", `n_examples` counts valid pairs, the token counts are
    # per pair (prompt + chosen and prompt + rejected: what DPO trains on) and the checklist has the pair checks
    preference: PreferenceSummary | None = None
    # several sources combined (`sources.check_sources`): each with its own format and counts; `format` is
    # "mixed" when they differ; every issue, evidence entry and group names its source (`source`, `name:line`)
    sources: list[SourceSummary] = field(default_factory=list)

    @property
    def is_preference(self) -> bool:
        return self.preference is not None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        """Plain JSON values: what `ftassist check --json` prints. Through orjson, which writes the dataclasses
        in C: the per-example token lists of a large file make a recursive copy (asdict) a sizeable part of
        a check."""
        import orjson

        return orjson.loads(orjson.dumps(self, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))
