"""What the browser tests share: the app process, arena seeding, screenshots, page helpers.

A plain module (not conftest) so that test files can import it: `from e2e_helpers import ...`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
README_SHOTS = ROOT / "docs" / "screenshots"
SAMPLE = ROOT / "ftassist" / "data" / "sample" / "sample_chat.jsonl"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 900}
ADMIN_PASSWORD = "e2e-admin-Secret-42"
START_TIMEOUT_S = 120
# The two arena models the fixtures register (names never appear in the seeded answers).
BASE_NAME, TUNED_NAME = "base-0.5b", "tuned-0.5b"
SEEDED_VOTES = 30


# -- the app under test ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app_env(home: Path, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    for key in ("FTASSIST_ADMIN_PASSWORD", "FTASSIST_ARENA_ONLY", "GRADIO_SERVER_PORT", "GRADIO_SERVER_NAME",
                "SPACE_ID", "OPENAI_API_KEY"):
        env.pop(key, None)
    env.update(FTASSIST_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    env["FTASSIST_ARENA_MIN_READ_SECONDS"] = "0"  # a robot votes at once; the reading time has its own tests
    env.update(extra or {})
    return env


class App:
    """One running `python app.py`: its URL, data dir and log."""

    def __init__(self, home: Path, args: list[str] | None = None, env: dict | None = None):
        self.home = home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = home.parent / f"app-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--port", str(self.port), *(args or [])],
            cwd=ROOT, env=_app_env(home, env), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills training workers too
        )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> "App":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the app did not answer HTTP 200 within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()
        self._stop_workers()

    def _stop_workers(self) -> None:
        """Training workers run in their own process group (they outlive the app by design):
        end the ones this app started, checking each pid is still a worker on one of our runs."""
        for pid_file in self.home.glob("runs/*/worker.pid"):
            try:
                pid = int(pid_file.read_text().strip())
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ValueError):
                continue  # finished (or never started)
            if "ftassist" in cmdline and str(pid_file.parent.name) in cmdline:
                try:
                    os.killpg(pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass


SEED_ARENA = r"""
import csv, json, sys
from pathlib import Path
from ftassist.arena import battles, export, models
from ftassist.store import get_store

store = get_store()
sample, n_votes, base_name, tuned_name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
base = models.add_model(store, "openai_compatible", base_name, {"model": base_name, "base_url": "http://127.0.0.1:9/v1"})
tuned = models.add_model(store, "openai_compatible", tuned_name, {"model": tuned_name, "base_url": "http://127.0.0.1:9/v1"})
rows = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
for i, row in enumerate(rows[:12]):
    user = [m["content"] for m in row["messages"] if m["role"] == "user"][-1]
    reply = row["messages"][-1]["content"]
    bland = "Thank you for your message. Please contact our support team, who will be happy to help you."
    a, b = (base, tuned) if i % 2 else (tuned, base)
    battles.add_battle(store, user, a, b, reply if a == tuned else bland, reply if b == tuned else bland)
if n_votes:
    votes = Path(sys.argv[5])
    with votes.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model_a", "model_b", "winner", "voter"])
        for i in range(n_votes):
            winner = "tie" if i % 10 == 9 else ("model_b" if i % 4 == 3 else "model_a")
            w.writerow([tuned_name, base_name, winner, f"seed-{i % 7}"])
    print(export.import_votes(store, votes).imported, "votes")
