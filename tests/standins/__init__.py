"""Stand-ins for the services the app talks to (OpenAI's API and compatible endpoints, the Hugging
Face Hub): real HTTP servers on 127.0.0.1 driven through the real SDKs. Their fixtures come from
`standins.fixtures`, a plugin that tests/conftest.py registers for every test."""

from .hub_server import HubStandIn
from .openai_server import TRAIN_KEY, OpenAIStandIn, default_answer

__all__ = ["TRAIN_KEY", "HubStandIn", "OpenAIStandIn", "default_answer"]
