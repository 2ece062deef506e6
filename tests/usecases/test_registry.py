"""The registry: JSON arguments become the annotated types; unknown use cases and arguments are refused."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ftassist.usecases import registry
from ftassist.usecases.context import Context, Settings, UseCaseError
from ftassist.usecases.session import Session


@dataclasses.dataclass
class Echo:
    path: Path
    session: Session
    count: int


@registry.use_case
def _test_echo(ctx: Context, path: Path, session: Session | None = None, count: int = 1) -> Echo:
    """Echo what it was given (a use case that exists only in this test module)."""
    return Echo(path=path, session=session or Session(), count=count)


@pytest.fixture
def ctx(tmp_path):
    return Context(settings=Settings(data_dir=tmp_path))


def test_call_converts_json_arguments_to_the_annotated_types(ctx):
    stored = Session(run_id="r1").to_dict()
    result = registry.call(ctx, "_test_echo", {"path": "/x/a.jsonl", "session": stored, "count": 3})
    assert result == Echo(Path("/x/a.jsonl"), Session(run_id="r1"), 3)


def test_unknown_names_and_arguments_are_refused_with_a_message(ctx):
    with pytest.raises(UseCaseError, match="no use case 'nope'"):
        registry.call(ctx, "nope", {})
    with pytest.raises(UseCaseError, match="takes no argument 'colour'"):
        registry.call(ctx, "_test_echo", {"path": "a", "colour": "red"})
    with pytest.raises(UseCaseError, match="missing a required argument"):
        registry.call(ctx, "_test_echo", {})


def test_to_jsonable_makes_plain_json_values():
    value = {"when": datetime.datetime(2026, 11, 30, 5, 0), "path": Path("/a"), "items": (1, 2.5),
             "bad": math.nan, "echo": Echo(Path("/p"), Session(model_ids=("m",)), 2)}
    assert registry.to_jsonable(value) == {
        "when": "2026-11-30T05:00:00", "path": "/a", "items": [1, 2.5], "bad": None,
        "echo": {"path": "/p", "count": 2, "session": Session(model_ids=("m",)).to_dict()}}


def test_every_registered_use_case_is_documented_and_takes_a_context_first():
    cases = registry.load_all()
    assert cases, "no use case registered"
    for name, case in cases.items():
        if name.startswith("_test"):
            continue
        assert case.summary, f"{name} has no docstring"
        first = next(iter(__import__("inspect").signature(case.function).parameters))
        assert first == "ctx", f"{name} does not take the context first"


def test_a_use_case_is_found_without_importing_the_stations_after_its_own():
    """A command runs one use case: finding it imports the defining modules only up to its own, so a check does
    not wait for training, the arena or evaluation to import."""
    code = ("import sys; from ftassist.usecases import registry; registry.get('check_dataset'); "
            "print(sorted(m for m in sys.modules if m.startswith('ftassist.usecases.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(out.stdout))
    assert "ftassist.usecases.data" in loaded
    assert not loaded & {f"ftassist.usecases.{name}" for name in registry.MODULES if name != "data"}


def test_every_use_case_name_is_defined_once():
    """Lookup stops at the first module that defines a name, so a name defined twice would depend on what was
    imported before."""
    defined: dict[str, str] = {}
    for module in registry.MODULES:
        source = (Path(registry.__file__).parent / f"{module}.py").read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and any("use_case" in ast.unparse(d) for d in node.decorator_list):
                assert node.name not in defined, f"{node.name} is defined in {defined[node.name]} and {module}"
                defined[node.name] = module
    assert set(defined) <= set(registry.load_all())
    assert len(defined) > 50
