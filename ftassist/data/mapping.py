"""Map your fields: records in no known format become records in one, by naming which key holds what.

Why: many public datasets keep the prompt and answer under their own names (`question`/`answer`,
`query`/`response`) or nest several examples in one record (self-instruct's seed tasks:
`{"instruction": ..., "instances": [{"input": ..., "output": ...}]}`). Such a file fails on every line
with "the record has no output"; a mapping (proposed from the keys actually present, or written by the
person as `prompt=instruction,answer=instances[].output`) turns each record into alpaca records
(`instruction`/`input`/`output`/`system`) or a chat (`messages`), one per item of the nested list, each
keeping the source line so errors still point into the person's file.

Paths: `key`, `key.sub` (a field of an object), `list[].key` (every item of a list: one example each).
At most one list is expanded per record, and every `[]` path of a mapping names the same list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Iterable, Iterator

from .report import Issue, Record

ROLES = ("prompt", "input", "answer", "system", "messages", "chosen", "rejected")
REQUIRED_HINT = ("name the prompt and the answer (prompt=KEY,answer=KEY), the conversation (messages=KEY), "
                 "or a preference pair's two answers (prompt=KEY,chosen=KEY,rejected=KEY)")

# names that usually hold each role, best first (compared lower-cased, `-`/space read as `_`)
PROMPT_NAMES = ("prompt", "question", "instruction", "query", "problem", "user", "human", "request", "input",
                "text", "source")
INPUT_NAMES = ("input", "context", "passage", "document")
ANSWER_NAMES = ("answer", "output", "response", "completion", "target", "reply", "solution", "assistant", "gpt",
                "chosen", "label")
SYSTEM_NAMES = ("system", "system_prompt", "system_message", "persona")
# a preference pair's two answers
CHOSEN_NAMES = ("chosen", "preferred", "better", "good", "accepted", "winner", "positive", "chosen_response",
                "response_chosen", "preferred_response")
REJECTED_NAMES = ("rejected", "dispreferred", "worse", "bad", "loser", "negative", "rejected_response",
                  "response_rejected", "non_preferred", "dispreferred_response")
MESSAGES_NAMES = ("messages", "conversation", "conversations", "dialog", "dialogue", "turns", "chat")

SAMPLE_RECORDS = 200  # records a proposal looks at
_MISSING = object()


class MappingError(ValueError):
    """A mapping that cannot be used, or a record it cannot be applied to: the message says which and why."""


@dataclass(frozen=True)
class Mapping:
    """Which path of the file's records holds each part of an example (None: not in the file)."""

    prompt: str | None = None
    input: str | None = None  # a second part of the prompt (alpaca's `input`), joined after it
    answer: str | None = None
    system: str | None = None
    messages: str | None = None  # a whole conversation (a list of role/content or from/value turns)
    chosen: str | None = None  # a preference pair's better answer (a text, or a list of turns)
    rejected: str | None = None  # ... and its worse one

    @property
    def pairs(self) -> bool:
        """Whether the mapping makes preference pairs (`prompt`/`chosen`/`rejected` records), not examples."""
        return bool(self.chosen or self.rejected)

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def text(self) -> str:
        """The mapping as `--map` takes it."""
        return ",".join(f"{role}={path}" for role, path in self.to_dict().items())

    @property
    def usable(self) -> bool:
        return bool(self.messages or (self.prompt and self.answer) or (self.chosen and self.rejected))

    @property
    def list_path(self) -> str | None:
        """The list expanded into one example per item (`instances` for `instances[].output`), if any."""
        for path in self.to_dict().values():
            if "[]" in path:
                return path.split("[]", 1)[0]
        return None

    @classmethod
    def of(cls, value: "Mapping | dict | str | None") -> "Mapping | None":
        """A mapping from what a caller holds: a Mapping, a dict (JSON, the session), `--map` text, or None."""
        if value is None or isinstance(value, Mapping):
            return value
        if isinstance(value, str):
            return parse_mapping(value)
        if not isinstance(value, dict):
            raise MappingError(f"a mapping is a dict of role -> key path, not {type(value).__name__}")
        unknown = [str(role) for role in value if role not in ROLES]
        if unknown:
            raise MappingError(f"unknown role {unknown[0]!r} in the mapping; the roles are {', '.join(ROLES)}")
        return _checked(cls(**{role: _path(role, path) for role, path in value.items() if path}))


