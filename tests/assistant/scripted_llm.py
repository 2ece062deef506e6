"""Moved to tests/standins/openai_server.py (one OpenAI stand-in for every test); this shim keeps the
assistant tests' `ScriptedLLM(script).start()` working until they use `OpenAIStandIn(script=...)`."""

from standins.openai_server import OpenAIStandIn


def ScriptedLLM(script: list) -> OpenAIStandIn:
    return OpenAIStandIn(script=script)
