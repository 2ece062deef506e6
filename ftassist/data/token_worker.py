"""Token counting in a second process, so that it overlaps the check's parsing and checks.

Why a process: counting is most of a check's CPU time, and tiktoken's encoders do not scale
over threads of one process (measured on 2 cores: two threads counting halves of a file's
texts took 0.9 of one thread's time for 1.6 times its CPU; two processes took 0.5), so the only
way to run it beside parsing, validation and the checklist is another process. Nor does this
worker split a chunk over two threads when the parent waits: it did, and a long-text check took
a fifth longer, the second thread's extra CPU taken from the parent, which is rarely idle for
long. That process counts with `fast_tiktoken.lean_counter`: its memory adds to the check's peak.

The parent sends frames (an 8-byte big-endian length, then a pickle): first the encoding
name, then one `pack_chats` chunk per frame; the worker answers "ready", then one
`count_packed` answer per chunk, in order.

A worker with time to spare also takes checklist work off the parent: asked for it, it rebuilds
the chunk's examples and returns them judged in a `checklist.ChecklistBuilder` part (their
near-duplicate signatures included), which the parent merges in order (see `check.py`). It
imports the checklist and numpy only then: a worker busy counting long texts is never asked,
and stays lean.
"""

from __future__ import annotations

import os
import sys
import threading
from array import array
from operator import add, mul
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from .tokens import DEFAULT_ENCODING, ENCODING_FILES, ENCODINGS, TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, TokenCounter

_LENGTH_BYTES = 8  # bytes of the big-endian length that precedes each pickled frame


def _read_exact(stream, size: int) -> bytes | None:
    """`size` bytes from a pipe, which may hand them over in pieces; None at the end of the stream."""
    received = bytearray()
    while len(received) < size:
        piece = stream.read(size - len(received))
        if not piece:
            return None
        received += piece
    return bytes(received)


_EOF = object()  # _read_frame's answer at the end of the stream


def _read_frame(stream) -> Any:
    import pickle

    head = _read_exact(stream, _LENGTH_BYTES)
    if head is None:
        return _EOF
    body = _read_exact(stream, int.from_bytes(head, "big"))
    return _EOF if body is None else pickle.loads(body)


def _frame(message: Any) -> bytes:
    import pickle

    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_LENGTH_BYTES, "big") + body


class ChecklistRequest(NamedTuple):
    """What the worker needs, beyond the chats, to judge a chunk's examples for the checklist:
    the index of the chunk's first example, each example's line (a 32-bit array's bytes), the
    label fields of the examples that have any (by position in the chunk), and the builder's
    settings."""

    first: int
    lines: bytes
    labels: dict[int, dict]
    max_evidence: int
    batch: int  # examples per `add_many`


class Counted(NamedTuple):
    """One chunk's results from `BackgroundChatCounter`: its payload, the (total, assistant)
    tokens of each chat, and, when asked for, the chats' near-duplicate word hashes
    (`textkeys.chat_word_hashes`: all hashes in one array, and how many each chat has) and
    the chunk's checklist part (`ChecklistRequest`)."""

    payload: Any
    totals: Sequence[int]
    assistants: Sequence[int]
    words: tuple[array, array] | None = None
    checklist: Any = None  # a checklist.ChecklistBuilder part
    waited: float = 0.0  # seconds the worker sat idle before this chunk came (0 when counted here)

    @property
    def counts(self) -> list[tuple[int, int]]:
        return list(zip(self.totals, self.assistants))


class _Chunk(NamedTuple):
    """A chunk in flight. One that was packed keeps only its frame (far smaller than the
    dicts), which is also what a recount here starts from."""

    payload: Any
    chats: list | None  # None when packed
    frame: bytes | None  # None when it could not be packed: counted here
    words: bool
    size: int  # number of chats
    checklist: ChecklistRequest | None


