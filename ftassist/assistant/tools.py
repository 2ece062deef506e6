"""The assistant's tools ARE the application's use cases: those registered with `assistant=True`.

Why no registry of its own: the intent matcher, the LLM, the tabs and the CLI must give the same
answer to the same question, so all of them call the same use case. This module only adapts one
to the assistant: the LLM's `tools` schema is made from the use case's signature and Google-style
docstring (transformers' `get_json_schema`), leaving out what the assistant fills in itself
(`ctx`, the person's `session`, and an `api_key` typed in the page); JSON arguments from the LLM
are converted to the annotated types; a result comes back as JSON with a Markdown `text` when the
use case wrote one. Whether a use case runs at once or waits for Confirm is `actions`' job.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import types
import typing
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Literal, Union

from ftassist.usecases import registry
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.registry import UseCase
from ftassist.usecases.session import Session

FILLED_IN = ("ctx", "session", "api_key")  # passed by the assistant, never by the LLM
MAX_RESULT_CHARS = 6000  # what one tool result may add to the LLM's context
# Use cases the assistant offers another in place of. recommend_approach takes the answers but not the
# session, so an LLM calling it with only what the person just said would ignore the Decide step's
# answers (it told someone who had just been advised to fine-tune to try prompting first);
# advise_approach starts from them. Drop the entry once recommend_approach reads the session.
REPLACED_BY = {"recommend_approach": "advise_approach"}


def offered() -> dict[str, UseCase]:
    """The use cases the assistant may call, by name."""
    return {name: case for name, case in registry.load_all().items() if case.assistant and name not in REPLACED_BY}


def find(name: str) -> UseCase:
    case = offered().get(name)
    if case is None:
        raise UseCaseError(f"There is no tool {name!r}; tools: {', '.join(offered())}.")
    return case


# -- schemas --------------------------------------------------------------------------------------------
def _is_hook(annotation: Any) -> bool:
    """A callable parameter (a progress callback) is for front ends that show progress, not for the LLM."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    return any(typing.get_origin(a) is collections.abc.Callable or a is collections.abc.Callable for a in options)


def llm_parameters(case: UseCase) -> list[inspect.Parameter]:
    """The use case's parameters the LLM may give (with their resolved annotations)."""
    hints = typing.get_type_hints(case.function)
    return [p.replace(annotation=hints.get(p.name, str)) for p in inspect.signature(case.function).parameters.values()
            if p.name not in FILLED_IN and not _is_hook(hints.get(p.name))]


def _as_json_type(annotation: Any) -> Any:
    """The annotation as a type get_json_schema knows: a dataclass is a JSON object, a Path a string."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = tuple(_as_json_type(a) for a in typing.get_args(annotation))
        return Union[inner]
    if is_dataclass(annotation):
        return dict
    if annotation is Path:
        return str
    return annotation


def schema(case: UseCase) -> dict:
    """The OpenAI chat-completions `tools` entry for one use case, from its signature and docstring."""
    # Deferred: transformers is a large package and only the LLM path needs schemas.
    from transformers.utils import get_json_schema

    signature = inspect.signature(case.function)
    parameters = [p.replace(annotation=_as_json_type(p.annotation), kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
                  for p in llm_parameters(case)]

    def stand_in():  # the use case as the LLM sees it: get_json_schema reads its signature and docstring
        raise NotImplementedError

    stand_in.__name__ = case.name
    stand_in.__doc__ = case.function.__doc__
    stand_in.__signature__ = signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
    stand_in.__annotations__ = {p.name: p.annotation for p in parameters}
    out = get_json_schema(stand_in)
    out["function"]["parameters"]["additionalProperties"] = False
    return out


def schemas() -> list[dict]:
    return [schema(case) for case in offered().values()]


# -- arguments ------------------------------------------------------------------------------------------
def _coerce(value: Any, annotation: Any) -> Any:
    """An LLM's JSON value as the annotated scalar ("5,000" -> 5000, "yes" -> True); a bad choice is refused."""
    if value is None or value == "":
        return None
    options = [a for a in typing.get_args(annotation) if a is not type(None)] \
        if typing.get_origin(annotation) in (Union, types.UnionType) else [annotation]
    for kind in options:
        if typing.get_origin(kind) is Literal:
            if value not in typing.get_args(kind):
                raise ValueError(f"must be one of {', '.join(map(str, typing.get_args(kind)))}, not {value!r}")
            return value
        if kind is bool and isinstance(value, str):
            return value.strip().lower() in ("true", "yes", "1")
        if kind is int and isinstance(value, str):
            return int(float(value.replace(",", "").replace("_", "")))
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if kind is float and isinstance(value, str):
            return float(value.replace(",", ""))
    return value


def parse_arguments(case: UseCase, arguments: dict | str | None) -> dict[str, Any]:
    """JSON arguments (a string or a dict) checked against the use case's parameters: unknown names and the ones
    the assistant fills in are refused, values are converted, empty ones dropped (the use case's default applies)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise UseCaseError(f"the arguments are not JSON ({exc})") from None
    if not isinstance(arguments, dict):
        raise UseCaseError("the arguments must be a JSON object")
    known = {p.name: p.annotation for p in llm_parameters(case)}
    unknown = sorted(set(arguments) - set(known))
    if unknown:
        raise UseCaseError(f"unknown argument(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out = {}
    for name, value in arguments.items():
        try:
            out[name] = _coerce(value, known[name])
        except (TypeError, ValueError) as exc:
            raise UseCaseError(f"argument {name}: {exc}") from None
    return {k: v for k, v in out.items() if v is not None}


def filled_in(case: UseCase, arguments: dict[str, Any], session: Session, api_key: str | None = None) -> dict:
    """`arguments` plus what the assistant passes itself, for the parameters this use case has."""
    parameters = inspect.signature(case.function).parameters
    out = dict(arguments)
    if "session" in parameters:
        out["session"] = session
    if "api_key" in parameters and api_key:
        out["api_key"] = api_key
    return out


# -- running ------------------------------------------------------------------------------------------
def run(ctx: Context, case: UseCase, arguments: dict[str, Any], session: Session, api_key: str | None = None) -> Any:
    """The use case's result for these (already parsed) arguments; raises UseCaseError."""
    return registry.call(ctx, case.name, filled_in(case, arguments, session, api_key))


def as_result(value: Any) -> dict:
    """A use case's result as the JSON object a tool returns (a list or a scalar under "result")."""
    data = registry.to_jsonable(value)
    return data if isinstance(data, dict) else {"result": data}


def result_for_llm(result: dict) -> str:
    """A tool result as the JSON string fed back to the LLM (bounded)."""
    text = json.dumps(result, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_RESULT_CHARS else text[: MAX_RESULT_CHARS - 20] + '..."(truncated)"'
