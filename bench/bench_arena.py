"""Arena load and ratings speed.

1. 50 concurrent voters x 40 votes each against the running app over HTTP (the Gradio
   queue protocol a browser speaks, through the named endpoints `arena_new_round` and
   `arena_vote_*`): every vote must be stored exactly once; p50/p99 latency.
2. The same load against the store directly (battles.next_battle + battles.vote).
3. The leaderboard (Bradley-Terry + 1,000 bootstrap rounds, Elo, win rates) on 100,000
   simulated votes among 10 models; goal < 2 s.

Run: python bench/bench_arena.py [--voters 50] [--votes 40]
Uses a throw-away FTASSIST_HOME; the rate limit is switched off for the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["FTASSIST_HOME"] = tempfile.mkdtemp(prefix="ftassist-bench-")
os.environ["FTASSIST_ARENA_VOTES_PER_MINUTE"] = "0"

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ftassist.arena import battles, ratings  # noqa: E402
from ftassist.store import get_store  # noqa: E402

CHOICES = ("a", "b", "tie", "bothbad")


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def seed_battles(n: int, tag: str) -> None:
    models = [f"{tag}-model-{i}" for i in range(4)]
    for i in range(n):
        a, b = random.sample(models, 2)
        battles.add_battle(f"{tag} prompt {i}", a, b, f"answer {i} one", f"answer {i} two")


def build_app():
    import gradio as gr

    try:
        from ftassist.ui.layout import build_app as build
        return build(arena_only=True)
    except (SyntaxError, ImportError) as exc:
        print(f"(layout does not import: {exc}; serving the arena page alone)")
        from ftassist.ui import arena
        from ftassist.ui.context import UIContext

        with gr.Blocks() as demo:
            arena.build(UIContext(session=gr.State({}), arena_only=True))
        return demo


class Voter:
    def __init__(self, root: str, fn: dict[str, int]):
        self.root, self.fn = root, fn
        self.hash = uuid.uuid4().hex[:12]
        self.http = httpx.Client(timeout=120)

    def call(self, api_name: str) -> list:
        self.http.post(self.root + "/gradio_api/queue/join", json={
            "data": [None], "fn_index": self.fn[api_name], "session_hash": self.hash,
            "event_data": None, "trigger_id": None}).raise_for_status()
        with self.http.stream("GET", self.root + "/gradio_api/queue/data",
                              params={"session_hash": self.hash}) as resp:
            for line in resp.iter_lines():
                if '"process_completed"' in line:
                    msg = json.loads(line.removeprefix("data: "))
                    if not msg.get("success"):
                        raise RuntimeError(msg)
                    return msg["output"]["data"]
        raise RuntimeError("stream ended without a result")


def bench_http(n_voters: int, n_votes: int) -> dict:
    seed_battles(n_votes + 10, "http")
    demo = build_app()
    demo.queue(default_concurrency_limit=8)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    root = url.rstrip("/")
    config = httpx.get(root + "/config").json()
    fn = {d.get("api_name"): i for i, d in enumerate(config["dependencies"])}
    vote_latency, round_latency, lock = [], [], threading.Lock()

    def run(_):
        voter = Voter(root, fn)
        for _ in range(n_votes):
            t0 = time.perf_counter()
            out = voter.call("arena_new_round")
            t1 = time.perf_counter()
            assert out[1], "no battle served"
            voter.call(f"arena_vote_{random.choice(CHOICES)}")
            t2 = time.perf_counter()
            with lock:
                round_latency.append(t1 - t0)
                vote_latency.append(t2 - t1)
        return voter.hash

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_voters) as pool:
        list(pool.map(run, range(n_voters)))
    wall = time.perf_counter() - start
    demo.close()
    rows = get_store().query_rows(
        "SELECT count(*), count(DISTINCT (battle_id, voter)), count(DISTINCT voter) FROM votes "
        "WHERE battle_id IN (SELECT id FROM battles WHERE prompt LIKE 'http %')")
    return {"wall": wall, "vote": vote_latency, "round": round_latency, "stored": rows[0]}


def bench_direct(n_voters: int, n_votes: int) -> dict:
    from ftassist.store import reset_store

    os.environ["FTASSIST_HOME"] = tempfile.mkdtemp(prefix="ftassist-bench-direct-")  # a fresh database
    reset_store()
    seed_battles(n_votes + 10, "direct")
    latency, lock = [], threading.Lock()

    def run(i):
        voter = f"direct-voter-{i}"
        for _ in range(n_votes):
            view = battles.next_battle(voter)
            t0 = time.perf_counter()
            battles.vote(view.token, voter, random.choice(("A", "B", "tie", "bothbad")))
            with lock:
                latency.append(time.perf_counter() - t0)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_voters) as pool:
        list(pool.map(run, range(n_voters)))
    wall = time.perf_counter() - start
    rows = get_store().query_rows(
        "SELECT count(*), count(DISTINCT (battle_id, voter)), count(DISTINCT voter) FROM votes "
        "WHERE voter LIKE 'direct-voter-%'")
    return {"wall": wall, "vote": latency, "stored": rows[0]}


def bench_leaderboard(n: int = 100_000, n_models: int = 10, rounds: int = 1000) -> dict:
    rng = np.random.default_rng(0)
    strength = np.linspace(-250, 250, n_models)
    a = rng.integers(0, n_models, n)
    b = (a + rng.integers(1, n_models, n)) % n_models
    p = 1 / (1 + 10 ** ((strength[b] - strength[a]) / 400))
    u = rng.random(n)
    winner = np.where(u < 0.1, "tie", np.where(rng.random(n) < p, "model_a", "model_b"))
    names = np.array([f"model-{i}" for i in range(n_models)])
    df = pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        rows = ratings.leaderboard(df, rounds=rounds)
        times.append(time.perf_counter() - t0)
    return {"times": times, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--voters", type=int, default=50)
    parser.add_argument("--votes", type=int, default=40)
    args = parser.parse_args()
    expected = args.voters * args.votes
    ok = True

    h = bench_http(args.voters, args.votes)
    total, unique, voters = h["stored"]
    ok &= total == unique == expected and voters == args.voters
    print(f"HTTP  : {args.voters} voters x {args.votes} votes in {h['wall']:.1f} s "
          f"({expected / h['wall']:.0f} votes/s); stored {total} (unique {unique}, voters {voters}), expected {expected}")
    print(f"        vote p50 {pct(h['vote'], 50):.0f} ms, p99 {pct(h['vote'], 99):.0f} ms; "
          f"new round p50 {pct(h['round'], 50):.0f} ms, p99 {pct(h['round'], 99):.0f} ms")

    d = bench_direct(args.voters, args.votes)
    total, unique, voters = d["stored"]
    ok &= total == unique == expected and voters == args.voters
    print(f"STORE : {args.voters} voters x {args.votes} votes in {d['wall']:.1f} s "
          f"({expected / d['wall']:.0f} votes/s); stored {total} (unique {unique}, voters {voters}), expected {expected}")
    print(f"        vote p50 {pct(d['vote'], 50):.1f} ms, p99 {pct(d['vote'], 99):.1f} ms")
    print(f"        ratio HTTP/store vote p50: {pct(h['vote'], 50) / max(pct(d['vote'], 50), 1e-9):.1f}x")

    lb = bench_leaderboard()
    best = min(lb["times"])
    print(f"RATING: leaderboard, 100,000 votes, 10 models, 1,000 bootstrap rounds: best {best:.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in lb['times'])}); goal 2 s, ratio {best / 2.0:.2f} of the goal")
    ok &= best < 2.0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