def _path(role: str, path: Any) -> str:
    if not isinstance(path, str) or not path.strip():
        raise MappingError(f"{role}= needs a key path, e.g. {role}=question or {role}=instances[].output")
    path = path.strip()
    for segment in path.split("."):
        name = segment[:-2] if segment.endswith("[]") else segment
        if not name or "[" in name or "]" in name:
            raise MappingError(f"{role}={path}: {segment!r} is not a key (write key, key.sub or list[].key)")
    if path.count("[]") > 1:
        raise MappingError(f"{role}={path}: only one list can be expanded (one `[]`)")
    if path.endswith("[]") and role != "messages":
        raise MappingError(f"{role}={path}: name the key of each item, e.g. {path}.output")
    return path


def _checked(mapping: Mapping) -> Mapping:
    lists = {path.split("[]", 1)[0] for path in mapping.to_dict().values() if "[]" in path}
    if len(lists) > 1:
        raise MappingError(f"the mapping expands several lists ({', '.join(sorted(lists))}); one record can "
                           "expand one list")
    if mapping.messages and "[]" in mapping.messages:
        raise MappingError(f"messages={mapping.messages}: name the list of turns itself, without `[]`")
    if mapping.messages and (mapping.prompt or mapping.answer or mapping.input):
        raise MappingError("a mapping names either the conversation (messages=) or the prompt and answer, not both")
    if mapping.pairs and (mapping.answer or mapping.messages):
        raise MappingError("a preference mapping names the two answers (chosen=, rejected=), not answer= or messages=")
    if mapping.pairs and not (mapping.chosen and mapping.rejected):
        raise MappingError("a preference pair needs both answers: chosen=KEY,rejected=KEY")
    if mapping.pairs and mapping.list_path:
        raise MappingError("a preference mapping makes one pair per record: name keys without `[]` (an answer "
                           "that is a list of turns is taken whole)")
    if not mapping.usable:
        raise MappingError(f"the mapping is incomplete: {REQUIRED_HINT}")
    return mapping


def parse_mapping(text: str) -> Mapping:
    """`prompt=instruction,answer=instances[].output` -> Mapping; MappingError says what is wrong and how."""
    if not isinstance(text, str) or not text.strip():
        raise MappingError(f"--map is empty: {REQUIRED_HINT}")
    roles: dict[str, str] = {}
    for item in text.split(","):
        role, equals, path = item.partition("=")
        role = role.strip().lower()
        if not equals:
            raise MappingError(f"{item.strip()!r} is not ROLE=KEY (e.g. prompt=question,answer=answer)")
        if role not in ROLES:
            raise MappingError(f"unknown role {role!r} in {item.strip()!r}; the roles are {', '.join(ROLES)}")
        if role in roles:
            raise MappingError(f"{role}= is given twice")
        roles[role] = _path(role, path)
    return _checked(Mapping(**roles))


# --------------------------------------------------------------------------- proposing


def key_paths(records: Iterable[Any]) -> dict[str, Counter]:
    """Every path found in the records (`key`, `list[].key`) -> the kinds of value it holds, counted."""
    found: dict[str, Counter] = {}
    for data in records:
        if not isinstance(data, dict):
            continue
        for key, value in data.items():
            key = str(key)
            found.setdefault(key, Counter())[_kind(value)] += 1
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        for sub, sub_value in item.items():
                            found.setdefault(f"{key}[].{sub}", Counter())[_kind(sub_value)] += 1
    return found


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool) or value is None:
        return "other"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "turns" if value and all(isinstance(v, dict) for v in value) else "list"
    return "object" if isinstance(value, dict) else "other"


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1].replace("[]", "").lower().replace("-", "_").replace(" ", "_")


def _best(candidates: list[str], names: tuple[str, ...], taken: set[str]) -> str | None:
    ranked = [(names.index(_leaf(p)), i, p) for i, p in enumerate(candidates) if _leaf(p) in names and p not in taken]
    return min(ranked)[2] if ranked else None


