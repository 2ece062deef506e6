"""Mutation testing of a few modules, in a scratch copy, within a time budget (issue 18).

    .venv/bin/python tools/mutation.py ftassist/arena/ratings.py ftassist/redact.py \
        [--budget-minutes 20] [--max-children 2] [--tests tests/arena/test_ratings.py ...] [--fail-under 85]

Why a script around mutmut: mutmut works in ./mutants next to the code and reads one fixed
`[tool.mutmut]` section, so a run would litter the checkout, and two people (or two helpers)
running it at once would trample each other's results. Here every run copies the checkout
(tracked and untracked, non-ignored files) to its own temporary folder, writes the section
for the chosen modules and the tests that cover them there, runs `mutmut run` with a
deadline, then prints per module the counts and the score, and the diff of every survivor.

Score = (killed + timeout) / (mutants tested), where mutants tested leaves out those no
selected test reaches ("no tests", listed apart: a test file is missing from the selection,
or the code is not tested at all) and those left unchecked when the budget ran out.
A survivor is either killed by a new test with an independent referee, or, when it cannot
change anything observable (an equivalent mutant), named with its reason at the top of the
module's `tests/referees/test_mutants_*.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The tests that exercise each module; mutmut runs, for each mutant, only those of them that
# reach the mutated function. Override with --tests.
TESTS_BY_MODULE = {
    "ftassist/redact.py": [
        "tests/referees/test_mutants_redact.py",
        "tests/assistant/test_tools.py",
        "tests/train/test_openai_ft.py",
        "tests/referees/test_referee_arena.py",
    ],
    "ftassist/arena/ratings.py": [
        "tests/referees/test_mutants_ratings.py",
        "tests/arena/test_ratings.py",
        "tests/referees/test_referee_arena.py",
    ],
    "ftassist/arena/battles.py": [
        "tests/referees/test_mutants_battles.py",
        "tests/arena/test_battles.py",
        "tests/referees/test_referee_arena.py",
    ],
    # the voting rules' station tests; tests/arena/test_voting_security.py also starts the app over HTTP,
    # which mutmut's copy cannot (pass its station tests by node id with --tests to add them)
    "ftassist/arena/limits.py": ["tests/referees/test_mutants_voting.py"],
    "ftassist/arena/voters.py": ["tests/referees/test_mutants_voting.py"],
    "ftassist/train/loss_rules.py": [
        "tests/referees/test_mutants_loss_rules.py",
        "tests/train/test_dpo_loss_rules.py",
        "tests/assistant/test_loss.py",
    ],
    "ftassist/data/preferences.py": [
        "tests/referees/test_mutants_preferences.py",
        "tests/data/test_preferences.py",
    ],
    "ftassist/arena/style.py": [
        "tests/referees/test_mutants_style.py",
        "tests/arena/test_style.py",
    ],
}
PYTEST_ARGS = ["-p", "no:cacheprovider", "-q", "-W", "ignore"]
KILLED = {"killed", "timeout", "caught by type check"}
NOT_TESTED = {"no tests", "not checked", "skipped", "check was interrupted by user"}
SECTION = re.compile(r"^\[tool\.mutmut\][^\n]*\n(?:(?!\[)[^\n]*\n?)*", re.MULTILINE)


@dataclass
class ModuleResult:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> mutmut status

    def count(self, *names: str) -> int:
        return sum(1 for status in self.statuses.values() if status in names)

    @property
    def tested(self) -> int:
        return len(self.statuses) - self.count(*NOT_TESTED)

    @property
    def score(self) -> float | None:
        return self.count(*KILLED) / self.tested if self.tested else None

    @property
    def score_with_untested(self) -> float | None:
        """The stricter figure: mutants no selected test reaches count as survivors."""
        reached = self.tested + self.count("no tests")
        return self.count(*KILLED) / reached if reached else None

    def names(self, status: str) -> list[str]:
        return sorted((n for n, s in self.statuses.items() if s == status), key=_natural)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="+", help="source files to mutate, e.g. ftassist/redact.py")
    parser.add_argument("--tests", nargs="+", metavar="FILE",
                        help="test files to run (default: the script's list for each module)")
    parser.add_argument("--budget-minutes", type=float, default=20.0,
                        help="stop mutating after this long; unchecked mutants are reported (default 20)")
    parser.add_argument("--max-children", type=int, default=2,
                        help="parallel test processes (default 2; use 1 on a busy machine)")
    parser.add_argument("--fail-under", type=float, metavar="PERCENT",
                        help="exit 1 when a module's score is below this")
    parser.add_argument("--no-diffs", action="store_true", help="list survivors by name only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    return parser.parse_args(argv)


def checkout_files(root: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore: the work as it is now."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                            check=True, capture_output=True, text=True).stdout
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def copy_checkout(root: Path, target: Path) -> None:
    for name in checkout_files(root):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination)


def mutmut_section(modules: list[str], tests: list[str]) -> str:
    # JSON string lists are valid TOML arrays
    return (
        "[tool.mutmut]\n"
        "# written by tools/mutation.py for this run only\n"
        f"source_paths = {json.dumps(sorted({m.split('/')[0] for m in modules}))}\n"
        f"only_mutate = {json.dumps(modules)}\n"
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        "\n"
    )


def write_config(pyproject: Path, modules: list[str], tests: list[str]) -> None:
    text = pyproject.read_text(encoding="utf-8") if pyproject.exists() else ""
    section = mutmut_section(modules, tests)
    text = SECTION.sub(lambda _: section, text, count=1) if SECTION.search(text) else text + "\n" + section
    pyproject.write_text(text, encoding="utf-8")


def select_tests(modules: list[str], given: list[str] | None, root: Path) -> list[str]:
    if given:
        missing = [t for t in given if not (root / t.split("::")[0]).exists()]
        if missing:
            sys.exit(f"no such test file: {', '.join(missing)}")
        return given
    tests: list[str] = []
    for module in modules:
        for test in TESTS_BY_MODULE.get(module, []):
            if test not in tests and (root / test).exists():
                tests.append(test)
    if not tests:
        sys.exit(f"no default tests for {', '.join(modules)}: name them with --tests")
    return tests


def mutmut_command() -> list[str]:
    script = Path(sys.executable).parent / "mutmut"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mutmut"]


def run_mutmut(workdir: Path, max_children: int, budget_s: float, log_path: Path) -> str:
    """Run mutmut until it is done or the budget is spent; says which.

    At the deadline mutmut gets Ctrl-C, then, if it is still running 30 s later, SIGKILL: it
    saves each mutant's result as it comes, so what was checked by then is kept either way."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(mutmut_command() + ["run", "--max-children", str(max_children)],
                                   cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=budget_s)
            return "finished" if code == 0 else f"stopped (exit status {code})"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return "stopped at the budget"