print("seeded")
"""


def seed_arena(home: Path, n_votes: int = SEEDED_VOTES) -> None:
    """Two registered models, a dozen pre-generated battles (and `n_votes` imported votes),
    written by a separate process before the app starts: only one process may own DuckDB."""
    result = subprocess.run(
        [sys.executable, "-c", SEED_ARENA, str(SAMPLE), str(n_votes), BASE_NAME, TUNED_NAME,
         str(home.parent / "seed_votes.csv")],
        cwd=ROOT, env=_app_env(home), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and "seeded" in result.stdout, result.stdout + result.stderr


def auth_available() -> bool:
    """Whether the app has its admin login (FTASSIST_ADMIN_PASSWORD, in ftassist/ui/auth.py)."""
    return (ROOT / "ftassist" / "ui" / "auth.py").exists()


class Shots:
    """Numbered screenshots of a test's steps, under test-artifacts/e2e/<test>/."""

    def __init__(self, name: str):
        self.dir = ARTIFACTS / re.sub(r"[^\w.-]+", "_", name)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = len(list(self.dir.glob("*.png")))

    def __call__(self, page, step: str, readme: str | None = None, full_page: bool = False) -> Path:
        """Save the viewport (or the whole page) as NN-step.png, and its HTML next to it. `readme`:
        the name under docs/screenshots/ to refresh when FTASSIST_UPDATE_SCREENSHOTS=1."""
        self.n += 1
        path = self.dir / f"{self.n:02d}-{step}.png"
        page.mouse.move(2, 2)  # no hover highlight on whatever was clicked last
        page.screenshot(path=str(path), full_page=full_page)
        (self.dir / f"{self.n:02d}-{step}.html").write_text(page.content(), encoding="utf-8")
        if readme and os.environ.get("FTASSIST_UPDATE_SCREENSHOTS", "") not in ("", "0"):
            save_small_png(path, README_SHOTS / f"{readme}.png")
        return path


def save_small_png(src: Path, dest: Path) -> None:
    """Copy a screenshot for the README, quantised to 256 colours (a third of the bytes, same look)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(src, dest)
        return
    with Image.open(src) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


# -- helpers for the tests ------------------------------------------------------------------------
def open_app(page, url: str, first_tab: str | None = "Data"):
    """Open `url` and wait until Gradio has rendered (a tab, or the page's first heading)."""
    page.goto(url)
    if first_tab:
        page.get_by_role("tab", name=first_tab).wait_for()
    else:
        page.locator("gradio-app h1, gradio-app h2").first.wait_for()
    return page


def goto_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def upload_file(page, path: Path, attempts: int = 3) -> None:
    """Upload into the tab's first file input and wait until the file's name shows.

    Why retry: right after a tab switch the input can exist before Gradio listens to it;
    a file set then is silently dropped (seen once in a loaded CI run), so set it again.
    """
    from playwright.sync_api import expect

    # Gradio writes the name and the extension in separate elements: match the file row by its
    # accessible name, or the name as one text where a version writes it so.
    shown = page.get_by_role("cell", name=path.name).or_(page.get_by_text(path.name)).first
    for _ in range(attempts - 1):
        page.locator("input[type=file]").first.set_input_files(str(path))
        try:
            expect(shown).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            continue
    page.locator("input[type=file]").first.set_input_files(str(path))
    expect(shown).to_be_visible()


def scroll_to(locator, offset: int = 16) -> None:
    """Scroll so that `locator` is `offset` px below the top of the viewport (for framing screenshots)."""
    locator.evaluate("(el, off) => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - off)",
                     offset)
    locator.page.wait_for_timeout(150)


def no_traceback(page) -> None:
    """No Python traceback ever reaches the page."""
    text = page.locator("body").inner_text()
    assert "Traceback (most recent call last)" not in text, text[-2000:]


def grid_rows(dataframe) -> int:
    """Data rows of a gr.Dataframe (its grid is virtualised: count from aria-rowcount, less the header)."""
    grid = dataframe.get_by_role("grid").first
    return int(grid.get_attribute("aria-rowcount") or 1) - 1


def grid_records(dataframe) -> list[dict[str, str]]:
    """The rendered rows of a gr.Dataframe as {header: cell text} (the first screenful or so:
    the grid is virtualised)."""
    headers = [h.strip() for h in dataframe.get_by_role("columnheader").all_inner_texts()]
    records = []
    for row in dataframe.get_by_role("row").all():
        cells = [c.strip() for c in row.get_by_role("gridcell").all_inner_texts()]
        if cells:
            records.append(dict(zip(headers, cells)))
    return records
