"""ftassist: a fine-tuning assistant for LLMs (decide, data, estimate, train, evaluate)."""

__version__ = "0.1.0"