def pack_chats(chats: list, words: bool = False, checklist: ChecklistRequest | None = None) -> bytes:
    """One chunk of chats as a frame for the worker.

    Why not pickle the dicts: a chat of plain {role, content} messages travels as its texts
    and one role code per message, which is cheaper to pickle on this side and to unpickle
    and walk on the other (measured: 1.4 + 0.6 us per chat against 1.9 + 3.0). Any other
    chat (tools, names, non-string content) travels whole.
    """
    texts: list[str] = []
    roles = bytearray()
    layout = array("i")  # per chat: its number of messages, or -1 when it travels whole
    whole: dict[int, Any] = {}
    role_codes: dict[str, int] = {}
    for index, chat in enumerate(chats):
        # exact class checks (not isinstance): a dict subclass travels whole, as pickled
        messages = chat.get("messages") if chat.__class__ is dict and len(chat) == 1 else None
        if messages.__class__ is list:
            first_text = len(texts)
            for message in messages:
                if message.__class__ is dict and len(message) == 2:
                    content = message.get("content")
                    role = message.get("role")
                    if content.__class__ is str and role.__class__ is str:
                        code = role_codes.get(role)
                        if code is None and len(role_codes) < 255:  # a role code is one byte
                            code = role_codes[role] = len(role_codes)
                        if code is not None:
                            texts.append(content)
                            roles.append(code)
                            continue
                del texts[first_text:], roles[first_text:]  # not plain: the chat travels whole
                break
            else:
                layout.append(len(messages))
                continue
        layout.append(-1)
        whole[index] = chat
    return _frame((list(role_codes), layout.tobytes(), bytes(roles), texts, whole, words, checklist))


def checklist_part(chats: list, request: ChecklistRequest):
    """A chunk's chats judged for the checklist, as a part for the parent's builder to merge."""
    from .checklist import ChecklistBuilder
    from .report import Example

    lines = array("i")
    lines.frombytes(request.lines)
    labels = request.labels
    examples = [Example(line, chat, "", labels.get(index) or {}, ()) for index, (line, chat) in
                enumerate(zip(lines, chats))]
    part = ChecklistBuilder(max_evidence=request.max_evidence, tokens_later=True, first=request.first, capped=False)
    for start in range(0, len(examples), request.batch):
        part.add_many(examples[start:start + request.batch], formats=False)
    part.flush_words()  # the MinHash signatures too, here
    return part


def _unpacked_chats(role_names: list, layout: array, roles: bytes, texts: list, whole: dict) -> list:
    """The chats of a `pack_chats` frame, as they were (a plain message's keys in the order role, content)."""
    chats = []
    position = 0
    for index, n_messages in enumerate(layout):
        if n_messages < 0:
            chats.append(whole[index])
            continue
        end = position + n_messages
        chats.append({"messages": [{"role": role_names[code], "content": text}
                                   for code, text in zip(roles[position:end], texts[position:end])]})
        position = end
    return chats


def count_packed(counter: TokenCounter, frame: tuple) -> tuple[bytes, bytes, tuple[bytes, bytes] | None, Any]:
    """The worker's answer to one `pack_chats` frame: totals, assistant tokens, word hashes, checklist part.

    Equal to `counter.count_one`, `textkeys.chat_word_hashes` and `checklist_part` on the chats
    (tests hold both paths to that); the plain-message path just skips the dict walking.
    """
    from .textkeys import WORD_HASH_CODE, add_word_hashes, chat_word_hashes, final_user_text

    role_names, layout_bytes, roles, texts, whole, words, checklist = frame
    layout = array("i")
    layout.frombytes(layout_bytes)
    count = counter.count
    role_tokens = [count(role) for role in role_names]
    # every distinct text counted once (a system prompt repeated in most chats, say), the texts mapped through
    # the encoder from C: a Python call per text would be most of the cost beyond tiktoken's own
    distinct = list(dict.fromkeys(texts))
    text_tokens = list(map(dict(zip(distinct, counter.count_many(distinct))).__getitem__, texts))
    del distinct
    assistant_code = role_names.index("assistant") if "assistant" in role_names else -1
    user_code = role_names.index("user") if "user" in role_names else -1
    # per text, from C as well: what the message adds to its chat's total, and to its assistant tokens
    message_tokens = list(map(add, text_tokens, map(role_tokens.__getitem__, roles)))
    is_assistant = bytes(int(code == assistant_code) for code in range(256))  # role code -> 1 for the assistant
    answer_tokens = list(map(mul, text_tokens, roles.translate(is_assistant)))
    totals = array("i")
    assistants = array("i")
    word_hashes = array(WORD_HASH_CODE)
    word_counts = array("i")
    position = 0  # of the chat's first text in `texts`
    for index, n_messages in enumerate(layout):
        if n_messages < 0:
            chat = whole[index]
            total, assistant = counter.count_one(chat)
            if words:
                word_counts.append(chat_word_hashes(chat, word_hashes))
        else:
            end = position + n_messages
            total = TOKENS_PER_REPLY + TOKENS_PER_MESSAGE * n_messages + sum(message_tokens[position:end])
            assistant = sum(answer_tokens[position:end])
            if words:
                prompt = final_user_text(roles[position:end], texts[position:end], user=user_code,
                                         assistant=assistant_code)
                word_counts.append(add_word_hashes(prompt, word_hashes))
            position = end
        totals.append(total)
        assistants.append(assistant)
    answer_words = (word_hashes.tobytes(), word_counts.tobytes()) if words else None
    part = None
    if checklist is not None:
        part = checklist_part(_unpacked_chats(role_names, layout, roles, texts, whole), checklist)
    return totals.tobytes(), assistants.tobytes(), answer_words, part


