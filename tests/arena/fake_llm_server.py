"""Moved to tests/standins/openai_server.py (one OpenAI stand-in for every test); this shim keeps the
arena tests' `from fake_llm_server import FakeLLMServer` working until they import the stand-in."""

from standins.openai_server import WORDS, OpenAIStandIn as FakeLLMServer, default_answer  # noqa: F401
