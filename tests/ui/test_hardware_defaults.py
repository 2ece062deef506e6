"""The app starts from the hardware it runs on: the Decide answer and the Train tab's method note."""

import pytest

from ftassist import config


@pytest.mark.parametrize("gpus, expected", [
    ([], "none"),
    ([{"name": "NVIDIA GeForce RTX 4090", "memory_gb": 24}], "consumer_gpu"),
    ([{"name": "NVIDIA H100 80GB HBM3", "memory_gb": 80}], "datacenter_gpu"),
    ([{"name": "NVIDIA A100", "memory_gb": 40}] * 2, "multi_gpu"),
])
def test_hardware_class(gpus, expected):
    assert config.hardware_class({"gpus": gpus, "cuda": bool(gpus)}) == expected


def _component_by_label(demo, label):
    for comp in demo.get_config_file()["components"]:
        if comp.get("props", {}).get("label") == label:
            return comp["props"]
    raise AssertionError(f"no component labelled {label!r}")


def test_decide_and_train_follow_the_detected_hardware(monkeypatch):
    from ftassist.ui.layout import build_app

    monkeypatch.setattr(config, "_HARDWARE", {"cuda": True, "gpus": [{"name": "NVIDIA L4", "memory_gb": 24}],
                                              "source": "nvidia-smi", "cpu_count": 8})
    demo = build_app()
    assert _component_by_label(demo, "Hardware available?")["value"] == "consumer_gpu"
    assert "QLoRA will be refused" not in _component_by_label(demo, "Method")["info"]

    monkeypatch.setattr(config, "_HARDWARE", {"cuda": False, "gpus": [], "source": "none", "cpu_count": 2})
    demo = build_app()
    assert _component_by_label(demo, "Hardware available?")["value"] == "none"
    assert "QLoRA (bitsandbytes 4-bit) will be refused" in _component_by_label(demo, "Method")["info"]
