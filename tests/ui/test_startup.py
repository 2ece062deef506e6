"""Startup stays light: building the whole app imports none of the heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "openai", "tiktoken", "sklearn", "matplotlib",
         "accelerate", "bitsandbytes")
ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from ftassist.ui.layout import build_app, create_server
build_app()
create_server()
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy and "." not in m)))
"""


def test_building_the_app_imports_no_heavy_library(ftassist_home):
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={**os.environ, "FTASSIST_HOME": str(ftassist_home)})
    assert out.returncode == 0, out.stderr[-2000:]
    offenders = json.loads(out.stdout.strip().splitlines()[-1])
    assert offenders == [], f"imported at startup: {offenders}"


def test_hardware_detection_without_torch(monkeypatch):
    from ftassist import config

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    hw = config.detect_hardware(refresh=True)
    assert hw["cuda"] is False and hw["gpus"] == [] and hw["source"] == "none" and hw["cpu_count"] >= 1
    assert "CPU only" in config.hardware_line(hw) and "QLoRA needs a GPU" in config.hardware_line(hw)
    config.detect_hardware(refresh=True)


def test_hardware_from_nvidia_smi(monkeypatch, tmp_path):
    from ftassist import config

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA L4, 23034'\necho 'NVIDIA L4, 23034'\n")
    fake.chmod(0o755)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: str(fake) if name == "nvidia-smi" else None)
    hw = config.detect_hardware(refresh=True)
    assert hw["cuda"] and hw["source"] == "nvidia-smi"
    assert hw["gpus"] == [{"name": "NVIDIA L4", "memory_gb": 22.5}] * 2
    line = config.hardware_line(hw)
    assert line.startswith("Hardware: 2 × NVIDIA L4 (22.5 GB each)") and "QLoRA" in line
    monkeypatch.setattr("shutil.which", lambda name: None)
    config.detect_hardware(refresh=True)
