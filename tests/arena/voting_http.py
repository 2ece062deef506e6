"""What the voting-security tests share: the real app (`python app.py --arena-only`) seeded with
models that answer from the OpenAI stand-in, and an outsider's HTTP client speaking Gradio's queue
protocol, with or without a cookie jar, from any address a trusted proxy would report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from e2e_helpers import App, _app_env  # noqa: E402  (the e2e tests' way of starting the app)

# The side a stuffer pushes is recognisable by its style (as real answers are): it ends with "!!".
STYLE = " Certainly, and gladly!!"

SEED = r"""
import sys
from ftassist.arena import battles, models
from ftassist.store import get_store

base_url, n = sys.argv[1], int(sys.argv[2])
store = get_store()
kappa = models.add_model(store, "openai_compatible", "Kappa Seven", {"model": "kappa", "base_url": base_url,
                                                                     "max_retries": 0})
omega = models.add_model(store, "openai_compatible", "Omega Nine", {"model": "omega", "base_url": base_url,
                                                                    "max_retries": 0})
for i in range(n):
    a, b = (kappa, omega) if i % 2 else (omega, kappa)
    plain, styled = f"The answer to question {i} is {i * 3}.", f"The answer to question {i} is {i * 3}." + sys.argv[3]
    battles.add_battle(store, f"Question {i}: what is {i} times 3?", a, b,
                       styled if a == omega else plain, styled if b == omega else plain)
print("seeded", kappa, omega)
"""


def start_app(home: Path, llm_url: str, n_battles: int, env: dict | None = None) -> App:
    """Seed `home` (before the app owns its DuckDB), then start the arena-only app on it."""
    home.mkdir(parents=True, exist_ok=True)
    seeded = subprocess.run([sys.executable, "-c", SEED, llm_url, str(n_battles), STYLE], cwd=ROOT,
                            env=_app_env(home), capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0 and "seeded" in seeded.stdout, seeded.stdout + seeded.stderr
    return App(home, ["--arena-only"], env).wait_ready()


class Outcome:
    """One event's result: the outputs by elem_id, the warnings shown, and whether it succeeded."""

    def __init__(self, raw: str, message: dict, outputs: list):
        self.raw = raw
        self.success = bool(message.get("success"))
        data = (message.get("output") or {}).get("data") or []
        self.values = {}
        for elem_id, value in zip(outputs, data):
            if elem_id:
                self.values[elem_id] = value.get("value") if isinstance(value, dict) else value
        self.error = (message.get("output") or {}).get("error")
        self.warnings = [json.loads(line.removeprefix("data: ")).get("log", "")
                         for line in raw.splitlines() if '"msg": "log"' in line or '"msg":"log"' in line]

    @property
    def prompt(self) -> str:
        return self.values.get("arena-prompt") or ""

    @property
    def status(self) -> str:
        """The status line as read (the page's Markdown escapes are undone)."""
        return re.sub(r"\\(.)", r"\1", self.values.get("arena-status") or "")

    def side_of(self, text_end: str) -> str:
        """Which button ("a" or "b") is on the answer ending with `text_end`."""
        return "a" if (self.values.get("arena-answer-a") or "").endswith(text_end) else "b"


class Browser:
    """One visitor as the server sees it: a cookie jar (a browser profile) unless `cookies=False`, and the
    address a trusted proxy would append to X-Forwarded-For (`forwarded_for`), if any."""

    def __init__(self, url: str, forwarded_for: str | None = None, cookies: bool = True):
        self.url = url.rstrip("/")
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        self.http = httpx.Client(headers=headers, timeout=60)
        self.keep_cookies = cookies
        self.page_response = self.get("/")
        self.config = self.get("/config").json()
        self.fn = {d.get("api_name"): i for i, d in enumerate(self.config["dependencies"])}
        by_id = {c["id"]: c for c in self.config["components"]}
        self.outputs = {d.get("api_name"): [by_id[o].get("props", {}).get("elem_id") for o in d["outputs"]]
                        for d in self.config["dependencies"]}

    def get(self, path: str) -> httpx.Response:
        response = self.http.get(self.url + path)
        if not self.keep_cookies:
            self.http.cookies.clear()
        response.raise_for_status()
        return response

    def session(self) -> "Session":
        return Session(self)

    def close(self) -> None:
        self.http.close()


class Session:
    """One page view (one Gradio session hash) of a Browser."""

    def __init__(self, browser: Browser):
        self.browser = browser
        self.hash = uuid.uuid4().hex[:12]

    def call(self, api_name: str, data: list | None = None) -> Outcome:
        b = self.browser
        join = b.http.post(b.url + "/gradio_api/queue/join", json={
            "data": data if data is not None else [None], "fn_index": b.fn[api_name], "session_hash": self.hash,
            "event_data": None, "trigger_id": None})
        join.raise_for_status()
        raw = ""
        with b.http.stream("GET", b.url + "/gradio_api/queue/data", params={"session_hash": self.hash}) as resp:
            for line in resp.iter_lines():
                raw += line + "\n"
                if '"process_completed"' in line:
                    if not b.keep_cookies:
                        b.http.cookies.clear()
                    return Outcome(raw, json.loads(line.removeprefix("data: ")), b.outputs[api_name])
        raise AssertionError(f"no result: {raw}")

    def new_round(self) -> Outcome:
        return self.call("arena_new_round")

    def vote(self, side: str) -> Outcome:
        return self.call(f"arena_vote_{side}")

    def skip(self) -> Outcome:
        return self.call("arena_skip")

    def ask(self, prompt: str) -> Outcome:
        return self.call("arena_ask", [prompt, None])
