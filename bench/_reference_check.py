"""The baseline for bench_check: OpenAI cookbook's chat data check, as the notebook writes it.

Reads the whole file with json.loads per line, runs the cookbook's format checks, then counts
tokens with tiktoken per message (encoding.encode per value), as in "Chat_finetuning_data_prep".
The changes: o200k_base instead of the notebook's hard-coded cl100k_base, so both sides
count with the same encoding; and, so that tool-call data does not crash it, a value that is not
a string counts as its compact JSON, None counts 0, and an example's `tools` count as their JSON
(ftassist's documented rule: OpenAI bills them). On plain text chats it is the notebook's code.
"""

import json
import sys
from collections import defaultdict

import numpy as np
import tiktoken

data_path = sys.argv[1]
with open(data_path, "r", encoding="utf-8") as f:
    dataset = [json.loads(line) for line in f]

format_errors = defaultdict(int)
for ex in dataset:
    if not isinstance(ex, dict):
        format_errors["data_type"] += 1
        continue
    messages = ex.get("messages", None)
    if not messages:
        format_errors["missing_messages_list"] += 1
        continue
    for message in messages:
        if "role" not in message or "content" not in message:
            format_errors["message_missing_key"] += 1
        if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
            format_errors["message_unrecognized_key"] += 1
        if message.get("role", None) not in ("system", "user", "assistant", "function"):
            format_errors["unrecognized_role"] += 1
        content = message.get("content", None)
        function_call = message.get("function_call", None)
        if (not content and not function_call) or not isinstance(content, str):
            format_errors["missing_content"] += 1
    if not any(message.get("role", None) == "assistant" for message in messages):
        format_errors["example_missing_assistant_message"] += 1

encoding = tiktoken.get_encoding("o200k_base")


def text_of(value):
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            if value is None:
                continue
            num_tokens += len(encoding.encode(text_of(value)))
            if key == "name":
                num_tokens += tokens_per_name
    num_tokens += 3
    return num_tokens


def num_assistant_tokens_from_messages(messages):
    num_tokens = 0
    for message in messages:
        if message["role"] == "assistant" and message["content"] is not None:
            num_tokens += len(encoding.encode(message["content"]))
    return num_tokens


n_missing_system = 0
n_missing_user = 0
n_messages = []
convo_lens = []
assistant_message_lens = []
for ex in dataset:
    messages = ex["messages"]
    if not any(message["role"] == "system" for message in messages):
        n_missing_system += 1
    if not any(message["role"] == "user" for message in messages):
        n_missing_user += 1
    n_messages.append(len(messages))
    convo_lens.append(num_tokens_from_messages(messages)
                      + (len(encoding.encode(text_of(ex["tools"]))) if ex.get("tools") is not None else 0))
    assistant_message_lens.append(num_assistant_tokens_from_messages(messages))

print(json.dumps({"n": len(dataset), "errors": dict(format_errors), "total_tokens": int(np.sum(convo_lens)),
                  "assistant_tokens": int(np.sum(assistant_message_lens))}))
