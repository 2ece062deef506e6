"""Benchmark: `ftassist check` against the cookbook-style reference check, on several shapes of data.

For each shape it writes a chat JSONL of about --mb megabytes, then runs, each in its own process,
the reference (bench/_reference_check.py: json per line, tiktoken per message) and `ftassist check
--json` (validation, the whole checklist, exact tokens). It prints each shape's wall time, peak memory
(the whole process tree's resident memory) and the ratios, then a table of all shapes. Goal, on every
shape: ftassist at most half the reference's time and at most half its peak memory.

Shapes (`--shapes`, default all):
- support: the original mix, a shared system prompt and one or two turns of paragraphs;
- short-qa: one short question and a one-sentence answer (per-example overhead dominates);
- long-chats: 8 to 16 turns of long paragraphs (encoding dominates);
- tool-calls: tool definitions, an assistant tool call, its result and the answer;
- near-duplicates: a few hundred examples repeated with one word changed (the checklist's
  near-duplicate search dominates).

Each side runs once untimed first (see main). Time and memory are measured in separate
runs: sampling a process tree's memory every 10 ms costs a good part of a core, which
would slow down a check that uses both cores more than a reference that uses one. Each
side is timed --repeat times, alternating, and the median is compared; the memory runs
come after. The goal is on wall time, but on a shared machine wall time says as much about
the other users as about the code (the check's two processes only help when a second core
is free), so each timing run's CPU time (user + system, the whole process tree) is printed
too, with the machine's load average before and after: a ratio measured under load is read
with them.

    python bench/bench_check.py [--mb 100] [--shapes short-qa,tool-calls] [--repeat 3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
WORDS = (
    "the a model answer customer order refund shipping account password reset invoice delivery product "
    "support ticket please thanks help issue error update version install configure network server data "
    "request response latency token billing plan upgrade cancel subscription email address phone policy "
    "warranty return exchange discount coupon payment card bank transfer receipt tracking number status "
    "week day month year today tomorrow morning evening quickly carefully usually always never sometimes"
).split()
SYSTEMS = [
    "You are a helpful customer support assistant for Acme Corp. Answer briefly and politely.",
    "You are Acme's billing assistant. Explain charges clearly and never invent prices.",
    "You are a technical support agent. Give numbered steps.",
]


def sentence(rng: random.Random, n: int) -> str:
    words = rng.choices(WORDS, k=n)
    words[0] = words[0].capitalize()
    return " ".join(words) + rng.choice(".?!")


def paragraph(rng: random.Random, n_sentences: int) -> str:
    return " ".join(sentence(rng, rng.randint(6, 16)) for _ in range(n_sentences))


def support_chat(rng: random.Random, i: int) -> dict:
    messages = [{"role": "system", "content": rng.choice(SYSTEMS)}]
    for _ in range(1 if rng.random() < 0.8 else 2):
        messages.append({"role": "user", "content": f"Ticket {i}: " + paragraph(rng, rng.randint(2, 5))})
        messages.append({"role": "assistant", "content": paragraph(rng, rng.randint(4, 9))})
    return {"messages": messages}


def short_qa(rng: random.Random, i: int) -> dict:
    messages = [{"role": "system", "content": SYSTEMS[0]}] if rng.random() < 0.5 else []
    messages.append({"role": "user", "content": sentence(rng, rng.randint(4, 10))})
    messages.append({"role": "assistant", "content": sentence(rng, rng.randint(5, 14))})
    return {"messages": messages}


def long_chat(rng: random.Random, i: int) -> dict:
    messages = [{"role": "system", "content": rng.choice(SYSTEMS)}]
    for _ in range(rng.randint(8, 16)):
        messages.append({"role": "user", "content": paragraph(rng, rng.randint(2, 6))})
        messages.append({"role": "assistant", "content": paragraph(rng, rng.randint(5, 12))})
    return {"messages": messages}


TOOLS = [
    {"type": "function", "function": {"name": "get_order_status", "description": "Look up an order's status.",
                                      "parameters": {"type": "object", "properties": {
                                          "order_id": {"type": "string", "description": "the order number"}},
                                          "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund part of an order.",
                                      "parameters": {"type": "object", "properties": {
                                          "order_id": {"type": "string"}, "amount": {"type": "number"}},
                                          "required": ["order_id", "amount"]}}},
]


def tool_call_chat(rng: random.Random, i: int) -> dict:
    name = rng.choice(["get_order_status", "refund"])
    arguments = {"order_id": f"A{i:07d}"}
    if name == "refund":
        arguments["amount"] = round(rng.uniform(1, 500), 2)
    call_id = f"call_{i}"
    return {"messages": [
        {"role": "system", "content": SYSTEMS[0]},
        {"role": "user", "content": f"Order A{i:07d}: " + paragraph(rng, rng.randint(1, 3))},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}]},
        {"role": "tool", "tool_call_id": call_id, "content": json.dumps({"status": rng.choice(["shipped", "ok"]),
                                                                         "note": sentence(rng, 8)})},
        {"role": "assistant", "content": paragraph(rng, rng.randint(2, 5))},
    ], "tools": TOOLS}


def near_duplicate_maker() -> Callable[[random.Random, int], dict]:
    """A few hundred support chats, each repeated with one word of the answer changed."""
    bases: list[dict] = []

    def make(rng: random.Random, i: int) -> dict:
        if len(bases) < 500:
            bases.append(support_chat(rng, i))
        chat = rng.choice(bases)
        messages = [dict(m) for m in chat["messages"]]
        words = messages[-1]["content"].split(" ")
        words[rng.randrange(len(words))] = rng.choice(WORDS)
        messages[-1]["content"] = " ".join(words)
        return {"messages": messages}

    return make


SHAPES: dict[str, Callable[[], Callable[[random.Random, int], dict]]] = {
    "support": lambda: support_chat,
    "short-qa": lambda: short_qa,
    "long-chats": lambda: long_chat,
    "tool-calls": lambda: tool_call_chat,
    "near-duplicates": near_duplicate_maker,
}


def write_dataset(path: Path, n: int, seed: int = 0) -> None:
    """`n` examples of the original shape (support chats); bench_estimate uses it too."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps(support_chat(rng, i)) + "\n")