def read_results(workdir: Path, modules: list[str]) -> list[ModuleResult]:
    from mutmut.stats import status_by_exit_code  # mutmut's own reading of a worker's exit code

    results = []
    for module in modules:
        meta = workdir / "mutants" / (module + ".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
        results.append(ModuleResult(module, {name: status_by_exit_code[code] for name, code in codes.items()}))
    return results


def changed_lines(workdir: Path, module: str, mutant: str) -> list[str]:
    """The original and mutated lines of a mutant (what `mutmut show` prints, less the context)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    with contextlib.chdir(workdir):  # mutmut reads ./mutants
        diff = get_diff_for_mutant(mutant, path=module)
    return [line for line in diff.splitlines() if line[:1] in "-+" and line[:3] not in ("---", "+++")]


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def report(results: list[ModuleResult], workdir: Path, diffs: bool) -> None:
    header = (f"{'module':28} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
              f"{'unchecked':>9} {'other':>5}  score  (no tests as survived)")
    print(header)
    print("-" * len(header))
    for r in results:
        other = len(r.statuses) - r.count("killed", "timeout", "survived", "no tests", "not checked")
        print(f"{r.module:28} {len(r.statuses):>7} {r.count('killed'):>6} {r.count('timeout'):>7} "
              f"{r.count('survived'):>8} {r.count('no tests'):>8} {r.count('not checked'):>9} {other:>5}  "
              f"{percent(r.score):>5}  ({percent(r.score_with_untested)})")
    for r in results:
        for status in ("survived", "suspicious", "segfault", "no tests"):
            names = r.names(status)
            if not names:
                continue
            print(f"\n{r.module}: {len(names)} {status}")
            for name in names:
                print(f"  {name}")
                if diffs and status in ("survived", "suspicious"):
                    for line in changed_lines(workdir, r.module, name):
                        print(f"      {line}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modules = [Path(m).as_posix().removeprefix("./") for m in args.modules]
    for module in modules:
        if not (ROOT / module).is_file() or not module.endswith(".py"):
            sys.exit(f"no such module: {module}")
    tests = select_tests(modules, args.tests, ROOT)
    workdir = Path(tempfile.mkdtemp(prefix="ftassist-mutation-"))
    try:
        copy_checkout(ROOT, workdir)
        write_config(workdir / "pyproject.toml", modules, tests)
        print(f"mutating {', '.join(modules)}; tests: {' '.join(tests)}")
        print(f"scratch copy {workdir}; budget {args.budget_minutes:g} min on {args.max_children} process(es)")
        started = time.monotonic()
        outcome = run_mutmut(workdir, args.max_children, args.budget_minutes * 60, workdir / "mutmut.log")
        if outcome.startswith("stopped (exit"):
            print((workdir / "mutmut.log").read_text(errors="replace")[-2000:])
        print(f"mutmut {outcome} after "
              f"{(time.monotonic() - started) / 60:.1f} min\n")
        results = read_results(workdir, modules)
        if not any(r.statuses for r in results):
            print("no results; the end of mutmut's log:")
            print((workdir / "mutmut.log").read_text(errors="replace")[-4000:])
            return 2
        report(results, workdir, diffs=not args.no_diffs)
        if args.fail_under is not None:
            low = [r.module for r in results if r.score is None or 100 * r.score < args.fail_under]
            if low:
                print(f"\nbelow {args.fail_under:g}%: {', '.join(low)}")
                return 1
        return 0
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
