"""Benchmark: `python app.py` to the first HTTP 200, against a bare Gradio Blocks app.

The baseline is the smallest Gradio app there is: one Blocks with one Markdown, started by
`python bare_app.py` (demo.launch). Both are started as fresh processes, alternately, a few
times each in the same run, and timed from the spawn to the first `GET /` answering 200.
Prints each median and the ratio. Goal: ftassist at most 1.5x the bare app.

    python bench/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE_APP = """
import sys
import gradio as gr

with gr.Blocks() as demo:
    gr.Markdown("# Hello")
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_200(cmd: list[str], port: int, env: dict, timeout: float = 120.0) -> float:
    """Seconds from spawning `cmd` to the first 200 on http://127.0.0.1:port/ (the process is then stopped)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{cmd} gave no 200 within {timeout:.0f} s")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts of each app (alternating)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare_app.py"
        bare.write_text(BARE_APP)
        env = {**os.environ, "FTASSIST_HOME": str(Path(tmp) / "home"), "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("FTASSIST_ADMIN_PASSWORD", None)
        # One warm-up start each (bytecode caches, the data dir's first migrations), not counted.
        time_to_200([sys.executable, str(bare), str(p := free_port())], p, env)
        time_to_200([sys.executable, "app.py", "--port", str(p := free_port())], p, env)
        bare_s, app_s = [], []
        for i in range(args.runs):
            bare_s.append(time_to_200([sys.executable, str(bare), str(p := free_port())], p, env))
            app_s.append(time_to_200([sys.executable, "app.py", "--port", str(p := free_port())], p, env))
            print(f"run {i + 1}: bare {bare_s[-1]:.2f} s, ftassist {app_s[-1]:.2f} s", flush=True)
    b, a = statistics.median(bare_s), statistics.median(app_s)
    print(f"bare Gradio Blocks (Markdown): median {b:.2f} s to first HTTP 200 ({args.runs} runs)")
    print(f"ftassist app.py:               median {a:.2f} s to first HTTP 200 ({args.runs} runs)")
    print(f"ratio ftassist/bare: {a / b:.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
