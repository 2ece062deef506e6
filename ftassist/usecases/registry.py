"""The list of use cases, so every front end finds them by name and none re-describes them.

The CLI calls them through the running app's socket by name; the assistant offers them to an
LLM as tools with schemas made from their signatures and docstrings; the UI imports them. Each
is a plain function `(ctx, **arguments) -> result` registered with `@use_case`.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import typing
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable

import orjson

from .context import Context, UseCaseError

# The modules that define use cases, imported by `load_all` (each registers on import).
MODULES = ("data", "planning", "training", "arena", "evaluation", "assistance", "exporting", "preference_loop",
           "playground")


@dataclass(frozen=True)
class UseCase:
    name: str
    function: Callable[..., Any]
    summary: str  # the docstring's first line
    assistant: bool  # offered to the assistant as a tool
    confirm: bool  # changes the person's work or costs money: the assistant proposes, the person confirms


USE_CASES: dict[str, UseCase] = {}


def use_case(function: Callable | None = None, *, assistant: bool = False, confirm: bool = False):
    """Register `function` under its own name. `assistant`: the assistant may call it;
    `confirm`: only after the person confirms (runs, checks that replace the current report)."""

    def register(fn: Callable) -> Callable:
        doc = inspect.getdoc(fn) or ""
        USE_CASES[fn.__name__] = UseCase(fn.__name__, fn, doc.split("\n", 1)[0], assistant, confirm)
        return fn

    return register(function) if function is not None else register


def load_all() -> dict[str, UseCase]:
    """Every use case (imports the modules that define them)."""
    for name in MODULES:
        import_module(f"{__package__}.{name}")
    return USE_CASES


def get(name: str) -> UseCase:
    """The use case `name`, importing the defining modules in order only until it is found: a command runs one
    use case, and importing every station first would delay each command's start (a check's token worker starts
    only once its use case runs)."""
    for module in MODULES:
        if name in USE_CASES:
            break
        import_module(f"{__package__}.{module}")
    try:
        return USE_CASES[name]
    except KeyError:
        raise UseCaseError(f"There is no use case {name!r}.") from None


def call(ctx: Context, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """Run a use case with JSON-like arguments: each is converted to the parameter's annotated type
    (a dict to a dataclass such as Session, a string to a Path), unknown names are refused."""
    case = get(name)
    signature = inspect.signature(case.function)
    hints = typing.get_type_hints(case.function)
    kwargs: dict[str, Any] = {}
    for key, value in (arguments or {}).items():
        if key == "ctx" or key not in signature.parameters:
            raise UseCaseError(f"{name} takes no argument {key!r}.")
        kwargs[key] = from_jsonable(value, hints.get(key))
    try:
        signature.bind(ctx, **kwargs)
    except TypeError as exc:
        raise UseCaseError(f"{name}: {exc}.") from None
    return case.function(ctx, **kwargs)


def to_jsonable(value: Any) -> Any:
    """Dataclasses (through their `to_dict` when they have one), paths, dates, tuples, sets and numpy values as
    plain JSON values; non-finite floats become null. Written by orjson in C, since a check's report holds
    long lists of numbers."""
    return orjson.loads(orjson.dumps(value, default=_plain, option=_JSON_OPTIONS))


_JSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _plain(value: Any) -> Any:
    """What orjson cannot write itself, one level at a time (it calls this again for what is inside)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        if callable(to_dict):
            return to_dict()
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def from_jsonable(value: Any, annotation: Any) -> Any:
    """`value` as the annotated type, when that type is a dataclass (with `from_dict` if it has one) or a Path."""
    if value is None or annotation is None:
        return value
    for kind in _candidates(annotation):
        if dataclasses.is_dataclass(kind) and isinstance(value, dict):
            from_dict = getattr(kind, "from_dict", None)
            if callable(from_dict):
                return from_dict(value)
            return kind(**value)
        if kind is Path and isinstance(value, str):
            return Path(value)
    return value


def _candidates(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [a for a in args if a is not type(None)] if args else [annotation]
