"""Taking the model home writes where the Data step writes: the app (the page, the assistant, the CLI through its
socket) only under its data dir, links followed; a person's own command wherever they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftassist.arena import models as arena_models
from ftassist.usecases import exporting
from ftassist.usecases.context import Context, UseCaseError


@pytest.fixture
def bot(store, tiny_model_dir, tiny_adapter_dir) -> str:
    """A LoRA adapter over the tiny model, registered as "tiny bot"."""
    return arena_models.add_model(store, "hf_adapter", "tiny bot", {"base_model": str(tiny_model_dir),
                                                                    "adapter_dir": str(tiny_adapter_dir)})


def test_the_app_exports_only_under_its_data_dir(store, bot, tmp_path):
    app = Context.open(reads_any_file=False)
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(UseCaseError, match="writes only under its data dir") as refused:
        exporting.export_model(app, "tiny bot", "vllm", str(elsewhere))
    assert "no app running" in str(refused.value) and not elsewhere.exists()  # what to do instead, nothing written
    # a link under the data dir that points outside is outside
    link = app.settings.data_dir / "out-link"
    link.symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UseCaseError, match="writes only under its data dir"):
        exporting.export_model(app, "tiny bot", "vllm", str(link / "served"))
    with pytest.raises(UseCaseError, match="writes only under its data dir"):
        exporting.export_model(app, "tiny bot", "ollama", str(app.settings.exports_dir / ".." / ".." / "up"))
    assert not (tmp_path / "served").exists() and not (tmp_path / "up").exists()
    # under the data dir, named or not, it writes
    inside = app.settings.exports_dir / "chosen"
    assert exporting.export_model(app, "tiny bot", "vllm", str(inside)).files == [str(inside / "serve.sh")]
    default = exporting.export_model(app, "tiny bot", "vllm")
    assert default.out_dir.startswith(str(app.settings.exports_dir)) and (inside / "serve.sh").is_file()


def test_a_persons_own_command_exports_anywhere(store, bot, tmp_path):
    mine = Context.open(reads_any_file=True)
    result = exporting.export_model(mine, "tiny bot", "vllm", str(tmp_path / "mine"))
    assert result.files == [str(tmp_path / "mine" / "serve.sh")] and (tmp_path / "mine" / "serve.sh").is_file()


def test_the_cli_through_the_app_brings_the_export_where_the_person_said(store, bot, tmp_path):
    """With an app serving the data dir, `ftassist export --out DIR` outside it is not refused: the app writes under
    its data dir and the command moves the files to DIR (weights are not kept twice), the printed paths and commands
    pointing there."""
    import json
    import subprocess
    import sys

    from ftassist import app_socket

    served = Context.open(reads_any_file=False)
    server = app_socket.serve(served)
    try:
        run = dict(capture_output=True, text=True, timeout=300, cwd=tmp_path)
        (tmp_path / "home" / "merged").mkdir(parents=True)
        (tmp_path / "home" / "merged" / "notes.txt").write_text("mine")  # a folder that exists is merged into
        merged = subprocess.run([sys.executable, "-m", "ftassist", "export", "tiny bot", "--to", "merged", "--out",
                                 "home/merged", "--json"], **run)
        assert merged.returncode == 0, merged.stderr
        result = json.loads(merged.stdout)
        target = tmp_path / "home" / "merged"
        assert result["out_dir"] == str(target) and result["files"]
        assert all(path.startswith(str(target) + "/") and Path(path).is_file() for path in result["files"])
        assert (target / "config.json").is_file() and str(target) in result["message"]
        assert not any(served.settings.exports_dir.rglob("*.safetensors"))  # moved, not copied
        assert (target / "notes.txt").read_text() == "mine" and str(target / "notes.txt") not in result["files"]
        served_sh = subprocess.run([sys.executable, "-m", "ftassist", "export", "tiny bot", "--to", "ollama",
                                    "--out", "home/ollama"], **run)
        assert served_sh.returncode == 0, served_sh.stderr
        printed = served_sh.stdout.splitlines()
        modelfile = tmp_path / "home" / "ollama" / "Modelfile"
        assert printed[0] == str(modelfile) and modelfile.is_file() and f"-f {modelfile}`" in printed[-1]
    finally:
        app_socket.stop(server)
