"""Benchmark: the estimate after a check reuses the check's token counts.

On the 100,000-example file of bench_check, times `check_path` (validation, checklist,
exact tokens) and then `estimate_from_report` (every OpenAI and self-hosted option) on
its report, in one process, and prints the ratio. Goal: the estimate under 5% of the
check's time (it must never tokenise again).

    python bench/bench_estimate.py [--examples 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_check import write_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    args = parser.parse_args()

    from ftassist.data.check import check_path
    from ftassist.plan.estimate import estimate_from_report

    with tempfile.TemporaryDirectory(prefix="ftassist-bench-") as tmp:
        data = Path(tmp) / "bench_chat.jsonl"
        write_dataset(data, args.examples)
        t0 = time.perf_counter()
        report = check_path(data, model="gpt-4o-mini-2024-07-18")
        check_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        table = estimate_from_report(report)
        estimate_s = time.perf_counter() - t1
    rows = table.to_dict()["rows"]
    print(f"check:    {check_s:8.3f} s ({report.n_examples:,} examples, {report.tokens.total:,} tokens)")
    print(f"estimate: {estimate_s:8.3f} s ({len(rows)} options side by side)")
    print(f"ratio estimate/check: {estimate_s / check_s:.2%} (goal < 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
