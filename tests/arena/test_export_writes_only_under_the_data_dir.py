"""Taking the model home writes where the Data step writes: the app (the page, the assistant, the CLI through its
socket) only under its data dir, links followed; a person's own command wherever they say."""

from __future__ import annotations

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
