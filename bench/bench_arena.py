"""Arena load and ratings speed.

1. 50 concurrent voters against the running app over HTTP (the Gradio queue protocol a
   browser speaks, through the named endpoints `arena_new_round` and `arena_vote_*`), the
   app in its own process as in production, so the load generator does not share its GIL:
   a. saturated: each voter votes 40 times with no pause (the server's throughput);
   b. human pace: each voter reads for 5-15 s before each of its votes (what 50 people
      at once look like), latency as a voter feels it.
   Every vote must be stored exactly once; p50/p99 latency of a new round and of a vote.
2. The same saturated load against the store directly (battles.next_battle + battles.vote).
3. The leaderboard (Bradley-Terry + 1,000 bootstrap rounds, Elo, win rates) on 100,000
   simulated votes among 10 models; goal < 2 s.

Run: python bench/bench_arena.py [--voters 50] [--votes 40] [--paced-votes 6]
Uses a throw-away FTASSIST_HOME; the rate limit is switched off for the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# The app's child process is handed the parent's throw-away home.
os.environ["FTASSIST_HOME"] = os.environ.get("FTASSIST_BENCH_HOME") or tempfile.mkdtemp(prefix="ftassist-bench-")
os.environ["FTASSIST_ARENA_VOTES_PER_MINUTE"] = "0"
# 50 saturated voters from one address measure throughput, not the voting rules: those are off here.
os.environ.update(dict.fromkeys(("FTASSIST_ARENA_ROUNDS_PER_MINUTE", "FTASSIST_ARENA_ROUNDS_PER_MINUTE_PER_ADDRESS",
                                  "FTASSIST_ARENA_VOTES_PER_MINUTE_PER_ADDRESS", "FTASSIST_ARENA_MIN_READ_SECONDS"), "0"))

import httpx
import numpy as np
import pandas as pd

from ftassist.arena import battles, ratings
from ftassist.store import get_store

CHOICES = ("a", "b", "tie", "bothbad")


def pct(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def seed_battles(n: int, tag: str) -> None:
    models = [f"{tag}-model-{i}" for i in range(4)]
    for i in range(n):
        a, b = random.sample(models, 2)
        battles.add_battle(get_store(), f"{tag} prompt {i}", a, b, f"answer {i} one", f"answer {i} two")


def build_app():
    from ftassist.ui.layout import build_app as build

    return build(arena_only=True)


def serve(port: int) -> None:
    """The app alone, as `python app.py --arena-only` runs it (the bench's child process)."""
    demo = build_app()
    demo.queue(default_concurrency_limit=8)
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def load(root: str, fn: dict[str, int], n_voters: int, n_votes: int, think: tuple[float, float]) -> dict:
    """n_voters voters, each: new round, read for uniform(*think) s, vote; n_votes times."""
    vote_latency, round_latency, lock = [], [], threading.Lock()

    def run(i):
        rng = random.Random(i)
        voter = Voter(root, fn)
        time.sleep(rng.uniform(0, think[1]))  # people do not all arrive in the same millisecond
        for _ in range(n_votes):
            t0 = time.perf_counter()
            out = voter.call("arena_new_round")
            t1 = time.perf_counter()
            assert out[1], "no battle served"
            time.sleep(rng.uniform(*think))
            t2 = time.perf_counter()
            voter.call(f"arena_vote_{rng.choice(CHOICES)}")
            t3 = time.perf_counter()
            with lock:
                round_latency.append(t1 - t0)
                vote_latency.append(t3 - t2)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_voters) as pool:
        list(pool.map(run, range(n_voters)))
    return {"wall": time.perf_counter() - start, "vote": vote_latency, "round": round_latency,
            "votes": n_voters * n_votes}


def bench_http(n_voters: int, n_votes: int, paced_votes: int) -> dict:
    from ftassist.store import reset_store

    seed_battles(n_votes + paced_votes + 10, "http")
    reset_store()  # the app's process owns the database from here on
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)],
                              env=dict(os.environ, FTASSIST_BENCH_HOME=os.environ["FTASSIST_HOME"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        root = f"http://127.0.0.1:{port}"
        for _ in range(1200):
            try:
                config = httpx.get(root + "/config").json()
                break
            except httpx.HTTPError:
                if server.poll() is not None:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.1)
        fn = {d.get("api_name"): i for i, d in enumerate(config["dependencies"])}
        saturated = load(root, fn, n_voters, n_votes, (0.0, 0.0))
        paced = load(root, fn, n_voters, paced_votes, (5.0, 15.0))
    finally:
        server.terminate()
        server.wait(30)
    rows = get_store().query_rows(
        "SELECT count(*), count(DISTINCT (battle_id, voter)), count(DISTINCT voter) FROM votes "
        "WHERE battle_id IN (SELECT id FROM battles WHERE prompt LIKE 'http %')")
    return {"saturated": saturated, "paced": paced, "stored": rows[0]}


def bench_direct(n_voters: int, n_votes: int) -> dict:
    from ftassist.store import reset_store

    os.environ["FTASSIST_HOME"] = tempfile.mkdtemp(prefix="ftassist-bench-direct-")  # a fresh database
    reset_store()
    seed_battles(n_votes + 10, "direct")
    latency, lock = [], threading.Lock()

    def run(i):
        voter = f"direct-voter-{i}"
        for _ in range(n_votes):
            view = battles.next_battle(get_store(), voter)
            t0 = time.perf_counter()
            battles.vote(get_store(), view.token, voter, random.choice(("A", "B", "tie", "bothbad")))
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
    parser.add_argument("--paced-votes", type=int, default=6)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    expected = args.voters * args.votes
    ok = True

    h = bench_http(args.voters, args.votes, args.paced_votes)
    total, unique, voters = h["stored"]
    expected_http = args.voters * (args.votes + args.paced_votes)
    ok &= total == unique == expected_http and voters == 2 * args.voters
    print(f"HTTP  : stored {total} votes (unique {unique}, voters {voters}), expected {expected_http}")
    for name, r in (("saturated, no pause", h["saturated"]), ("human pace, 5-15 s to read", h["paced"])):
        print(f"        {name}: {r['votes']} votes in {r['wall']:.1f} s ({r['votes'] / r['wall']:.1f} votes/s); "
              f"vote p50 {pct(r['vote'], 50):.0f} ms, p99 {pct(r['vote'], 99):.0f} ms; "
              f"new round p50 {pct(r['round'], 50):.0f} ms, p99 {pct(r['round'], 99):.0f} ms")

    d = bench_direct(args.voters, args.votes)
    total, unique, voters = d["stored"]
    ok &= total == unique == expected and voters == args.voters
    print(f"STORE : {args.voters} voters x {args.votes} votes in {d['wall']:.1f} s "
          f"({expected / d['wall']:.0f} votes/s); stored {total} (unique {unique}, voters {voters}), expected {expected}")
    print(f"        vote p50 {pct(d['vote'], 50):.1f} ms, p99 {pct(d['vote'], 99):.1f} ms")
    sat = h["saturated"]
    print(f"        ratio HTTP/store vote p50 (saturated): {pct(sat['vote'], 50) / max(pct(d['vote'], 50), 1e-9):.1f}x")

    lb = bench_leaderboard()
    best = min(lb["times"])
    print(f"RATING: leaderboard, 100,000 votes, 10 models, 1,000 bootstrap rounds: best {best:.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in lb['times'])}); goal 2 s, ratio {best / 2.0:.2f} of the goal")
    ok &= best < 2.0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