def write_shape(path: Path, shape: str, megabytes: float, seed: int = 0) -> int:
    """Examples of one shape until the file holds `megabytes`; returns how many."""
    rng = random.Random(seed)
    make = SHAPES[shape]()
    limit = int(megabytes * 2**20)
    written = n = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < limit:
            line = json.dumps(make(rng, n)) + "\n"
            written += len(line.encode("utf-8"))
            f.write(line)
            n += 1
    return n


def run(cmd: list[str], env: dict, sample_memory: bool = False) -> tuple[float, float | None, str, float]:
    """Wall seconds, peak memory (MB, when sampled), stdout and CPU seconds (user + system of
    the process and its descendants) of one command.

    Peak memory is the largest sum of the resident sets of the process and all its
    descendants, sampled every 10 ms: ftassist counts tokens in a helper process, and its
    memory counts too (shared pages are counted in each process, so this errs high). The
    sampling slows the command down, so a timing run does not sample.
    """
    import resource

    import psutil

    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, env=env)
        peak = None
        if sample_memory:
            root = psutil.Process(proc.pid)
            peak = 0
            while proc.poll() is None:
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    pass
                peak = max(peak, total)
                time.sleep(0.01)
        proc.wait()
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if proc.returncode not in (0, 1):
            err_file.seek(0)
            raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{err_file.read()[-2000:]}")
        out_file.seek(0)
        return seconds, None if peak is None else peak / 2**20, out_file.read(), cpu