def _unpack_answer(payload: Any, answer: tuple) -> Counted:
    from .textkeys import WORD_HASH_CODE

    totals, assistants = array("i"), array("i")
    totals.frombytes(answer[0])
    assistants.frombytes(answer[1])
    words = None
    if answer[2] is not None:
        word_hashes, word_counts = array(WORD_HASH_CODE), array("i")
        word_hashes.frombytes(answer[2][0])
        word_counts.frombytes(answer[2][1])
        words = (word_hashes, word_counts)
    return Counted(payload, totals, assistants, words, answer[3], answer[4] if len(answer) > 4 else 0.0)


def _worker_main() -> None:
    """The worker process: reads the encoding's name, then `pack_chats` frames; answers each.

    Runs as `python -c "from ftassist.data.token_worker import _worker_main; _worker_main()"`, not
    through multiprocessing, so the parent's `__main__` is never re-imported (a CLI or app
    entry point without a main guard would otherwise run again in the child).
    """
    import gc
    from time import perf_counter

    gc.disable()  # a counting loop makes no reference cycles; collections would only cost time
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    encoding = _read_frame(stdin)
    if encoding is _EOF:
        return
    counter = TokenCounter(encoding, lean=True)
    stdout.write(_frame("ready"))
    stdout.flush()
    while True:
        idle_since = perf_counter()
        frame = _read_frame(stdin)
        waited = perf_counter() - idle_since  # the parent shares more work with a worker that waits
        if frame is _EOF:
            # straight out: the parent waits for this exit, and tearing the interpreter down (the encoder's
            # tables freed piece by piece) would only delay it; every answer is written and flushed already
            os._exit(0)
        try:
            answer: Any = (*count_packed(counter, frame), waited)
        except Exception:  # noqa: BLE001 - the parent recounts this chunk itself
            answer = None
        stdout.write(_frame(answer))
        stdout.flush()


def _widen_pipes(*streams) -> None:
    """Give the pipes to the worker room for a whole chunk (Linux; elsewhere a no-op).

    Why: a 2 MB chunk through a default 64 KB pipe takes ~35 writes, and between two of them
    the writer thread must win the GIL back from the busy main thread (up to the 5 ms switch
    interval each time), so the worker would sit waiting for its input.
    """
    try:
        import fcntl

        size = 1 << 20
        try:
            with open("/proc/sys/fs/pipe-max-size") as limit_file:
                size = min(size, int(limit_file.read()))
        except (OSError, ValueError):
            pass
        for stream in streams:
            fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except Exception:  # noqa: BLE001 - only a speed-up
        pass


