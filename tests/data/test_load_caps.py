"""Bounded input: what a file decodes to is capped per row and per file, and the row that broke the cap is named.

The Parquet bomb of the security review (2,048 rows of 1 MB text, a few dozen KB with zstd) once took the app
to 7 GB; it must now be refused from its footer, before anything is decompressed."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ftassist.data import load

MB = 2**20
READ = r"""
import json, re, sys, time
from ftassist.data.load import LoadError, iter_records
start = time.monotonic()
try:
    n = sum(1 for _ in iter_records(sys.argv[1]))
    out = {"records": n}
except LoadError as exc:
    out = {"error": str(exc)}
# VmHWM is this process's own peak; ru_maxrss would carry the parent's peak over into the child.
peak_kb = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
out.update(seconds=time.monotonic() - start, max_rss_mb=peak_kb / 1024)
print(json.dumps(out))
"""


def _read_in_subprocess(path, **env) -> dict:
    import os

    result = subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_parquet_bomb(path) -> None:
    """2 GiB of text in 32 row groups, about 10 KB on disk: one 64-row table written 32 times, so neither
    this process nor the writer ever holds more than 64 MiB of it. Plain-encoded, so the footer tells its size
    (a dictionary hides it: see the dictionary bomb below)."""
    chunk = pa.table({"text": ["x" * MB] * 64})
    with pq.ParquetWriter(path, chunk.schema, compression="zstd", use_dictionary=False) as writer:
        for _ in range(32):
            writer.write_table(chunk)


def test_parquet_bomb_is_refused_from_its_footer(tmp_path):
    bomb = tmp_path / "bomb.parquet"
    write_parquet_bomb(bomb)
    assert bomb.stat().st_size < 200_000  # tiny on the wire
    out = _read_in_subprocess(bomb, FTASSIST_MAX_UPLOAD="1gb")
    # by hand: a row group is 64 rows of 1 MiB (each at least its bytes and a 4-byte offset); 15 groups are
    # 960 MiB and some, 16 are 1 GiB + 4 KiB: the 16th group passes the 1 GiB limit, at its last row, 1,024
    assert "error" in out and "decompresses to" in out["error"] and "by row 1024 (row group 16)" in out["error"]
    assert "FTASSIST_MAX_UPLOAD" in out["error"]
    assert out["max_rss_mb"] < 400, out  # nothing was decoded


def test_a_dictionary_bomb_is_stopped_at_the_row_where_it_passes_the_cap(tmp_path):
    """One 1 MB value repeated 5,000 times: the footer says ~1 MB, the rows say 5 GB. Counted per row as read."""
    path = tmp_path / "dict.parquet"
    column = pa.DictionaryArray.from_arrays(pa.array([0] * 5000, pa.int32()), pa.array(["y" * MB]))
    pq.write_table(pa.table({"text": column}), path, compression="zstd", dictionary_pagesize_limit=4 * MB)
    assert pq.ParquetFile(path).metadata.row_group(0).total_byte_size < 64 * MB  # the footer does not tell
    with pytest.raises(load.LoadError, match=r"passes 20 MB at row 21\b"):
        list(load.iter_records(path, max_decoded_bytes=20 * MB))


# One row whose list holds N copies of a value (and, for the second bomb, one other value so that the statistics'
# min and max differ), written through a dictionary so neither writer nor file ever holds the copies.
NESTED = r"""
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, length, odd = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
indices = np.zeros(n + odd, np.int32)
indices[n:] = 1
values = pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(["q" * length, "a"]))
rows = pa.ListArray.from_arrays(pa.array([0, n + odd], pa.int32()), values)
pq.write_table(pa.table({"messages": rows}), sys.argv[1], compression="zstd")
"""


@pytest.mark.parametrize("n, length, odd", [(2_000_000, 200, False), (27_000_000, 30, True)],
                         ids=["one-value-repeated", "values-counted"])
def test_a_nested_column_repeating_a_value_is_refused_from_its_footer(tmp_path, n, length, odd):
    """A list in one row holding one value millions of times: the footer's sizes say a few hundred bytes, the
    row decodes to ~400 MB (once 800 MB of memory with a 100 MB cap). The footer still tells: its value count
    (4 bytes each at least), and, when every value is the same, that value's length."""
    bomb = tmp_path / "nested.parquet"
    subprocess.run([sys.executable, "-c", NESTED, str(bomb), str(n), str(length), "1" if odd else "0"], check=True,
                   timeout=300)
    assert bomb.stat().st_size < 200_000
    column = pq.ParquetFile(bomb).metadata.row_group(0).column(0)
    assert column.total_uncompressed_size < 1_000_000 and column.num_values >= n  # the sizes do not tell
    out = _read_in_subprocess(bomb, FTASSIST_MAX_UPLOAD="100mb")
    assert "error" in out and "decompresses to" in out["error"] and "row 1 " in out["error"], out
    assert out["max_rss_mb"] < 400, out  # nothing was decoded


def test_a_parquet_row_over_the_record_cap_is_reported_on_its_row(tmp_path):
    path = tmp_path / "rows.parquet"
    texts = ["short", "z" * (3 * MB), "also short"]
    pq.write_table(pa.table({"prompt": texts, "completion": ["a", "b", "c"]}), path, use_dictionary=False)
    records = list(load.iter_records(path, max_record_bytes=MB))
    assert [r.line for r in records] == [1, 2, 3]
    assert records[0].data == {"prompt": "short", "completion": "a"}
    assert records[1].data is None and records[1].problem.code == "record_too_large" and records[1].problem.line == 2
    assert records[2].data == {"prompt": "also short", "completion": "c"}


def test_an_ordinary_parquet_file_reads_whole(tmp_path):
    path = tmp_path / "ok.parquet"
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(3000)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    records = list(load.iter_records(path))
    assert len(records) == 3000 and records[-1].line == 3000 and records[-1].data == rows[-1]
    assert all(r.problem is None for r in records)


def test_a_jsonl_record_over_the_cap_names_its_line(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "a"}\n' + json.dumps({"text": "b" * (2 * MB)}) + '\n{"text": "c"}\n')
    records = list(load.iter_records(path, max_record_bytes=MB))
    assert [r.line for r in records] == [1, 2, 3]
    assert records[1].problem.code == "record_too_large" and records[2].data == {"text": "c"}


def test_hub_rows_are_held_to_the_same_caps(tmp_path):
    rows = [{"text": "x" * 1000} for _ in range(100)]
    out = tmp_path / "hub.jsonl"
    with pytest.raises(load.LoadError, match=r"at row 51\b"):
        load._write_hub_rows(iter(rows), out, "org/name", max_decoded_bytes=50 * 1014)
    with pytest.raises(load.LoadError, match=r"row 2 is"):
        load._write_hub_rows(iter([{"t": "a"}, {"t": "b" * 5000}]), out, "org/name", max_decoded_bytes=MB,
                             max_record_bytes=1000)
    assert load._write_hub_rows(iter(rows), out, "org/name", max_decoded_bytes=MB) == out.stat().st_size