def measure(data: Path, env: dict, repeat: int) -> dict:
    """Both sides on one file: median times, peak memories, token totals."""
    ref_cmd = [sys.executable, str(HERE / "_reference_check.py"), str(data)]
    ours_cmd = [sys.executable, "-m", "ftassist", "check", str(data), "--model", "gpt-4o-mini-2024-07-18", "--json"]
    run(ref_cmd, env)  # untimed: the file in the page cache, both sides' modules compiled
    run(ours_cmd, env)
    ref_times, ours_times, ref_cpu, ours_cpu = [], [], [], []
    for _ in range(max(1, repeat)):
        seconds, _, _, cpu = run(ref_cmd, env)
        ref_times.append(seconds)
        ref_cpu.append(cpu)
        seconds, _, _, cpu = run(ours_cmd, env)
        ours_times.append(seconds)
        ours_cpu.append(cpu)
    _, ref_mb, ref_out, _ = run(ref_cmd, env, sample_memory=True)
    _, ours_mb, ours_out, _ = run(ours_cmd, env, sample_memory=True)
    return {"ref_s": statistics.median(ref_times), "ours_s": statistics.median(ours_times),
            "ref_times": ref_times, "ours_times": ours_times, "ref_mb": ref_mb, "ours_mb": ours_mb,
            "ref_cpu": statistics.median(ref_cpu), "ours_cpu": statistics.median(ours_cpu),
            "ref_tokens": json.loads(ref_out)["total_tokens"], "ours_tokens": json.loads(ours_out)["tokens"]["total"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100, help="size of each shape's file in megabytes")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per side (the median counts)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    shapes = [name.strip() for name in args.shapes.split(",") if name.strip()]
    unknown = [name for name in shapes if name not in SHAPES]
    if unknown:
        parser.error(f"unknown shape(s) {', '.join(unknown)}: use {', '.join(SHAPES)}")

    from ftassist.data.tokens import ensure_offline_encodings

    cache = ensure_offline_encodings()  # both sides read the same hash-checked rank files
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache))
    # Both sides as installed software runs: ftassist's modules compiled once, as pip does
    # for an installed package and as the reference's tiktoken and numpy are (an editable
    # install under PYTHONDONTWRITEBYTECODE=1 would compile every module in every run).
    import compileall

    import ftassist

    compileall.compile_dir(Path(ftassist.__file__).parent, quiet=1)
    workdir = Path(tempfile.mkdtemp(prefix="ftassist-bench-"))
    results = {}
    load_before = os.getloadavg()
    for shape in shapes:
        data = workdir / f"{shape}.jsonl"
        n = write_shape(data, shape, args.mb)
        r = results[shape] = measure(data, env, args.repeat)
        r["n"], r["mb"] = n, data.stat().st_size / 2**20
        print(f"{shape}: {n:,} examples, {r['mb']:,.1f} MB; timing runs (s): reference "
              + ", ".join(f"{t:.2f}" for t in r["ref_times"]) + "; ftassist " + ", ".join(f"{t:.2f}" for t in r["ours_times"])
              + f"; CPU (s, median) reference {r['ref_cpu']:.2f}, ftassist {r['ours_cpu']:.2f}"
              + f"; tokens reference {r['ref_tokens']:,}, ftassist {r['ours_tokens']:,}", flush=True)
        if not args.keep:
            data.unlink()

    print(f"\n{'shape':16} {'examples':>9} {'MB':>6} {'ref s':>7} {'ours s':>7} {'time':>6} "
          f"{'ref MB':>8} {'ours MB':>8} {'memory':>7} {'cpu':>6}  tokens")
    ok = True
    for shape, r in results.items():
        time_ratio, memory_ratio = r["ours_s"] / r["ref_s"], r["ours_mb"] / r["ref_mb"]
        same = r["ref_tokens"] == r["ours_tokens"]
        ok = ok and same
        print(f"{shape:16} {r['n']:>9,} {r['mb']:>6.1f} {r['ref_s']:>7.2f} {r['ours_s']:>7.2f} {time_ratio:>6.3f} "
              f"{r['ref_mb']:>8.1f} {r['ours_mb']:>8.1f} {memory_ratio:>7.3f} {r['ours_cpu'] / r['ref_cpu']:>6.3f}  "
              f"{'identical' if same else 'DIFFER'}")
    print("ratios are ftassist / reference; goal <= 0.50 for time and memory on every shape "
          "(cpu: CPU time, for reading a time ratio measured on a busy machine)")
    print("load average (1, 5, 15 min) before: " + ", ".join(f"{x:.2f}" for x in load_before)
          + "; after: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f"; {os.cpu_count()} CPUs")
    if args.keep:
        print(f"kept the files in {workdir}")
    else:
        workdir.rmdir()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