class BackgroundChatCounter:
    """Counts chunks of chats in a worker process while the caller goes on parsing and checking.

    Why a process: see the module doc. Chats travel packed (`pack_chats`, far cheaper than
    counting them here).

    Use: `submit(chats, payload, words=False)` returns the chunks already counted, in
    submission order, as `Counted` results; it blocks only to keep at most `max_pending`
    chunks in flight (bounded memory). `drain()` returns the rest. Counts equal `count_chat`
    on each chat; `words=True` also asks for the near-duplicate word hashes, so that a
    caller with more work than the worker can hand some over (`backlog` says how far behind
    the worker is). If the worker cannot start or dies, chunks are counted in this process
    instead (slower, same numbers), so callers never handle worker errors;
    `chunks_counted_here` says how many were (none, while the worker does its job).
    """

    def __init__(self, encoding: str = DEFAULT_ENCODING, max_pending: int = 4):
        import collections
        import queue

        if encoding not in ENCODING_FILES:
            raise ValueError(f"Unknown encoding {encoding!r}: use one of {', '.join(ENCODINGS)}.")
        self.encoding = encoding
        self.max_pending = max(1, max_pending)
        self._inflight: collections.deque[_Chunk] = collections.deque()  # oldest first
        self._results: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue(maxsize=self.max_pending + 1)
        self._send_lock = threading.Lock()
        self._queued = 0  # frames handed to the writer thread and not yet written whole
        self._direct = False  # frames may be written from the caller's thread (the pipe is non-blocking)
        self._here: TokenCounter | None = None  # counts the chunks the worker does not
        self.chunks_counted_here = 0
        self._proc = None
        self.in_process = True  # becomes False once the worker answered "ready"
        self._started = threading.Event()  # set once the worker answered "ready" or is gone
        try:
            self._start_worker()
        except Exception:  # noqa: BLE001 - no worker: count here
            self._stop_worker()
        if self._proc is None:
            self._started.set()
        else:
            self._reader = threading.Thread(target=self._read_loop, name="token-count-reader", daemon=True)
            self._writer = threading.Thread(target=self._write_loop, name="token-count-writer", daemon=True)
            self._reader.start()
            self._writer.start()

    # -- worker plumbing

    def _start_worker(self) -> None:
        import subprocess

        # no ensure_offline_encodings() here: the worker checks its rank file itself, and
        # hashing it here too would only delay the worker's start
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(path for path in (root, env.get("PYTHONPATH", "")) if path)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from ftassist.data.token_worker import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        _widen_pipes(self._proc.stdin, self._proc.stdout)
        self._proc.stdin.write(_frame(self.encoding))
        self._proc.stdin.flush()
        try:
            os.set_blocking(self._proc.stdin.fileno(), False)
            self._direct = True
        except (AttributeError, OSError):  # a platform without non-blocking pipes: the writer thread writes all
            pass

    def _stop_worker(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
        try:
            proc.wait(timeout=2)
        except Exception:  # noqa: BLE001
            proc.kill()
            proc.wait()

    def _read_loop(self) -> None:
        proc = self._proc
        try:
            first = _read_frame(proc.stdout)
            if first == "ready":
                self.in_process = False
                self._started.set()
                while True:
                    answer = _read_frame(proc.stdout)
                    if answer is _EOF:
                        break
                    self._results.put(("ok", answer))
        except Exception:  # noqa: BLE001 - a broken pipe ends the worker's turn
            pass
        self._started.set()
        self._results.put(("dead", None))

    def _send(self, frame: bytes) -> None:
        """Hand a frame to the worker: written from this thread at once when no earlier frame is still
        on its way and the pipe takes it whole; the rest, or the whole frame, goes to the writer thread.

        Why not always the writer thread: it starts writing only once this (busy) thread yields the
        GIL, up to a switch interval later, and the worker waits for its next chunk meanwhile.
        """
        with self._send_lock:
            if self._direct and not self._queued:
                try:
                    written = os.write(self._proc.stdin.fileno(), frame)
                except OSError:  # a full pipe; or a closed one, which the writer thread meets too, and stops
                    written = 0
                if written == len(frame):
                    return
                frame = memoryview(frame)[written:]
            self._queued += 1
        self._outbox.put(frame)

    def _write_loop(self) -> None:
        import select

        proc = self._proc
        descriptor = proc.stdin.fileno()
        while True:
            frame = self._outbox.get()
            if frame is None:
                break
            try:
                view = memoryview(frame)
                while view:
                    try:
                        view = view[os.write(descriptor, view):]
                    except (BlockingIOError, InterruptedError):  # the pipe is full: wait until it has room
                        select.select([], [descriptor], [])
            except Exception:  # noqa: BLE001 - the reader notices the dead worker
                break
            finally:
                with self._send_lock:
                    self._queued -= 1
        try:
            proc.stdin.close()
        except Exception:  # noqa: BLE001
            pass

    def _count_here(self, chunk: _Chunk) -> Counted:
        import pickle

        from .textkeys import WORD_HASH_CODE, chat_word_hashes

        self.chunks_counted_here += 1
        if self._here is None:
            self._here = TokenCounter(self.encoding)
        if chunk.chats is None:
            return _unpack_answer(chunk.payload, count_packed(self._here, pickle.loads(chunk.frame[_LENGTH_BYTES:])))
        counts = [self._here.count_one(chat) for chat in chunk.chats]
        found = None
        if chunk.words:
            word_hashes = array(WORD_HASH_CODE)
            found = (word_hashes, array("i", [chat_word_hashes(chat, word_hashes) for chat in chunk.chats]))
        totals = array("i", [total for total, _ in counts])
        assistants = array("i", [assistant for _, assistant in counts])
        part = None if chunk.checklist is None else checklist_part(chunk.chats, chunk.checklist)
        return Counted(chunk.payload, totals, assistants, found, part)

    def _take_oldest(self, block: bool) -> Counted | None:
        """The oldest in-flight chunk's results, or None when not ready and not blocking."""
        import queue

        if not self._inflight:
            return None
        if self._proc is None or self._inflight[0].frame is None:  # no worker, or never sent to it
            return self._count_here(self._inflight.popleft())
        try:
            status, answer = self._results.get(block=block)
        except queue.Empty:
            return None
        chunk = self._inflight.popleft()
        if status == "dead":
            self._results.put(("dead", None))  # every later chunk sees it too
            self._abandon_worker()
            return self._count_here(chunk)
        try:
            done = _unpack_answer(chunk.payload, answer)
        except Exception:  # noqa: BLE001 - a chunk the worker could not count
            return self._count_here(chunk)
        if len(done.totals) != chunk.size or (
                chunk.words and (done.words is None or len(done.words[1]) != chunk.size)) or (
                chunk.checklist is not None and (done.checklist is None or done.checklist.first != chunk.checklist.first
                                                 or done.checklist.n - done.checklist.first != chunk.size)):
            return self._count_here(chunk)
        return done

    def _abandon_worker(self) -> None:
        try:
            self._outbox.put_nowait(None)
        except Exception:  # noqa: BLE001
            pass
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.in_process = True

    # -- public API

    @property
    def started(self) -> bool:
        """Whether the worker has loaded its encoding (or is known to be gone, or never started).

        Why a caller asks: while it loads, the worker's memory peaks (tiktoken's rank table is
        alive both as a Python dict and in the Rust core, ~25 MB above what it keeps), so a
        caller whose own memory would grow (the check's numpy) leaves that for later.
        """
        return self._started.is_set()

    @property
    def backlog(self) -> int:
        """Chunks submitted and not yet returned: how far behind the worker is."""
        return len(self._inflight)

    @property
    def words_in_flight(self) -> bool:
        """Whether a chunk still in flight was sent with words=True (its word hashes are to come)."""
        return any(chunk.words for chunk in self._inflight)

    def submit(self, chats: list, payload: Any = None, words: bool = False,
               checklist: ChecklistRequest | None = None) -> list[Counted]:
        """Queue one chunk; return the chunks finished so far (oldest first). `checklist`: the
        chunk's examples are judged for the checklist too (`Counted.checklist`)."""
        chats = list(chats)
        done = []
        frame = None
        if self._proc is not None:
            try:
                frame = pack_chats(chats, words, checklist)
            except Exception:  # noqa: BLE001 - e.g. absurdly nested data: count it here
                frame = None
        self._inflight.append(_Chunk(payload, None if frame is not None else chats, frame, words, len(chats),
                                     checklist))
        if frame is not None:
            self._send(frame)
        while True:
            must_wait = len(self._inflight) > self.max_pending
            counted = self._take_oldest(block=must_wait)
            if counted is None:
                break
            done.append(counted)
        return done

    def drain(self) -> list[Counted]:
        """Wait for every chunk still in flight; return them oldest first."""
        done = []
        while self._inflight:
            done.append(self._take_oldest(block=True))
        return done

    def close(self) -> None:
        """Stop the worker (chunks still in flight are dropped: call drain() first)."""
        self._inflight.clear()
        if self._proc is not None:
            try:
                self._outbox.put(None, timeout=1)
            except Exception:  # noqa: BLE001
                pass
            self._stop_worker()

    def __enter__(self) -> "BackgroundChatCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: never leave a worker behind
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
