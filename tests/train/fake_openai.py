"""Moved to tests/standins/openai_server.py (one OpenAI stand-in for every test); this shim keeps the
train tests' `from fake_openai import FakeOpenAI, fake_openai` working until they use the stand-in
and its `fake_openai` fixture (registered for every test by tests/conftest.py) directly."""

from functools import partial

from standins.fixtures import fake_openai  # noqa: F401 - the fixture, imported by the tests
from standins.openai_server import TRAIN_KEY, OpenAIStandIn

FakeOpenAI = partial(OpenAIStandIn, expected_key=TRAIN_KEY)  # FakeOpenAI(expected_key=...) still overrides
