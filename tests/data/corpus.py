"""A corpus of valid and broken dataset files, written into a test's tmp dir on demand.

Each helper returns the path it wrote. Broken files are built byte by byte, so the tests
know exactly which line and column is wrong.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def chat(i: int, system: bool = False) -> dict:
    msgs = [{"role": "user", "content": f"How do I reset password number {i}?"},
            {"role": "assistant", "content": f"Open Settings, choose Security, then reset password {i}."}]
    if system:
        msgs.insert(0, {"role": "system", "content": "You are a helpful support agent."})
    return {"messages": msgs}


def instruction(i: int, with_input: bool = True) -> dict:
    rec = {"instruction": f"Summarise ticket {i}.", "output": f"Ticket {i} is about billing."}
    if with_input:
        rec["input"] = f"Customer {i} was charged twice."
    return rec


def completion(i: int) -> dict:
    return {"prompt": f"Q{i}: what is the refund window?", "completion": f"A{i}: 30 days."}


def sharegpt(i: int) -> dict:
    return {"conversations": [{"from": "human", "value": f"hello {i}"}, {"from": "gpt", "value": f"hi {i}"}]}


def write_bytes(dir: Path, name: str, data: bytes) -> Path:
    path = Path(dir) / name
    path.write_bytes(data)
    return path


def write_jsonl(dir: Path, name: str, records: list, *, bom: bool = False, crlf: bool = False) -> Path:
    nl = b"\r\n" if crlf else b"\n"
    body = nl.join(json.dumps(r, ensure_ascii=False).encode("utf-8") for r in records) + nl
    return write_bytes(dir, name, (b"\xef\xbb\xbf" if bom else b"") + body)


def write_json_array(dir: Path, name: str, records: list, indent: int | None = 2) -> Path:
    path = Path(dir) / name
    path.write_text(json.dumps(records, indent=indent, ensure_ascii=False), encoding="utf-8")
    return path


def write_csv(dir: Path, name: str, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path = Path(dir) / name
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        for row in rows:
            w.writerow(row)
    return path


def write_parquet(dir: Path, name: str, records: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(dir) / name
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


# --------------------------------------------------------------------------- broken files


def empty(dir: Path, name: str = "empty.jsonl") -> Path:
    return write_bytes(dir, name, b"")


def whitespace_only(dir: Path, name: str = "blank.jsonl") -> Path:
    return write_bytes(dir, name, b"\n  \n\t\r\n\n")


def binary(dir: Path, name: str = "data.jsonl") -> Path:
    return write_bytes(dir, name, bytes(range(256)) * 40)


def truncated(dir: Path, name: str = "truncated.jsonl") -> Path:
    """Two good lines and a third cut in the middle (no newline at the end)."""
    good = b"\n".join(json.dumps(chat(i)).encode() for i in range(2)) + b"\n"
    return write_bytes(dir, name, good + json.dumps(chat(2)).encode()[:25])


def latin1_line(dir: Path, name: str = "latin1.jsonl") -> Path:
    """Line 3 is Latin-1 ('café' as 0xE9): not UTF-8."""
    lines = [json.dumps(chat(0)).encode(), json.dumps(chat(1)).encode(),
             '{"messages": [{"role": "user", "content": "café"}]}'.encode("latin-1"),
             json.dumps(chat(3)).encode()]
    return write_bytes(dir, name, b"\n".join(lines) + b"\n")


def malformed_json(dir: Path, name: str = "malformed.jsonl") -> Path:
    """Line 2 has a trailing comma at column 36; line 4 an unescaped quote."""
    lines = [json.dumps(chat(0)),
             '{"messages": [{"role": "user"}], "a": 1,}',
             json.dumps(chat(2)),
             '{"messages": "say "hi""}']
    return write_bytes(dir, name, ("\n".join(lines) + "\n").encode())


def deeply_nested(dir: Path, depth: int = 100_000, name: str = "nested.jsonl") -> Path:
    lines = [json.dumps(chat(0)), "[" * depth, json.dumps(chat(2)), "{\"a\": " * depth + "1" + "}" * depth]
    return write_bytes(dir, name, ("\n".join(lines) + "\n").encode())


def gigantic_line(dir: Path, size: int = 40 * 2**20, name: str = "giant.jsonl") -> Path:
    """Line 2 is a `size`-byte record; lines 1 and 3 are normal. Written in pieces."""
    path = Path(dir) / name
    with open(path, "wb") as fh:
        fh.write(json.dumps(chat(0)).encode() + b"\n")
        fh.write(b'{"messages": [{"role": "user", "content": "')
        piece = b"x" * 2**20
        left = size
        while left > 0:
            fh.write(piece[: min(left, len(piece))])
            left -= len(piece)
        fh.write(b'"}]}\n')
        fh.write(json.dumps(chat(2)).encode() + b"\n")
    return path


def mixed_formats(dir: Path, name: str = "mixed.jsonl") -> Path:
    return write_jsonl(dir, name, [chat(0), instruction(1), completion(2), sharegpt(3), chat(4)])