def propose_mapping(records: Iterable[Any]) -> Mapping | None:
    """The mapping the records' keys point at (from their names and value types), or None when none fits.

    Reads at most SAMPLE_RECORDS records. A proposal is a starting point the person confirms."""
    sample = [data for _, data in zip(range(SAMPLE_RECORDS), records)]
    paths = key_paths(sample)
    texts = [p for p, kinds in paths.items() if kinds["text"] + kinds["number"] > sum(kinds.values()) / 2]
    conversations = [p for p, kinds in paths.items() if "[]" not in p and kinds["turns"] > sum(kinds.values()) / 2]
    sides = [p for p in (*texts, *conversations) if "[]" not in p]
    chosen = _best(sides, CHOSEN_NAMES, set())
    rejected = _best(sides, REJECTED_NAMES, {chosen}) if chosen else None
    if chosen and rejected:  # a preference dataset under its own names
        taken = {chosen, rejected}
        prompt = _best([p for p in texts if "[]" not in p], PROMPT_NAMES, taken)
        return Mapping(prompt=prompt, chosen=chosen, rejected=rejected,
                       system=_best([p for p in texts if "[]" not in p], SYSTEM_NAMES, taken | {prompt}))
    answer = _best(texts, ANSWER_NAMES, set())
    if answer is None:
        messages = _best(conversations, MESSAGES_NAMES, set())
        if messages is not None:
            return Mapping(messages=messages, system=_best(texts, SYSTEM_NAMES, set()))
        top = [p for p in texts if "[]" not in p]
        if len(top) < 2:
            return None
        return Mapping(prompt=top[0], answer=top[-1])  # no telling names: first and last text, to be confirmed
    expanded = answer.split("[]", 1)[0] if "[]" in answer else None
    # parts come from the answer's list or the record itself, never from another list
    usable = [p for p in texts if "[]" not in p or p.split("[]", 1)[0] == expanded]
    taken = {answer}
    prompt = _best(usable, PROMPT_NAMES, taken)
    if prompt is None:
        return None
    taken.add(prompt)
    second = _best(usable, INPUT_NAMES, taken) if _leaf(prompt) not in INPUT_NAMES else None
    if second:
        taken.add(second)
    return Mapping(prompt=prompt, input=second, answer=answer, system=_best(usable, SYSTEM_NAMES, taken))


# --------------------------------------------------------------------------- applying


def _resolve(value: Any, path: str) -> Any:
    for segment in path.split("."):
        if not isinstance(value, dict) or segment not in value:
            return _MISSING
        value = value[segment]
    return value


def _text(value: Any, path: str, where: str, required: bool) -> str | None:
    if value is _MISSING or value is None:
        if required:
            raise MappingError(f"{where}has no `{path}`")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MappingError(f"{where}`{path}` is {_kind(value)}, not a text")
    return value if isinstance(value, str) else str(value)


def apply_mapping(record_data: Any, mapping: Mapping) -> list[dict]:
    """The record as records in a known format: alpaca (`instruction`/`input`/`output`/`system`), or a chat
    (`messages`) / ShareGPT (`conversations`) for a mapped conversation; one per item of the expanded list.

    Keys the mapping does not use are kept (a `category` still feeds the checklist). MappingError when the
    record lacks a mapped part; a record that is not an object is returned as it is, for the validator."""
    if not isinstance(record_data, dict):
        return [record_data]
    roles = mapping.to_dict()
    used = {path.split("[]", 1)[0].split(".", 1)[0] for path in roles.values()}
    extra = {k: v for k, v in record_data.items()
             if k not in used and k not in ("instruction", "input", "output", "system", "history", "messages",
                                            "conversations", "prompt", "completion", "chosen", "rejected")}
    if mapping.messages:
        return [_conversation(record_data, mapping, extra)]
    if mapping.pairs:
        return [_pair(record_data, mapping, extra)]
    list_path = mapping.list_path
    if list_path is None:
        return [_alpaca(record_data, None, mapping, extra, "the record ")]
    items = _resolve(record_data, list_path)
    if items is _MISSING:
        raise MappingError(f"the record has no `{list_path}`")
    if not isinstance(items, list) or not items:
        raise MappingError(f"`{list_path}` is {'an empty list' if items == [] else _kind(items)}, "
                           "not a list of items")
    return [_alpaca(record_data, item, mapping, extra, f"item {n} of `{list_path}` ")
            for n, item in enumerate(items, 1)]


