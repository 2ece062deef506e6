"""The stand-ins as pytest fixtures, registered for every test by `pytest_plugins` in tests/conftest.py."""

from __future__ import annotations

import pytest

from .hub_server import HubStandIn
from .openai_server import TRAIN_KEY, OpenAIStandIn


@pytest.fixture
def openai_server():
    """A started OpenAI stand-in that takes any key; stopped after the test."""
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def fake_openai():
    """The stand-in as the fine-tuning tests use it: only `TRAIN_KEY` is accepted, anything else is a 401."""
    with OpenAIStandIn(expected_key=TRAIN_KEY) as server:
        yield server


@pytest.fixture
def fake_llm():
    """The stand-in as the arena tests use it: models `base`, `tuned` and `judge`, any key."""
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture
def hub_server():
    """A started Hugging Face Hub stand-in; closed after the test."""
    server = HubStandIn()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def together_server():
    """A started Together AI stand-in: only `TOGETHER_KEY` is accepted, anything else is a 401."""
    from .together_server import TogetherStandIn

    with TogetherStandIn() as server:
        yield server


@pytest.fixture
def jobs_server():
    """A started Hugging Face Jobs (and Hub) stand-in that really runs each job's command; closed after the test."""
    from .jobs_server import JobsStandIn

    server = JobsStandIn()
    try:
        yield server
    finally:
        server.close()
