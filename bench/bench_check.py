"""Benchmark: `ftassist check` against the cookbook-style reference check, in one run.

Writes a 100,000-example chat JSONL (about 100 MB), then runs, each in its own process,
the reference (bench/_reference_check.py: json per line, tiktoken per message) and
`ftassist check --json` (validation, the whole checklist, exact tokens). Prints wall time,
peak memory (the whole process tree's resident memory) and the ratios. Goal: ftassist at
most half the reference's time and at most half its peak memory.

Each side runs once untimed first (see main). Time and memory are measured in separate
runs: sampling a process tree's memory every 10 ms costs a good part of a core, which
would slow down a check that uses both cores more than a reference that uses one. Each
side is timed --repeat times, alternating, and the median is compared; the memory runs
come after.

    python bench/bench_check.py [--examples 100000] [--repeat 3] [--keep]
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


def write_dataset(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            messages = [{"role": "system", "content": rng.choice(SYSTEMS)}]
            for _ in range(1 if rng.random() < 0.8 else 2):
                messages.append({"role": "user", "content": f"Ticket {i}: " + paragraph(rng, rng.randint(2, 5))})
                messages.append({"role": "assistant", "content": paragraph(rng, rng.randint(4, 9))})
            f.write(json.dumps({"messages": messages}) + "\n")


def run(cmd: list[str], env: dict, sample_memory: bool = False) -> tuple[float, float | None, str]:
    """Wall seconds, peak memory (MB, when sampled) and stdout of one command.

    Peak memory is the largest sum of the resident sets of the process and all its
    descendants, sampled every 10 ms: ftassist counts tokens in a helper process, and its
    memory counts too (shared pages are counted in each process, so this errs high). The
    sampling slows the command down, so a timing run does not sample.
    """
    import psutil

    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
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
        if proc.returncode not in (0, 1):
            err_file.seek(0)
            raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{err_file.read()[-2000:]}")
        out_file.seek(0)
        return seconds, None if peak is None else peak / 2**20, out_file.read()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per side (the median counts)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    args = parser.parse_args()

    from ftassist.data.tokens import ensure_offline_encodings

    cache = ensure_offline_encodings()  # both sides read the same hash-checked rank files
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache))

    workdir = Path(tempfile.mkdtemp(prefix="ftassist-bench-"))
    data = workdir / "bench_chat.jsonl"
    t0 = time.perf_counter()
    write_dataset(data, args.examples)
    size_mb = data.stat().st_size / 2**20
    print(f"dataset: {args.examples:,} chat examples, {size_mb:,.1f} MB, written in {time.perf_counter() - t0:.1f} s")

    ref_cmd = [sys.executable, str(HERE / "_reference_check.py"), str(data)]
    ours_cmd = [sys.executable, "-m", "ftassist", "check", str(data), "--model", "gpt-4o-mini-2024-07-18", "--json"]
    # Both sides as installed software runs: ftassist's modules compiled once, as pip does
    # for an installed package and as the reference's tiktoken and numpy are (an editable
    # install under PYTHONDONTWRITEBYTECODE=1 would compile every module in every run), and
    # one untimed run each (the file in the page cache, ftassist's parsed rank copy written).
    import compileall

    import ftassist

    compileall.compile_dir(Path(ftassist.__file__).parent, quiet=1)
    run(ref_cmd, env)
    run(ours_cmd, env)
    ref_times, ours_times = [], []
    for _ in range(max(1, args.repeat)):
        ref_times.append(run(ref_cmd, env)[0])
        ours_times.append(run(ours_cmd, env)[0])
    ref_s, ours_s = statistics.median(ref_times), statistics.median(ours_times)
    print("timing runs (s): reference " + ", ".join(f"{t:.2f}" for t in ref_times)
          + "; ftassist " + ", ".join(f"{t:.2f}" for t in ours_times))
    _, ref_mb, ref_out = run(ref_cmd, env, sample_memory=True)
    _, ours_mb, ours_out = run(ours_cmd, env, sample_memory=True)

    reference = json.loads(ref_out)
    report = json.loads(ours_out)
    same = reference["total_tokens"] == report["tokens"]["total"]
    print(f"reference (cookbook: json per line, tiktoken per message): {ref_s:7.2f} s, peak {ref_mb:8.1f} MB, "
          f"{reference['total_tokens']:,} tokens")
    print(f"ftassist check (validation + checklist + exact tokens):    {ours_s:7.2f} s, peak {ours_mb:8.1f} MB, "
          f"{report['tokens']['total']:,} tokens")
    print(f"time ratio ftassist/reference:   {ours_s / ref_s:.3f} (goal <= 0.50)")
    print(f"memory ratio ftassist/reference: {ours_mb / ref_mb:.3f} (goal <= 0.50)")
    print(f"token totals identical: {same}")
    if not args.keep:
        data.unlink()
        workdir.rmdir()
    else:
        print(f"kept {data}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