def _alpaca(record: dict, item: Any, mapping: Mapping, extra: dict, where: str) -> dict:
    def part(role: str, required: bool) -> str | None:
        path = getattr(mapping, role)
        if not path:
            return None
        if "[]" in path:
            rest = path.split("[]", 1)[1].lstrip(".")
            return _text(_resolve(item, rest), rest, where, required)
        return _text(_resolve(record, path), path, "the record " if where.startswith("item") else where, required)

    out = {**extra, "instruction": part("prompt", True), "input": part("input", False) or "",
           "output": part("answer", True)}
    system = part("system", False)
    if system:
        out["system"] = system
    return out


def _field(record: dict, path: str | None, required: bool) -> str | None:
    """The text at a record's `path` (None when the mapping names no such part)."""
    return _text(_resolve(record, path), path, "the record ", required) if path else None


def _pair(record: dict, mapping: Mapping, extra: dict) -> dict:
    """A preference record in TRL's shape: texts as they are, or (with a system prompt, or answers that are
    turns) every part as a conversation, so that a trainer reads one column type."""
    def side(role: str) -> str | list:
        path = getattr(mapping, role)
        value = _resolve(record, path)
        if isinstance(value, list):
            return value
        return _text(value, path, "the record ", True)

    prompt = _field(record, mapping.prompt, True)
    more = _field(record, mapping.input, False)
    if prompt is not None and more:
        prompt = f"{prompt}\n\n{more}"
    system = _field(record, mapping.system, False)
    chosen, rejected = side("chosen"), side("rejected")
    if not system and isinstance(chosen, str) and isinstance(rejected, str):
        return {**extra, **({"prompt": prompt} if prompt is not None else {}), "chosen": chosen, "rejected": rejected}
    turns = [*([{"role": "system", "content": system}] if system else []),
             *([{"role": "user", "content": prompt}] if prompt is not None else [])]

    def answer(value: str | list) -> list:
        return value if isinstance(value, list) else [{"role": "assistant", "content": value}]

    return {**extra, **({"prompt": turns} if turns else {}), "chosen": answer(chosen), "rejected": answer(rejected)}


def _conversation(record: dict, mapping: Mapping, extra: dict) -> dict:
    turns = _resolve(record, mapping.messages)
    if turns is _MISSING:
        raise MappingError(f"the record has no `{mapping.messages}`")
    if not isinstance(turns, list):
        raise MappingError(f"`{mapping.messages}` is {_kind(turns)}, not a list of turns")
    system = _field(record, mapping.system, False)
    if turns and all(isinstance(t, dict) and "from" in t for t in turns):
        return {**extra, "conversations": turns, **({"system": system} if system else {})}
    if system and not (turns and isinstance(turns[0], dict) and turns[0].get("role") == "system"):
        turns = [{"role": "system", "content": system}, *turns]
    return {**extra, "messages": turns}


def map_records(records: Iterable[Record], mapping: Mapping,
                on_issue: Callable[[Issue], None]) -> Iterator[Record]:
    """The file's records through the mapping: an expanded record gives several with its line (the first keeps
    its byte size, for progress); a record the mapping does not fit is reported at its line and skipped."""
    for record in records:
        if record.problem is not None:
            yield record
            continue
        try:
            mapped = apply_mapping(record.data, mapping)
        except MappingError as exc:
            on_issue(Issue(record.line, "mapping_failed", f"with the mapping {mapping.text()}: {exc}",
                           "fix the record, or change the mapping (--map, or the fields in the Data tab)"))
            continue
        for n, data in enumerate(mapped):
            yield replace(record, data=data, raw_size=record.raw_size if n == 0 else 0)


__all__ = ["Mapping", "MappingError", "ROLES", "apply_mapping", "key_paths", "map_records", "parse_mapping",
           "propose_mapping"]
