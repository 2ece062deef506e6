"""The dataset checklist: seven judgements on valid examples, each pass / warn / fail.

Why a builder: the check streams examples once, so the checklist judges them in a single
pass with memory that grows only by small numbers per example (~150 bytes: four 64-bit
hashes, a few 32-bit lengths, a flag byte, a 32-byte MinHash signature and 64 bytes of
text prefixes for evidence), never by whole texts. Everything that needs the whole
dataset (duplicates, near-duplicates, contradictions, outliers, balance) is computed from
those arrays in `finish()` with numpy. `add_many()` is the hot path (every example of
100k+ example files, a batch at a time): C-level str/bytes methods over the batch's texts
joined, cheap pre-filters (single-character `in`, bytes.translate to a class alphabet +
one substring search), checked on the whole batch first, before any regex.

Definitions (the thresholds are the module constants below):

* answer: the content of the final assistant message (accuracy is judged on it);
  prompt: everything before it. Duplicates, near-duplicates and templates use the
  non-system turns before the answer ("user text"), so a shared system prompt does not
  make every example look alike; contradictions also require the same system prompt.
  Empty prompts (completion data) are never duplicates or contradictions of each other.
* normalised text: ASCII-lowercased, ASCII punctuation deleted, whitespace turned into
  spaces and collapsed (texts over _COLLAPSE_MAX bytes: only stripped, for speed); digits
  kept, except for near-duplicates and templates, where they are dropped.
* exact duplicates: the whole example (roles, contents, extra message keys, tools) equal.
* near-duplicates: one-permutation MinHash (32 bins, rotation densification, 8-bit
  values) over word bigrams plus the first word of the normalised final user message
  (its first NEAR_DUP_MAX_WORDS words), computed vectorised with numpy per batch. LSH with 8 bands
  of 4 bins gives candidates; each example is compared with the earliest example of
  each bucket it falls in and counts as a near-duplicate when the share of equal bins
  (the Jaccard estimate) is >= NEAR_DUP_JACCARD. Word hashes are CRC-32, so the result
  does not depend on Python's hash seed.
* prompt template: the final user message up to its first colon or line break (when
  that comes within TEMPLATE_CHARS characters: "Translate into French:", "Question:"),
  otherwise the first TEMPLATE_WORDS words of those characters; normalised, digits dropped. The share of the
  most frequent template is reported; a dominant one only warns (single-task sets are
  legitimately uniform).
* contradictions: the same normalised prompt (system prompt included) with different
  normalised answers (or labels). For a classification-style dataset (answers from a
  small set of short labels, or a label column with short answers) that is label
  noise: fail. For open-ended generation two different answers to one prompt can both
  be good: warn.
* secrets: API keys (OpenAI/Anthropic sk-, AWS AKIA, GitHub, Hugging Face, Slack),
  private-key blocks, emails (example domains skipped), phone numbers in explicit
  formats, card numbers passing Luhn. Warn only, and evidence shows masked values.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from array import array
from collections import Counter
from itertools import chain, islice, repeat
from typing import Iterable, NamedTuple, Sequence

from .report import ChecklistItem, Example
from .textkeys import DIGITS as _DIGITS
from .textkeys import add_normalised_word_hashes, add_word_hashes
from .textkeys import NORMALISE as _NORMALISE
from .textkeys import PUNCTUATION as _PUNCTUATION
from .textkeys import PUNCTUATION_AND_DIGITS as _PUNCTUATION_AND_DIGITS
from .textkeys import WORD_HASH_CODE as _WORD_HASH_CODE
from .textkeys import digest as _digest
from .textkeys import digests as _digests
from .textkeys import text_of as _text_of

CHECKLIST_TITLES: dict[str, str] = {
    "accurate": "Accurate and high-quality",
    "consistent": "Consistent format",
    "diverse": "Diverse inputs",
    "balanced": "Balanced across categories",
    "no_contradictions": "No contradictory examples",
    "lengths": "Appropriate length outputs",
    "sensitive": "Secrets and personal data",
}
CHECKLIST_IDS = tuple(CHECKLIST_TITLES)

# --- thresholds -------------------------------------------------------------------
ACCURATE_FAIL_SHARE = 0.05  # flagged answers at or above this share: fail (any empty answer: fail too)
SHORT_MAX_CHARS = 3  # an answer this short (stripped) is "trivially short" ...
SHORT_MEDIAN_WORDS = 5  # ... when the median answer has at least this many words
TERMINAL_MAJORITY = 0.8  # "no terminal punctuation" counts as truncation when this share of answers has it
REPEAT_MIN_CHARS = 20  # a prompt contained in its answer counts as repeated only from this length
EXACT_DUP_FAIL_SHARE = 0.10  # exact duplicate examples: any -> warn, this share -> fail
NEAR_DUP_WARN_SHARE = 0.01  # duplicate + near-duplicate prompts: warn at this share ...
NEAR_DUP_FAIL_SHARE = 0.30  # ... fail at this one
NEAR_DUP_JACCARD = 0.8  # estimated Jaccard similarity of word-bigram sets for a near-duplicate
TEMPLATE_CHARS = 80  # a prompt's "template" is its text before a colon or line break within this many characters,
TEMPLATE_WORDS = 3  # ... else its first this many words (normalised, digits dropped)
TEMPLATE_WARN_SHARE = 0.5  # one template covering this share of prompts: warn (never fail: single-task sets are fine)
TEMPLATE_MIN_EXAMPLES = 20  # below this many examples the template share is not judged
IMBALANCE_WARN = 3.0  # max/min category count above this: warn
IMBALANCE_FAIL = 10.0  # ... above this: fail
LABEL_KEYS = ("category", "label", "class", "intent", "topic", "task", "type")
LABEL_MAX_DISTINCT = 100  # a column with more distinct values is not a category column
CLASS_MAX_DISTINCT = 20  # at most this many distinct short answers ...
CLASS_MIN_COVERAGE = 0.9  # ... covering at least this share of examples: a classification set
CLASS_MAX_WORDS = 5  # a "short answer" has at most this many words
BALANCE_MIN_EXAMPLES = 10  # fewer examples: the balance is reported, not judged
SYSTEM_MAX_GROUPS = 20  # balance by system prompt when there are 2..this many distinct ones
OUTLIER_IQR = 3.0  # long outlier: length > Q3 + OUTLIER_IQR * IQR ...
OUTLIER_MEDIAN = 4.0  # ... and > OUTLIER_MEDIAN * median
SHORT_OUTLIER_MEDIAN = 10.0  # short outlier: length <= median / this (only when median >= SHORT_OUTLIER_MIN)
SHORT_OUTLIER_MIN = 20
OUTLIER_WARN_SHARE = 0.01  # outliers at or above this share of examples: warn
HIST_BINS = 20

# --- evidence storage ----------------------------------------------------------------
_PROMPT_SAMPLE_BYTES = 40  # bytes of the user text kept per example for evidence
_ANSWER_SAMPLE_BYTES = 24  # bytes of the answer kept per example for evidence
_SAMPLES_WIDTH = _PROMPT_SAMPLE_BYTES + _ANSWER_SAMPLE_BYTES
_SAMPLE_MAX = 200

# --- MinHash ---------------------------------------------------------------------------
_BINS = 32  # bins (one-permutation hashing)
_BIN_BITS = 5
_BAND_ROWS = 4  # 4 x 8-bit values = one uint32 band key: 8 bands
_BATCH = 2048  # examples per MinHash batch: bounds the numpy temporaries (~6 MB)
_EMPTY_BIN = 0xFFFFFFFFFFFFFFFF  # an empty bin's minimum (a uint64 array's largest value)
# equal bins for a near-duplicate: the share of equal bins >= NEAR_DUP_JACCARD, counted in whole bins
_NEAR_DUP_MIN_EQUAL_BINS = next(k for k in range(_BINS + 1) if k / _BINS >= NEAR_DUP_JACCARD)


class _Numpy:
    """numpy, imported on first use: `np.x` imports it, and from then on `np` is numpy itself.

    Why: numpy is ~15 MB of a process's memory, and the streaming part of the checklist
    (`add_many`) does not need it; only the MinHash batches and the judging do. A big check
    counts tokens in a worker process whose start-up peaks (tiktoken's rank table loading),
    and the check's words go to that worker until it is ready (`check._Accumulator`), so
    numpy comes into this process after that peak rather than on top of it (bench_check,
    long chats: the two peaks together were over half the reference's memory).
    """

    def __getattr__(self, name: str):
        import numpy

        globals()["np"] = numpy
        return getattr(numpy, name)


np = _Numpy()

# --- text tables -----------------------------------------------------------------------
_crc32 = zlib.crc32
_TERMINAL = frozenset(".!?\"')]}`*>;。！？」』…»”’")
_OPEN_CLOSE = (("(", ")"), ("[", "]"), ("{", "}"))
_LIST_LINE = re.compile(r"\s*(?:[-*+•|]|\d+[.)])\s")

_PLACEHOLDER_RE = re.compile(
    r"lorem ipsum|\bTODO\b|\bTBD\b|\[\s*insert[^\]\n]{0,60}\]|<\s*placeholder\s*>|"
    r"\{\{\s*[\w.]+\s*\}\}|as an ai language model",
    re.IGNORECASE,
)
_MOJIBAKE_RE = re.compile(
    "Ã[\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
    "|Â[\u00a0-\u00bf]|â€|\ufffd"
)
_HTML_RE = re.compile(
    r"</?(?:div|span|p|br|hr|b|i|u|em|strong|a|img|table|tbody|thead|tr|td|th|ul|ol|li|"
    r"h[1-6]|font|center|section|article|header|footer|nav|script|style|body|html|head|"
    r"meta|link|iframe|sup|sub|small|blockquote)\b[^<>]{0,200}?/?>"
    r"|&(?:nbsp|amp|lt|gt|quot|apos|mdash|ndash|rsquo|lsquo|rdquo|ldquo|hellip|#\d{2,5}|#x[0-9a-f]{2,4});",
    re.IGNORECASE,
)
_CODE_RE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_HTML_TOPIC = ("html", "xml", "markup", "tag", "web page", "webpage", "css", "jsx", "svg")

# pre-filters for secrets: a run of 20 key characters; 10 digits once phone separators are deleted
_KEY_CLASS = bytes(97 if (i < 128 and chr(i).isalnum()) or i in b"_-" else 32 for i in range(256))
_KEY_RUN = b"a" * 20
_DIGIT_CLASS = bytes(48 if 48 <= i <= 57 else 120 for i in range(256))
_DIGIT_SEPS = b" .-()+"
_TEN_DIGITS = b"0" * 10
_TEMPLATE_TEXTS = 5000
_COLLAPSE_MAX = 200  # texts up to this many bytes get whitespace runs collapsed; longer ones only stripped
_EMPTY_PROMPT = 0x3E3D7F1A  # with the example's index: an empty prompt's key (ints hash alike in every process)
_EMPTY_TEMPLATE = zlib.crc32(b"") - 0x80000000
_KEY_RE = re.compile(
    r"(?<![\w-])(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}|hf_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,})(?![\w-])"
    r"|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|\Z)"
)
_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)
_EMAIL_SKIP_DOMAINS = ("example.com", "example.org", "example.net", "domain.com", "email.com", "test.com",
                       "company.com", "yourcompany.com", "users.noreply.github.com")
_EMAIL_SKIP_LOCAL = ("git", "noreply", "no-reply")
_DIGITS_RE = re.compile(r"(?<![\w.,/:+-])\+?\(?\d[\d ().-]{7,22}\d(?![\w/:-]|[.,]\d)")
_PHONE_RE = re.compile(
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)|\d{1,4})(?:[ .-]?\d{2,4}){2,4}"  # international, with the plus
    r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}"  # North American with separators
)
_CARD_RE = re.compile(r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}")


# =====================================================================================
class ChecklistBuilder:
    """Collects what the checklist needs from each example, then judges in `finish()`.

    `context_limit`: the target's per-example token limit; with `tokens` given to `add_many`,
    examples above it fail the lengths item. `max_evidence`: evidence entries per item.
    `tokens_later`: the token counts come after the last `add_many`, through `set_tokens` (a
    check counts them in another process while the examples stream through here).

    A big check splits the work: a chunk's examples may go into a `part` (made here or in the
    token worker, see `check.py`) that `merge` then takes in, in example order, with the same
    result as adding them here. So every key is a `textkeys.digests` value (the same in any
    process), and a part keeps no caps on its counters (`capped=False`): `merge` applies them,
    key by key in the order the part first saw them, as `add_many` would have.
    """

    def __init__(self, context_limit: int | None = None, max_evidence: int = 20, tokens_later: bool = False,
                 first: int = 0, capped: bool = True) -> None:
        self.context_limit = context_limit
        self._tokens_later = tokens_later
        self.max_evidence = max_evidence
        self.first = first  # the index of this builder's first example (a part's start)
        self.n = first
        unbounded = sys.maxsize
        # distinct keys kept per counter (beyond them, only keys already kept are counted)
        self._system_cap = 1000 if capped else unbounded
        self._system_sample_cap = 50 if capped else unbounded
        self._answer_cap = 200 if capped else unbounded
        self._label_cap = LABEL_MAX_DISTINCT + 1 if capped else unbounded
        self._template_cap = _TEMPLATE_TEXTS if capped else unbounded
        self.lines = array("i")
        self.flags = array("B")
        self.words = array("i")  # answer words
        self.tokens_per_example = array("i")  # total tokens or -1
        self.assistant_tokens_per_example = array("i")  # assistant tokens or -1
        self.template_hash = array("i")  # 32 bits are plenty to count templates
        self.example_hash = array("q")
        self.prompt_hash = array("q")  # normalised user text
        self.conversation_hash = array("q")  # normalised prompt incl. system
        self.answer_hash = array("q")  # normalised answer (+ label)
        self.has_system = array("B")
        self.prefixes = bytearray()
        self.n_terminal = 0
        self.n_nonempty = 0
        self.accurate_evidence: dict[int, list[dict]] = {}
        self.formats: dict[str, int] = {}
        self.format_lines: dict[str, list[int]] = {}
        self.keysets: dict[tuple, int] = {}
        self.keyset_lines: dict[tuple, list[int]] = {}
        # per source (`start_source`): each file is consistent on its own terms (its format, its keys)
        self.source_keysets: list[tuple[dict[tuple, int], dict[tuple, list[int]]]] = [(self.keysets, self.keyset_lines)]
        self.system_counts: Counter = Counter()
        self.system_sample: dict[int, str] = {}
        self._system_cache: dict[str, int] = {}
        self._system_digits: dict[int, int] = {}
        self.label_counts: dict[str, Counter] = {}
        self.answer_counts: Counter = Counter()
        self.template_text: dict[int, str] = {}  # the first _TEMPLATE_TEXTS distinct templates
        self.sensitive_counts: Counter = Counter()
        self.sensitive_examples = 0
        self.sensitive_evidence: list[dict] = []
        self._sensitive_lines: set[int] = set()  # lines already counted in sensitive_examples (flagged ones only)
        self._word_hashes = array(_WORD_HASH_CODE)  # of the examples since _words_start, not yet MinHashed
        self._word_counts: list[int] = []
        self._words_start = 0
        self._signature_parts: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first example, signatures, has words)
        self._tokens_set = False
        self._version = 0  # changes with every example or word hash taken in
        self._prepared: tuple[int, dict[str, ChecklistItem]] | None = None  # (version, items): see prepare()

    # ---------------------------------------------------------------------------------
    def add(self, example: Example, tokens: int | None = None, assistant_tokens: int | None = None,
            words: bool = True) -> None:
        """Take one valid canonical example (call in record order); see `add_many`."""
        self.add_many((example,), (tokens,), (assistant_tokens,), words)

    def add_many(self, examples: Sequence[Example], tokens: Sequence[int | None] | None = None,
                 assistant_tokens: Sequence[int | None] | None = None, words: bool = True,
                 formats: bool = True) -> None:
        """Take valid canonical examples, in record order (a check passes one chunk at a time).

        Why batches: this runs for every example of 100k+ example files, and what costs is
        the passes over the texts and the per-example Python around them. So only taking
        the chats apart is done example by example; the keys are made column by column,
        most with one C-level encode/translate/split over the batch's texts joined by NUL
        (a batch with a NUL inside a text goes text by text), and an accuracy or secrets
        test runs on an example only when its pre-filter matches somewhere in the batch.

        `tokens` / `assistant_tokens`: each example's counts (None: unknown), or None when
        they come later through `set_tokens`. `words=False`: the near-duplicate word hashes
        of these examples are computed elsewhere (`textkeys.chat_word_hashes`, in the token
        worker) and handed over with `add_words`. `formats=False`: their formats and keys are
        taken elsewhere (`add_formats`: a part leaves them to the builder it is merged into).
        """
        batch_size = len(examples)
        if not batch_size:
            return
        self._version += 1
        parts = _take_apart(examples)
        self.example_hash.extend(parts.example_hashes)
        prompt_keys, system_hashes = self._add_prompts(parts)
        answer_keys, answer_words = self._add_answers(examples, parts, assistant_tokens)
        near_duplicate_keys = [key.translate(None, _DIGITS) for key in prompt_keys]  # digits dropped
        self._add_near_dup_words(parts, near_duplicate_keys, words)
        self._add_templates(parts.finals)
        # each text's first bytes of UTF-8, NUL-padded to a fixed width: evidence samples sit in one bytearray
        # (written out, not a function: a call per text would cost as much as the work)
        self.prefixes += b"".join([
            prompt[:_PROMPT_SAMPLE_BYTES].encode("utf-8", "replace")[:_PROMPT_SAMPLE_BYTES].ljust(_PROMPT_SAMPLE_BYTES, b"\0")
            + answer[:_ANSWER_SAMPLE_BYTES].encode("utf-8", "replace")[:_ANSWER_SAMPLE_BYTES].ljust(_ANSWER_SAMPLE_BYTES, b"\0")
            for prompt, answer in zip(parts.user_texts, parts.answers)
        ])
        if formats:
            self.add_formats(examples)
        self._add_flags(examples, parts, prompt_keys, answer_keys)
        self.words.extend(answer_words)
        self.lines.extend([example.line for example in examples])
        if not self._tokens_later:
            self.tokens_per_example.extend(_known_or_minus_one(tokens, batch_size))
            self.assistant_tokens_per_example.extend(_known_or_minus_one(assistant_tokens, batch_size))
        self._add_secrets(examples, parts, prompt_keys, near_duplicate_keys, answer_keys, system_hashes)
        self.n += batch_size

    def _add_prompts(self, parts: "_Parts") -> tuple[list[bytes], list[int]]:
        """Prompt and conversation keys, system prompt counts; returns (normalised prompts,
        system prompt hashes)."""
        first_index = self.n
        # whitespace runs collapsed in short texts (cheap there)
        prompt_keys = [b" ".join(key.split()) if len(key) <= _COLLAPSE_MAX else key.strip()
                       for key in _keys(parts.user_texts, _PUNCTUATION)]
        prompt_hashes = _digests(prompt_keys)
        if b"" in prompt_keys:  # empty prompts (completion data) are all different from each other
            prompt_hashes = [digest if key else hash((_EMPTY_PROMPT, first_index + index))
                             for index, (key, digest) in enumerate(zip(prompt_keys, prompt_hashes))]
        self.prompt_hash.extend(prompt_hashes)
        system_counts = self.system_counts
        if not any(parts.systems):  # no system prompt in the batch (the usual case): counted at once
            batch_size = len(parts.systems)
            system_counts[0] += batch_size
            self.has_system.frombytes(bytes(batch_size))
            system_hashes = [0] * batch_size
            self.conversation_hash.extend([hash(conversation)
                                           for conversation in zip(system_hashes, prompt_hashes, parts.n_parts)])
            return prompt_keys, system_hashes
        system_hashes = []
        system_cache = self._system_cache
        has_system = self.has_system.append
        for system in parts.systems:
            if system:
                system_hash = system_cache.get(system)
                if system_hash is None:
                    system_hash = _digest(_normalised(system)) or 1
                    if len(system_cache) < 1000:
                        system_cache[system] = system_hash
                        self._system_digits[system_hash] = _count_digits(system)
                    if system_hash not in self.system_sample and len(self.system_sample) < self._system_sample_cap:
                        self.system_sample[system_hash] = system[:120]
                if system_hash in system_counts or len(system_counts) < self._system_cap:
                    system_counts[system_hash] += 1
                has_system(1)
            else:
                system_hash = 0
                system_counts[0] += 1
                has_system(0)
            system_hashes.append(system_hash)
        self.conversation_hash.extend([hash(conversation)
                                       for conversation in zip(system_hashes, prompt_hashes, parts.n_parts)])
        return prompt_keys, system_hashes

    def _add_answers(self, examples: Sequence[Example], parts: "_Parts",
                     assistant_tokens: Sequence[int | None] | None) -> tuple[list[bytes], list[int]]:
        """Answer keys (with the label, if any), labels, the small set of distinct short
        answers; returns (normalised answers, answer word counts)."""
        answer_keys = _keys(parts.answers, _PUNCTUATION, parts.joined_answers)
        word_counts: list[int] = []
        words_estimable = self._tokens_later or assistant_tokens is not None
        for index, key in enumerate(answer_keys):
            if len(key) <= _COLLAPSE_MAX:
                key = answer_keys[index] = b" ".join(key.split())
                word_counts.append(key.count(b" ") + 1 if key else 0)
            else:  # a long answer's words are estimated when its tokens tell its length anyway
                key = answer_keys[index] = key.strip()
                estimate = words_estimable and (self._tokens_later or assistant_tokens[index] is not None)
                word_counts.append(len(key) // 6 if estimate else len(key.split()))
        answer_hashes = _digests(answer_keys)
        for index, example in enumerate(examples):
            extra = example.extra
            if extra:
                for label_key in LABEL_KEYS:
                    value = extra.get(label_key)
                    if value is not None and not isinstance(value, (dict, list)):
                        label = str(value)
                        answer_hashes[index] = hash((answer_hashes[index], _digest(label.encode("utf-8", "replace"))))
                        counts = self.label_counts.get(label_key)
                        if counts is None:
                            counts = self.label_counts[label_key] = Counter()
                        if label in counts or len(counts) < self._label_cap:
                            counts[label] += 1
                        break
        self.answer_hash.extend(answer_hashes)
        answer_counts = self.answer_counts
        answer_cap = self._answer_cap
        for key, word_count in zip(answer_keys, word_counts):
            if word_count <= CLASS_MAX_WORDS and (key in answer_counts or len(answer_counts) < answer_cap):
                answer_counts[key] += 1
        return answer_keys, word_counts

    def _add_near_dup_words(self, parts: "_Parts", near_duplicate_keys: list[bytes], words: bool) -> None:
        """Word hashes of the final user message (textkeys.add_word_hashes), reusing the
        normalised prompt when it is that message; MinHashed a batch at a time."""
        if not words:
            if self._word_counts:
                self.flush_words()  # a batch holds consecutive examples
            return
        word_hashes, word_counts = self._word_hashes, self._word_counts
        for index, (near_duplicate_key, final, user) in enumerate(
                zip(near_duplicate_keys, parts.finals, parts.user_texts)):
            if not word_counts:
                self._words_start = self.n + index
            if final is user:  # the prompt is the final user message: its key is already made
                word_counts.append(add_normalised_word_hashes(near_duplicate_key, word_hashes))
            else:
                word_counts.append(add_word_hashes(final, word_hashes))
            if len(word_counts) >= _BATCH:
                self.flush_words()
                word_hashes, word_counts = self._word_hashes, self._word_counts

    def _add_templates(self, finals: list[str]) -> None:
        """The final user message up to its first colon / line break, else its first words."""
        heads = [final[:TEMPLATE_CHARS] for final in finals]
        joined: str | None = "\x00".join(heads)
        cut_at_separator: Iterable[bool] = repeat(False)  # no colon or line break in the batch: no head is cut
        if ":" in joined or "\n" in joined:
            cuts: list[bool] = []
            for index, head in enumerate(heads):
                cut = head.find(":")
                newline = head.find("\n")
                if newline > 0 and (cut < 0 or newline < cut):
                    cut = newline
                cuts.append(cut > 0)
                if cut > 0:
                    heads[index] = head[:cut]
            cut_at_separator, joined = cuts, None  # the heads changed: `_keys` joins them again
        template_keys = [b" ".join(head_text.split()) if separated
                         else b" ".join(head_text.split(None, TEMPLATE_WORDS)[:TEMPLATE_WORDS])  # stops after them
                         for head_text, separated in zip(_keys(heads, _PUNCTUATION_AND_DIGITS, joined),
                                                         cut_at_separator)]
        template_hashes = [_crc32(key) - 0x80000000 for key in template_keys]
        self.template_hash.extend(template_hashes)
        template_texts = self.template_text
        template_cap = self._template_cap
        if len(template_texts) < template_cap:
            for template_hash, key in zip(template_hashes, template_keys):
                if template_hash not in template_texts and len(template_texts) < template_cap:
                    template_texts[template_hash] = key.decode("utf-8", "replace")

    def start_source(self) -> None:
        """The examples added from now on come from another source (file) of the same dataset: formats and
        top-level keys are judged within each source (a CSV's columns are not a JSONL's keys), the rest across
        all of them."""
        self.keysets, self.keyset_lines = {}, {}
        self.source_keysets.append((self.keysets, self.keyset_lines))

    def add_formats(self, examples: Sequence[Example]) -> None:
        """Each example's format and top-level keys (in the current source), in record order."""
        format_counts = self.formats
        keyset_counts = self.keysets
        for example in examples:
            source_format = example.source_format
            count = format_counts[source_format] = format_counts.get(source_format, 0) + 1
            if count <= self.max_evidence:
                self.format_lines.setdefault(source_format, []).append(example.line)
            keys = example.keys
            if keys in keyset_counts or len(keyset_counts) < 100:
                count = keyset_counts[keys] = keyset_counts.get(keys, 0) + 1
                if count <= self.max_evidence:
                    self.keyset_lines.setdefault(keys, []).append(example.line)

    def _add_flags(self, examples: Sequence[Example], parts: "_Parts", prompt_keys: list[bytes],
                   answer_keys: list[bytes]) -> None:
        """Accuracy flags of each answer; each costlier test only when its pre-filter matches
        in the batch."""
        joined_answers = parts.joined_answers
        any_backtick = "`" in joined_answers
        open_brackets = tuple((opener, closer) for opener, closer in _OPEN_CLOSE if opener in joined_answers)
        joined_answer_keys = b"\x00".join(answer_keys)
        maybe_placeholder = (
            "{" in joined_answers or "[" in joined_answers or "<" in joined_answers
            or "TODO" in joined_answers or "TBD" in joined_answers
            or b"lorem" in joined_answer_keys or b"language model" in joined_answer_keys
        )
        maybe_mojibake = not joined_answers.isascii() and (
            "Ã" in joined_answers or "Â" in joined_answers or "â€" in joined_answers or "\ufffd" in joined_answers)
        maybe_html = "<" in joined_answers or "&" in joined_answers
        n_nonempty = n_terminal = 0
        append_flags = self.flags.append
        for index, answer in enumerate(parts.answers):
            stripped = answer.strip()
            n_chars = len(stripped)
            flags = 0
            if not stripped or (n_chars <= 20 and not any(ch.isalnum() for ch in stripped)):
                flags = _F_EMPTY
            else:
                n_nonempty += 1
                if n_chars <= SHORT_MAX_CHARS:
                    flags = _F_SHORT
                end = stripped[-1]
                if end in _TERMINAL:
                    n_terminal += 1
                elif not flags and not _LIST_LINE.match(stripped, stripped.rfind("\n") + 1):
                    flags |= _F_NOTERM
                if end == "…" or (end == "." and stripped.endswith("...")):
                    flags |= _F_TRUNC
                elif any_backtick and "`" in stripped and stripped.count("```") % 2:
                    flags |= _F_TRUNC
                elif open_brackets and end != "." and end != "!" and end != "?":  # a finished sentence is not cut
                    for opener, closer in open_brackets:
                        if opener in stripped and stripped.count(opener) > stripped.count(closer):
                            flags |= _F_TRUNC
                            break
                answer_key = answer_keys[index]
                if answer_key:
                    prompt_key = prompt_keys[index]
                    if answer_key == prompt_key or (len(prompt_key) >= REPEAT_MIN_CHARS
                                                    and prompt_key[:24] in answer_key and prompt_key in answer_key):
                        flags |= _F_REPEAT
                if maybe_placeholder and (
                    "{" in answer or "[" in answer or "<" in answer or b"lorem" in answer_key
                    or b"language model" in answer_key or "TODO" in answer or "TBD" in answer
                ) and _placeholder(answer):
                    flags |= _F_PLACEHOLDER
                if maybe_mojibake and not answer.isascii() and (  # mojibake is never ASCII
                        "Ã" in answer or "Â" in answer or "â€" in answer or "\ufffd" in answer) and (
                        _MOJIBAKE_RE.search(answer)):
                    flags |= _F_MOJIBAKE
                if maybe_html and ("<" in answer or "&" in answer) and _html_leftover(answer, parts.user_texts[index]):
                    flags |= _F_HTML
            if flags:
                self._keep_accurate_evidence(flags, examples[index].line, stripped, answer, parts.user_texts[index])
            append_flags(flags)
        self.n_nonempty += n_nonempty
        self.n_terminal += n_terminal

    def _add_secrets(self, examples: Sequence[Example], parts: "_Parts", prompt_keys: list[bytes],
                     near_duplicate_keys: list[bytes], answer_keys: list[bytes], system_hashes: list[int]) -> None:
        """Secrets and personal data: byte-class maps turn the pre-filters into substring
        searches, made on the whole batch first."""
        joined_texts = "\x00".join(chain.from_iterable(parts.texts))
        maybe_key = (("-" in joined_texts or "_" in joined_texts) and (
            _KEY_RUN in joined_texts.encode("utf-8", "replace").translate(_KEY_CLASS)
            or "PRIVATE KEY" in joined_texts or "xox" in joined_texts)) or (  # a Slack token can be shorter
            "K" in joined_texts and "AKIA" in joined_texts)  # a one-character search is many times faster
        maybe_email = "@" in joined_texts
        system_digits = self._system_digits
        for index, contents in enumerate(parts.texts):
            # digits of the whole example, from the keys already made: 10 are needed for a phone or card
            n_digits = len(prompt_keys[index]) - len(near_duplicate_keys[index])
            if parts.systems[index]:
                digits = system_digits.get(system_hashes[index])
                n_digits += _count_digits(parts.systems[index]) if digits is None else digits
            answer_key = answer_keys[index]
            maybe_digits = n_digits + len(answer_key) - len(answer_key.translate(None, _DIGITS)) >= 10
            if not (maybe_key or maybe_email or maybe_digits):
                continue
            full = "\n".join(contents)
            found = _scan_sensitive(
                full,
                # every key pattern has '-' or '_' (or is AWS's AKIA...)
                keys=maybe_key and ((("-" in full or "_" in full) and (
                    _KEY_RUN in full.encode("utf-8", "replace").translate(_KEY_CLASS) or "PRIVATE KEY" in full
                    or "xox" in full)) or ("K" in full and "AKIA" in full)),
                emails=maybe_email and "@" in full,
                digits=maybe_digits and (  # phone, card
                    _TEN_DIGITS in full.encode("utf-8", "replace").translate(_DIGIT_CLASS, _DIGIT_SEPS)))
            if found:
                self.sensitive_examples += 1
                self._sensitive_lines.add(examples[index].line)
                self._keep_sensitive(examples[index].line, full, found)

    def scan_sensitive(self, line: int, text: str, side: str) -> None:
        """Scan one more text of the example at `line` for secrets and personal data, e.g. a preference
        pair's rejected answer: it is uploaded and trained on too, but `add_many` sees only one conversation.

        Adds to the same counts and evidence (the note names `side`); the example is counted once in
        `sensitive_examples` however many of its texts hold something."""
        found = _scan_sensitive(text, keys="-" in text or "_" in text or "AKIA" in text,  # every key pattern has one
                                emails="@" in text, digits=_count_digits(text) >= 10)  # a phone or card has 10
        if not found:
            return
        if line not in self._sensitive_lines:
            self._sensitive_lines.add(line)
            self.sensitive_examples += 1
        self._keep_sensitive(line, text, found, side)
        self._version += 1

    def _keep_sensitive(self, line: int, text: str, found: list, side: str | None = None) -> None:
        """What was found in one text: its kinds counted, and (up to max_evidence) a masked sample whose note
        names the kinds, and the side of a pair it was in (`side`)."""
        for kind, _start, _end in found:
            self.sensitive_counts[kind] += 1
        if len(self.sensitive_evidence) < self.max_evidence:
            kinds = ", ".join(sorted({kind for kind, _, _ in found}))
            self.sensitive_evidence.append({"line": line, "sample": _masked_sample(text, found),
                                            "note": f"likely {kinds}" + (f" ({side})" if side else "")})

    # ---------------------------------------------------------------------------------
    def _keep_accurate_evidence(self, flags: int, line: int, stripped: str, answer: str, user: str) -> None:
        for bit, _name, note in _FLAG_INFO:
            if flags & bit:
                kept = self.accurate_evidence.setdefault(bit, [])
                if len(kept) < self.max_evidence:
                    if bit in (_F_NOTERM, _F_TRUNC):
                        sample = "…" + stripped[-150:] if len(stripped) > 150 else stripped
                    elif bit == _F_MOJIBAKE:
                        match = _MOJIBAKE_RE.search(answer)
                        sample = _window(answer, match.start() if match else 0)
                    elif bit == _F_HTML:
                        match = _HTML_RE.search(answer)
                        sample = _window(answer, match.start() if match else 0)
                    elif bit == _F_PLACEHOLDER:
                        match = _PLACEHOLDER_RE.search(answer)
                        sample = _window(answer, match.start() if match else 0)
                    elif bit == _F_REPEAT:
                        sample = "prompt: " + _clip(user, 90) + " | answer: " + _clip(answer, 90)
                    else:
                        sample = repr(answer[:80])
                    kept.append({"line": line, "sample": _clip(sample, _SAMPLE_MAX), "note": note})

    def part(self, first: int) -> "ChecklistBuilder":
        """An empty builder for the examples from index `first` on, to be `merge`d back (see the class doc)."""
        return ChecklistBuilder(self.context_limit, self.max_evidence, self._tokens_later, first=first, capped=False)

    def merge(self, part: "ChecklistBuilder") -> None:
        """Take in a `part` whose examples follow this builder's last one, as if they had been added here.

        The part's formats are not taken: its examples' formats are added here (`add_formats`), in record
        order, so that they always land in the source they came from."""
        if part.first != self.n:
            raise ValueError(f"a part from example {part.first} cannot follow example {self.n - 1}")
        self.flush_words()  # the word hashes waiting here belong to earlier examples
        part.flush_words()
        for name in ("lines", "flags", "words", "tokens_per_example", "assistant_tokens_per_example",
                     "template_hash", "example_hash", "prompt_hash", "conversation_hash", "answer_hash",
                     "has_system", "prefixes"):
            getattr(self, name).extend(getattr(part, name))
        self.n = part.n
        self.n_terminal += part.n_terminal
        self.n_nonempty += part.n_nonempty
        max_evidence = self.max_evidence
        for bit, entries in part.accurate_evidence.items():
            kept = self.accurate_evidence.setdefault(bit, [])
            kept.extend(entries[:max_evidence - len(kept)])
        _merge_capped(self.system_counts, part.system_counts, self._system_cap)
        _merge_first(self.system_sample, part.system_sample, self._system_sample_cap)
        _merge_first(self._system_digits, part._system_digits, 1000)  # a cache of the secrets scan's pre-filter
        for label_key, counts in part.label_counts.items():
            _merge_capped(self.label_counts.setdefault(label_key, Counter()), counts, self._label_cap)
        _merge_capped(self.answer_counts, part.answer_counts, self._answer_cap)
        _merge_first(self.template_text, part.template_text, self._template_cap)
        self.sensitive_counts.update(part.sensitive_counts)
        self.sensitive_examples += part.sensitive_examples
        self.sensitive_evidence.extend(part.sensitive_evidence[:max_evidence - len(self.sensitive_evidence)])
        self._sensitive_lines.update(part._sensitive_lines)
        self._signature_parts.extend(part._signature_parts)
        self._version += 1

    def flush_words(self) -> None:
        """MinHash the word hashes still waiting (they wait to be MinHashed a batch at a time)."""
        if self._word_counts:
            self.add_words(self._words_start, self._word_hashes, self._word_counts)
            self._word_hashes, self._word_counts = array(_WORD_HASH_CODE), []

    def add_words(self, start: int, word_hashes: array, counts: Sequence[int]) -> None:
        """Near-duplicate word hashes of examples start, start+1, ... computed elsewhere
        (see `add_many(words=False)`): `counts[i]` hashes of `word_hashes` belong to example start+i."""
        signatures, has_words = _minhash_batch(word_hashes, list(counts))
        self._signature_parts.append((start, signatures, has_words))
        self._version += 1

    def set_tokens(self, tokens: Sequence[int], assistant_tokens: Sequence[int]) -> None:
        """Token counts of every example added, in order, when they were counted elsewhere
        while the examples streamed by (build with `tokens_later=True`)."""
        if len(tokens) != self.n or len(assistant_tokens) != self.n:
            raise ValueError(f"expected {self.n} token counts, got {len(tokens)} and {len(assistant_tokens)}")
        self.tokens_per_example = array("i", tokens)
        self.assistant_tokens_per_example = array("i", assistant_tokens)
        self._tokens_set = True

    # ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Judge every item but the lengths (the one that needs token counts).

        Why: a check calls this while its last token counts are still being counted in the
        other process; `finish` then reuses these items unless examples or word hashes came
        in since.
        """
        self.flush_words()
        if self._prepared is not None and self._prepared[0] == self._version:
            return
        n = self.n
        balance = self._balance()
        kind = balance.details.get("kind")
        words = _as_numpy(self.words)
        short_answers = bool(n) and float(np.median(words)) <= CLASS_MAX_WORDS
        classification = kind == "answers" or (kind == "label" and short_answers)
        items = {
            "accurate": self._accurate(),
            "consistent": self._consistent(),
            "diverse": self._diverse(),
            "balanced": balance,
            "no_contradictions": self._contradictions(classification),
            "sensitive": self._sensitive(),
        }
        self._prepared = (self._version, items)

    def finish(self) -> list[ChecklistItem]:
        """Judge everything collected; the items come in CHECKLIST_IDS order."""
        if self._tokens_later and not self._tokens_set:
            raise RuntimeError("tokens_later=True, but set_tokens was never called")
        self.prepare()
        judged = dict(self._prepared[1], lengths=self._lengths())
        items = [judged[id_] for id_ in CHECKLIST_IDS]
        if self.n == 0:
            for it in items:
                it.status, it.summary, it.evidence = "not_checked", "No valid examples to check.", []
        return items

    # --- 1 accurate -------------------------------------------------------------------
    def _accurate(self) -> ChecklistItem:
        n = self.n
        f = _as_numpy(self.flags)
        words = _as_numpy(self.words)
        nonempty = (f & _F_EMPTY) == 0
        median_words = float(np.median(words[nonempty])) if nonempty.any() else 0.0
        active = _F_EMPTY | _F_REPEAT | _F_TRUNC | _F_PLACEHOLDER | _F_MOJIBAKE | _F_HTML
        terminal_share = self.n_terminal / self.n_nonempty if self.n_nonempty else 0.0
        if median_words >= SHORT_MEDIAN_WORDS:
            active |= _F_SHORT
        if terminal_share >= TERMINAL_MAJORITY:
            active |= _F_NOTERM
        counts = {name: int(np.count_nonzero(f & bit)) for bit, name, _ in _FLAG_INFO}
        flagged = int(np.count_nonzero(f & active))
        evidence: list[dict] = []
        for bit, _name, _note in _FLAG_INFO:
            if active & bit:
                evidence.extend(self.accurate_evidence.get(bit, []))
        evidence = _merge_by_line(evidence)[: self.max_evidence]
        reported = {name: counts[name] for bit, name, _ in _FLAG_INFO if active & bit and counts[name]}
        share = flagged / n if n else 0.0
        if flagged == 0:
            status = "pass"
            summary = f"All {_number(n)} answers look complete and clean."
        else:
            status = "fail" if counts["empty"] or share >= ACCURATE_FAIL_SHARE else "warn"
            parts = ", ".join(f"{_number(v)} {_FLAG_LABEL[k]}" for k, v in reported.items())
            summary = f"{_number(flagged)} of {_number(n)} answers ({_percent(flagged, n)}) have problems: {parts}."
        details = {
            "n_flagged": flagged,
            "counts": {k: v for k, v in counts.items() if active & _FLAG_BITS[k]},
            "terminal_punctuation_share": round(terminal_share, 4),
            "median_answer_words": median_words,
        }
        return _item("accurate", status, summary, evidence, details)

    # --- 2 consistent -----------------------------------------------------------------
    def _consistent(self) -> ChecklistItem:
        n = self.n
        status = "pass"
        notes: list[str] = []
        evidence: list[dict] = []
        formats = Counter(self.formats)
        main_fmt = formats.most_common(1)[0][0] if formats else None
        several_sources = len(self.source_keysets) > 1
        if len(self.formats) > 1 and not several_sources:  # several sources: one format each, held by mixed_formats
            status = "fail"
            others = [f for f in self.formats if f != main_fmt]
            notes.append(
                f"{len(self.formats)} formats mixed ({', '.join(f'{_number(c)} {f}' for f, c in formats.most_common())})"
            )
            for f in others:
                for ln in self.format_lines[f]:
                    evidence.append({"line": ln, "sample": f"format {f}", "note": f"not {main_fmt} like most records"})
        main_keys, n_diff_keys = (), 0
        for keysets, keyset_lines in self.source_keysets:  # one source unless the dataset combines several
            if not keysets:
                continue
            source_main = Counter(keysets).most_common(1)[0][0]
            main_keys = main_keys or source_main
            n_diff_keys += sum(keysets.values()) - keysets[source_main]
            for ks, lns in keyset_lines.items():
                if ks != source_main:
                    for ln in lns:
                        evidence.append({"line": ln, "sample": f"keys {list(ks)}",
                                         "note": f"most records {'of its file ' if several_sources else ''}have "
                                                 f"{list(source_main)}"})
        if n_diff_keys:
            status = _worst(status, "warn")
            notes.append(
                f"{_number(n_diff_keys)} of {_number(n)} records ({_percent(n_diff_keys, n)}) have other top-level keys than "
                + (f"{list(main_keys)}" if not several_sources else "most of their file")
            )
        hs = _as_numpy(self.has_system)
        n_sys = int(hs.sum())
        distinct_sys = len([h for h in self.system_counts if h != 0])
        if 0 < n_sys < n:
            status = _worst(status, "warn")
            missing = n - n_sys
            minority = 0 if missing <= n_sys else 1  # show the lines of the smaller group
            idx = np.flatnonzero(hs == minority)[: self.max_evidence]
            lines = _as_numpy(self.lines)
            word = "without" if minority == 0 else "with"
            notes.append(f"{_number(missing)} of {_number(n)} examples ({_percent(missing, n)}) have no system prompt "
                         "while the rest do")
            for i in idx:
                evidence.append({"line": int(lines[i]), "sample": self._prompt_sample(int(i)),
                                 "note": f"{word} a system prompt"})
        details = {
            "formats": dict(self.formats),
            "n_other_keys": n_diff_keys,
            "main_keys": list(main_keys),
            "n_with_system": n_sys,
            "n_distinct_system_prompts": distinct_sys,
        }
        if status == "pass":
            sysword = (
                "no system prompt" if distinct_sys == 0 else
                "one system prompt" if distinct_sys == 1 else f"{_number(distinct_sys)} distinct system prompts"
            )
            formats_said = main_fmt or "empty"
            if several_sources and len(self.formats) > 1:
                formats_said = ", ".join(f"{_number(c)} {f}" for f, c in formats.most_common()) + " (one format per file)"
            keys_said = "the same keys" + (" within each file" if several_sources else "")
            summary = f"All {_number(n)} records are {formats_said} with {keys_said} and {sysword}."
        else:
            summary = "; ".join(notes) + "."
        evidence.sort(key=lambda e: e["line"])
        return _item("consistent", status, summary, evidence[: self.max_evidence], details)

    # --- 3 diverse ---------------------------------------------------------------------
    def _diverse(self) -> ChecklistItem:
        n = self.n
        lines = _as_numpy(self.lines)
        example_first = _first_of(_as_numpy(self.example_hash)) if n else np.zeros(0, np.int64)
        prompt_first = _first_of(_as_numpy(self.prompt_hash)) if n else np.zeros(0, np.int64)
        idx = np.arange(n)
        exact = example_first != idx
        dup_prompt = (prompt_first != idx) & ~exact
        near_rep, near_sim = self._near_duplicates(prompt_first)
        near = (near_rep >= 0) & ~exact & ~dup_prompt
        n_exact = int(exact.sum())
        n_dup = int(dup_prompt.sum())
        n_near = int(near.sum())
        top_share, top_text, top_count = 0.0, "", 0
        if n:
            vals, cnts = np.unique(_as_numpy(self.template_hash), return_counts=True)
            cnts[vals == _EMPTY_TEMPLATE] = 0  # prompts without user text have no template
            k = int(np.argmax(cnts))
            top_count = int(cnts[k])
            top_share = top_count / n
            top_text = self.template_text.get(int(vals[k]), "")
        evidence: list[dict] = []
        for i in np.flatnonzero(exact)[: self.max_evidence]:
            evidence.append({"line": int(lines[i]), "sample": self._prompt_sample(int(i)),
                             "note": f"exact duplicate of line {int(lines[example_first[i]])}"})
        for i in np.flatnonzero(dup_prompt)[: self.max_evidence]:
            evidence.append({"line": int(lines[i]), "sample": self._prompt_sample(int(i)),
                             "note": f"same prompt as line {int(lines[prompt_first[i]])}"})
        for i in np.flatnonzero(near)[: self.max_evidence]:
            evidence.append({"line": int(lines[i]), "sample": self._prompt_sample(int(i)),
                             "note": f"near-duplicate of line {int(lines[near_rep[i]])} "
                                     f"(similarity ~{near_sim[i]:.2f})"})
        evidence.sort(key=lambda e: e["line"])
        evidence = _dedupe_evidence(evidence)[: self.max_evidence]
        repeated = n_dup + n_near
        status = "pass"
        if n_exact:
            status = "fail" if n_exact / n >= EXACT_DUP_FAIL_SHARE else "warn"
        if n and repeated / n >= NEAR_DUP_FAIL_SHARE:
            status = "fail"
        elif n and repeated / n >= NEAR_DUP_WARN_SHARE:
            status = _worst(status, "warn")
        template_flag = n >= TEMPLATE_MIN_EXAMPLES and top_share >= TEMPLATE_WARN_SHARE and top_count > 1
        if template_flag:
            status = _worst(status, "warn")
        parts = []
        if n_exact:
            parts.append(f"{_counted_noun(n_exact, 'exact duplicate example')} ({_percent(n_exact, n)})")
        if n_dup:
            parts.append(f"{_counted_noun(n_dup, 'repeated prompt')} ({_percent(n_dup, n)})")
        if n_near:
            parts.append(f"{_counted_noun(n_near, 'near-duplicate prompt')} ({_percent(n_near, n)})")
        tmpl = f"the most common prompt start \"{top_text}\" covers {_percent(top_count, n)}" if top_count > 1 else (
            "no two prompts start alike")
        if parts:
            summary = f"Of {_number(n)} examples: " + ", ".join(parts) + f"; {tmpl}."
        else:
            summary = f"No duplicate or near-duplicate prompts in {_number(n)} examples; {tmpl}."
        details = {
            "n_exact_duplicates": n_exact,
            "n_duplicate_prompts": n_dup,
            "n_near_duplicates": n_near,
            "top_template_share": round(top_share, 4),
            "top_template": top_text,
            "near_duplicate_method": f"MinHash (one-permutation, {_BINS} bins) on word bigrams, LSH "
                                     f"{_BINS // _BAND_ROWS}x{_BAND_ROWS}, Jaccard >= {NEAR_DUP_JACCARD}",
            "template_method": f"last user message up to its first colon or line break within {TEMPLATE_CHARS} "
                               f"characters, else the first {TEMPLATE_WORDS} words of those characters; normalised, digits dropped",
        }
        return _item("diverse", status, summary, evidence, details)

    def _near_duplicates(self, prompt_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each example, the earliest earlier example it near-duplicates (-1: none)."""
        n = self.n
        rep = np.full(n, -1, dtype=np.int64)
        sim = np.zeros(n, dtype=np.float64)
        if n < 2 or not self._signature_parts:
            return rep, sim
        parts = sorted(self._signature_parts, key=lambda part: part[0])
        if sum(len(part[1]) for part in parts) != n:
            raise RuntimeError("near-duplicate words are missing for some examples (add_words not called?)")
        if len(parts) > 1:  # one array from now on: the parts are not kept beside it
            parts = self._signature_parts = [(0, np.concatenate([part[1] for part in parts]),
                                        np.concatenate([part[2] for part in parts]))]
        _, signatures, has_words = parts[0]  # (n, K) uint8, (n,) bool
        valid = np.flatnonzero(has_words)
        if len(valid) < 2:
            return rep, sim
        # one representative per distinct normalised prompt: exact repeats are counted apart
        unique = valid[prompt_first[valid] == valid]
        unique_signatures = signatures if len(unique) == n else np.take(signatures, unique, axis=0)
        bands = unique_signatures.view(np.uint32)  # (n_unique, bins / 4): 4 bins of 8 bits make one band key
        n_unique = len(unique)
        best = np.full(n_unique, n_unique, dtype=np.int64)  # earliest verified partner in unique (n_unique: none)
        for band in range(bands.shape[1]):
            order, sorted_keys = _stable_order(bands[:, band])
            start = np.ones(n_unique, dtype=bool)
            start[1:] = sorted_keys[1:] != sorted_keys[:-1]
            if start.all():
                continue
            group_first = order[np.maximum.accumulate(np.where(start, np.arange(n_unique), 0))]
            in_group = ~start
            candidates, partners = order[in_group], group_first[in_group]
            del order, sorted_keys, start, group_first, in_group
            for offset in range(0, len(candidates), 1 << 16):  # verify this band's candidates, in chunks
                some_candidates = candidates[offset:offset + (1 << 16)]
                some_partners = partners[offset:offset + (1 << 16)]
                # np.take, not fancy indexing: gathering rows this way is many times faster
                equal_bins = (np.take(unique_signatures, some_candidates, axis=0)
                              == np.take(unique_signatures, some_partners, axis=0))
                good = np.count_nonzero(equal_bins, axis=1) >= _NEAR_DUP_MIN_EQUAL_BINS
                np.minimum.at(best, some_candidates[good], some_partners[good])
        hit = np.flatnonzero(best < n_unique)
        if len(hit):
            rep[unique[hit]] = unique[best[hit]]
            sim[unique[hit]] = (unique_signatures[hit] == unique_signatures[best[hit]]).mean(axis=1)
        return rep, sim

    # --- 4 balanced ---------------------------------------------------------------------
    def _balance(self) -> ChecklistItem:
        n = self.n
        source, kind, counts = None, None, None
        label_key = None
        if self.label_counts:
            label_key, cnt = max(self.label_counts.items(), key=lambda kv: sum(kv[1].values()))
            covered = sum(cnt.values())
            if 1 <= len(cnt) <= LABEL_MAX_DISTINCT and covered >= 0.5 * n and (len(cnt) < covered or covered < 2):
                missing = n - covered
                counts = dict(cnt)
                if missing:
                    counts["(missing)"] = missing
                source, kind = f"label column '{label_key}'", "label"
        if counts is None and self.answer_counts and n >= 10:
            top = self.answer_counts.most_common(CLASS_MAX_DISTINCT + 1)
            covered = sum(c for _, c in top[:CLASS_MAX_DISTINCT])
            if (2 <= len(top) <= CLASS_MAX_DISTINCT and covered >= CLASS_MIN_COVERAGE * n
                    and covered > len(top)):
                counts = {k.decode("utf-8", "replace") or "(empty)": c for k, c in top}
                other = n - covered
                if other:
                    counts["(other answers)"] = other
                source, kind = "assistant answers (classification)", "answers"
        if counts is None:
            real = [h for h, c in self.system_counts.items() if h != 0 and c]
            if 2 <= len(real) <= SYSTEM_MAX_GROUPS and len(real) < n:
                counts = {}
                for h, c in self.system_counts.most_common():
                    sample = self.system_sample.get(h, f"system prompt {h & 0xffff:04x}")
                    name = "(no system prompt)" if h == 0 else _clip(sample, 60)
                    while name in counts:
                        name += " "
                    counts[name] = c
                source, kind = "system prompt", "system"
        if counts is not None and n < BALANCE_MIN_EXAMPLES:
            return _item("balanced", "not_checked",
                         f"Only {_number(n)} examples: too few to judge the balance by {source}.",
                         [], {"source": source, "kind": kind, "counts": counts, "imbalance_ratio": None})
        if counts is None:
            return _item("balanced", "not_checked",
                         f"No category column or label-like answers found in {_number(n)} examples: not applicable.",
                         [], {"source": None, "kind": None, "counts": {}, "imbalance_ratio": None})
        counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        real = {k: v for k, v in counts.items() if k not in ("(missing)", "(other answers)", "(no system prompt)")}
        vals = list(real.values()) or [0]
        ratio = max(vals) / min(vals) if min(vals) else float("inf")
        status = "fail" if ratio > IMBALANCE_FAIL else "warn" if ratio > IMBALANCE_WARN else "pass"
        names = list(real)
        if len(real) == 1:
            status = "warn" if kind == "label" else "pass"
            summary = f"All {_number(n)} examples have the same {source}: '{_clip(names[0], 40)}'."
        else:
            summary = (
                f"{len(real)} categories by {source}: largest '{_clip(names[0], 30)}' {_number(vals[0])}, "
                f"smallest '{_clip(names[-1], 30)}' {_number(vals[-1])} (ratio {ratio:.1f})."
            )
        evidence = [{"line": 0, "sample": f"{_clip(k, 80)}: {_number(v)}", "note": _percent(v, n)} for k, v in counts.items()]
        details = {"source": source, "kind": kind, "counts": counts,
                   "imbalance_ratio": round(ratio, 3) if ratio != float("inf") else None}
        return _item("balanced", status, summary, evidence[: self.max_evidence], details)

    # --- 5 contradictions -----------------------------------------------------------------
    def _contradictions(self, classification: bool) -> ChecklistItem:
        n = self.n
        if n < 2:
            return _item("no_contradictions", "not_checked", f"Only {_number(n)} example: no prompt can appear twice.", [],
                         {"n_prompts_with_conflicts": 0, "n_examples_in_conflict": 0, "classification": classification})
        conv = _as_numpy(self.conversation_hash)
        ans = _as_numpy(self.answer_hash)
        lines = _as_numpy(self.lines)
        rep = _first_of(conv)
        bad = (rep != np.arange(n)) & (ans != ans[rep])
        idx = np.flatnonzero(bad)
        n_groups = len(np.unique(rep[idx]))
        involved = len(np.unique(np.concatenate([idx, rep[idx]]))) if len(idx) else 0
        evidence = []
        for i in idx[: self.max_evidence]:
            r = int(rep[i])
            sample = (f"prompt: {_clip(self._prompt_sample(int(i)), 80)} | answers: "
                      f"'{_clip(self._answer_sample(r), 50)}' (line {int(lines[r])}) "
                      f"vs '{_clip(self._answer_sample(int(i)), 50)}'")
            evidence.append({"line": int(lines[i]), "sample": _clip(sample, _SAMPLE_MAX),
                             "note": f"same prompt as line {int(lines[r])}, different answer"})
        if not len(idx):
            status = "pass"
            summary = f"No prompt has conflicting answers in {_number(n)} examples."
        else:
            status = "fail" if classification else "warn"
            what = "labels" if classification else "answers"
            summary = (f"{_counted_noun(n_groups, 'prompt')} {'has' if n_groups == 1 else 'have'} different {what} across "
                       f"{_number(involved)} examples "
                       f"({_percent(involved, n)})" + (": label noise." if classification else
                                                   ": different answers to one prompt (fine only if all are good)."))
        details = {"n_prompts_with_conflicts": n_groups, "n_examples_in_conflict": involved,
                   "classification": classification}
        return _item("no_contradictions", status, summary, evidence, details)

    # --- 6 lengths ------------------------------------------------------------------------
    def _lengths(self) -> ChecklistItem:
        n = self.n
        if n == 0:
            return _item("lengths", "not_checked", "No answers.", [],
                         {"unit": "words", "histogram": {"counts": [], "edges": []}})
        assistant_tokens = _as_numpy(self.assistant_tokens_per_example)
        if (assistant_tokens >= 0).all():
            vals, unit = assistant_tokens, "tokens"
        else:
            vals, unit = _as_numpy(self.words), "words"
        lines = _as_numpy(self.lines)
        q1, med, q3, p99 = (float(x) for x in np.percentile(vals, [25, 50, 75, 99]))
        iqr = q3 - q1
        long_lim = max(q3 + OUTLIER_IQR * iqr, OUTLIER_MEDIAN * med, 1.0)
        long_o = np.flatnonzero(vals > long_lim)
        short_o = np.zeros(0, np.int64)
        if med >= SHORT_OUTLIER_MIN:
            short_o = np.flatnonzero(vals <= med / SHORT_OUTLIER_MEDIAN)
        over = np.zeros(0, np.int64)
        tokens = _as_numpy(self.tokens_per_example)
        if self.context_limit:
            over = np.flatnonzero(tokens > self.context_limit)
        evidence = []
        for i in over[: self.max_evidence]:
            evidence.append({"line": int(lines[i]), "sample": self._answer_sample(int(i)),
                             "note": f"{_number(int(tokens[i]))} tokens > context {_number(self.context_limit)}: "
                                     "will be truncated"})
        for i in long_o[np.argsort(-vals[long_o], kind="stable")][: self.max_evidence]:
            evidence.append({"line": int(lines[i]), "sample": self._answer_sample(int(i)),
                             "note": f"very long answer: {_number(int(vals[i]))} {unit} (median {med:g})"})
        for i in short_o[: self.max_evidence]:
            evidence.append({"line": int(lines[i]), "sample": self._answer_sample(int(i)),
                             "note": f"very short answer: {_number(int(vals[i]))} {unit} (median {med:g})"})
        evidence = _dedupe_evidence(evidence)[: self.max_evidence]
        n_out = len(np.union1d(long_o, short_o))
        if len(over):
            status = "fail"
        elif n_out and n_out / n >= OUTLIER_WARN_SHARE:
            status = "warn"
        else:
            status = "pass"
        summary = (f"Answers: median {med:,.0f} {unit}, 99th percentile {p99:,.0f}, max {int(vals.max()):,}; "
                   f"{_number(n_out)} outliers ({_percent(n_out, n)})")
        if self.context_limit:
            summary += f"; {_number(len(over))} examples over the {_number(self.context_limit)}-token context"
        summary += "."
        vmin, vmax = float(vals.min()), float(vals.max())
        if vmax <= vmin:
            edges = np.array([vmin, vmin + 1.0])
        elif vmin < p99 < vmax:  # equal bins up to the 99th percentile, then one bin for the tail
            edges = np.append(np.linspace(vmin, p99, HIST_BINS), vmax)
        else:
            edges = np.linspace(vmin, vmax, HIST_BINS + 1)
        counts, edges = np.histogram(vals, bins=edges)
        details = {
            "unit": unit,
            "min": int(vals.min()), "median": med, "mean": round(float(vals.mean()), 2), "p99": p99,
            "max": int(vals.max()), "q1": q1, "q3": q3,
            "long_threshold": long_lim,
            "n_long_outliers": int(len(long_o)), "n_short_outliers": int(len(short_o)),
            "n_over_context": int(len(over)), "context_limit": self.context_limit,
            "histogram": {"counts": [int(c) for c in counts], "edges": [round(float(e), 3) for e in edges]},
        }
        return _item("lengths", status, summary, evidence, details)

    # --- 7 sensitive --------------------------------------------------------------------------
    def _sensitive(self) -> ChecklistItem:
        n = self.n
        c = self.sensitive_counts
        if not self.sensitive_examples:
            return _item("sensitive", "pass", f"No likely secrets or personal data found in {_number(n)} examples.", [],
                         {"counts": {}, "n_examples": 0})
        parts = ", ".join(_counted_noun(v, _KIND_LABEL[k]) for k, v in c.most_common())
        summary = (f"{parts} in {_number(self.sensitive_examples)} of {_number(n)} examples "
                   f"({_percent(self.sensitive_examples, n)}): remove or mask before training.")
        return _item("sensitive", "warn", summary, list(self.sensitive_evidence),
                     {"counts": dict(c), "n_examples": self.sensitive_examples})

    # --- evidence text ------------------------------------------------------------------------
    def _prompt_sample(self, i: int) -> str:
        return _unfixed(self.prefixes[i * _SAMPLES_WIDTH: i * _SAMPLES_WIDTH + _PROMPT_SAMPLE_BYTES])

    def _answer_sample(self, i: int) -> str:
        return _unfixed(self.prefixes[i * _SAMPLES_WIDTH + _PROMPT_SAMPLE_BYTES: (i + 1) * _SAMPLES_WIDTH])


def run_checklist(
    examples: Iterable[Example],
    tokens: Sequence[int | None] | None = None,
    assistant_tokens: Sequence[int | None] | None = None,
    context_limit: int | None = None,
) -> list[ChecklistItem]:
    """Run the whole checklist over examples; `tokens[i]` / `assistant_tokens[i]` go with example i."""
    b = ChecklistBuilder(context_limit=context_limit)
    it = iter(examples)
    while batch := list(islice(it, _BATCH)):
        start, end = b.n, b.n + len(batch)
        b.add_many(batch, None if tokens is None else tokens[start:end],
                   None if assistant_tokens is None else assistant_tokens[start:end])
    return b.finish()


# What of the chat checklist still means something for preference pairs, judged on the chosen
# conversations (prompt + chosen): the answers' quality, the token limit, secrets (also in the rejected
# answers, through `ChecklistBuilder.scan_sensitive`: they are uploaded and trained on too). Not the others:
# several pairs per prompt are normal (so "diverse" and "no_contradictions" would misjudge them), the
# records were all converted to one shape ("consistent"), and category balance is not a pair question.
PREFERENCE_CHAT_ITEMS = ("accurate", "lengths", "sensitive")
_PREFERENCE_PREFIX = {"accurate": "Chosen answers: ", "lengths": "Chosen side: ", "sensitive": "Both sides: "}


def preference_checklist(chat_items: list[ChecklistItem], pair_items: list[ChecklistItem]) -> list[ChecklistItem]:
    """The checklist of a file of preference pairs: the pair checks (`preferences.PairChecks.finish`) first,
    then the chat items in PREFERENCE_CHAT_ITEMS, said of the side they judged (the chosen one; both for secrets,
    whose rejected answers come through `ChecklistBuilder.scan_sensitive`)."""
    kept = []
    for item in chat_items:
        if item.id in PREFERENCE_CHAT_ITEMS:
            item.summary = _PREFERENCE_PREFIX[item.id] + item.summary[:1].lower() + item.summary[1:]
            kept.append(item)
    return [*pair_items, *kept]


# =====================================================================================
# accuracy flags
_F_EMPTY, _F_SHORT, _F_REPEAT, _F_NOTERM, _F_TRUNC, _F_PLACEHOLDER, _F_MOJIBAKE, _F_HTML = (1 << i for i in range(8))
_FLAG_INFO = (
    (_F_EMPTY, "empty", "empty answer"),
    (_F_SHORT, "short", "trivially short answer"),
    (_F_REPEAT, "repeat", "answer repeats the prompt"),
    (_F_NOTERM, "no_terminal", "ends without terminal punctuation: maybe cut off"),
    (_F_TRUNC, "truncated", "looks truncated: trailing '...' or unclosed code fence / bracket"),
    (_F_PLACEHOLDER, "placeholder", "placeholder text"),
    (_F_MOJIBAKE, "mojibake", "mojibake: UTF-8 decoded as cp1252"),
    (_F_HTML, "html", "leftover HTML markup"),
)
_FLAG_BITS = {name: bit for bit, name, _ in _FLAG_INFO}
_FLAG_LABEL = {
    "empty": "empty", "short": "trivially short", "repeat": "repeat the prompt",
    "no_terminal": "end mid-sentence", "truncated": "look truncated", "placeholder": "contain placeholders",
    "mojibake": "contain mojibake", "html": "contain leftover HTML",
}
_KIND_LABEL = {"api key": "likely API key", "private key": "private key", "email": "email address",
               "phone": "phone number", "card": "card number"}


def _placeholder(answer: str) -> bool:
    text = _CODE_RE.sub(" ", answer) if "`" in answer else answer
    for m in _PLACEHOLDER_RE.finditer(text):
        g = m.group(0)
        if g.lower() in ("todo", "tbd") and not g.isupper():
            continue
        return True
    return False


def _html_leftover(answer: str, prompt: str) -> bool:
    text = _CODE_RE.sub(" ", answer) if "`" in answer else answer
    if not _HTML_RE.search(text):
        return False
    pl = prompt.lower()
    return not any(t in pl for t in _HTML_TOPIC)


def _scan_sensitive(text: str, keys: bool, emails: bool, digits: bool) -> list[tuple[str, int, int]]:
    """What the scanners find in `text`, keys then e-mails then numbers, each run only where its caller's
    pre-filter let it (a pre-filter only spares a scan that would find nothing)."""
    found = _scan_keys(text) if keys else []
    if emails:
        found += _scan_emails(text)
    if digits:
        found += _scan_digits(text)
    return found


def _scan_keys(text: str) -> list[tuple[str, int, int]]:
    out = []
    for m in _KEY_RE.finditer(text):
        kind = "private key" if m.group(0).startswith("-----") else "api key"
        out.append((kind, m.start(), m.end()))
    return out


def _scan_emails(text: str) -> list[tuple[str, int, int]]:
    out = []
    for m in _EMAIL_RE.finditer(text):
        local, _, domain = m.group(0).rpartition("@")
        d = domain.lower()
        if local.lower() in _EMAIL_SKIP_LOCAL or any(d == s or d.endswith("." + s) for s in _EMAIL_SKIP_DOMAINS):
            continue
        if d.rsplit(".", 1)[-1] in ("png", "jpg", "jpeg", "gif", "svg", "webp", "py", "js"):
            continue  # retina image names like logo@2x.png, package@version
        out.append(("email", m.start(), m.end()))
    return out


def _scan_digits(text: str) -> list[tuple[str, int, int]]:
    out = []
    for m in _DIGITS_RE.finditer(text):
        s = m.group(0).strip()
        digits = [c for c in s if c.isdigit()]
        nd = len(digits)
        if 13 <= nd <= 19 and _CARD_RE.fullmatch(s) and _luhn(digits):
            out.append(("card", m.start(), m.end()))
        elif 10 <= nd <= 15 and _PHONE_RE.fullmatch(s):
            out.append(("phone", m.start(), m.end()))
    return out


def _luhn(digits: list[str]) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        v = ord(d) - 48
        if i % 2:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return total % 10 == 0


def _mask(kind: str, s: str) -> str:
    """A form that shows what was found but can never reveal the value."""
    if kind == "email":
        local, _, domain = s.partition("@")
        head, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{head[:1]}***.{tld}"
    if kind in ("phone", "card"):
        keep = 2 if kind == "phone" else 4
        out, seen, total = [], 0, sum(c.isdigit() for c in s)
        for c in s:
            if c.isdigit():
                seen += 1
                out.append(c if seen > total - keep else "*")
            else:
                out.append(c)
        return "".join(out)
    if kind == "private key":
        return "-----BEGIN PRIVATE KEY----- [masked]"
    prefix = next((p for p in ("sk-proj-", "sk-ant-", "sk-", "github_pat_", "AKIA", "ghp_", "gho_", "ghu_", "ghs_",
                               "ghr_", "hf_", "xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-") if s.startswith(p)), s[:3])
    return f"{prefix}****[masked, {len(s)} chars]"


def _masked_sample(text: str, found: list[tuple[str, int, int]]) -> str:
    kind, s, e = found[0]
    lo = max(0, s - 50)
    hi = min(len(text), e + 60)
    pieces, pos = [], lo
    for k, fs, fe in sorted(found, key=lambda t: t[1]):
        if fe <= lo or fs >= hi or fs < pos:
            continue
        pieces.append(text[pos:fs])
        pieces.append(_mask(k, text[fs:fe]))
        pos = fe
    if pos < hi:
        # never cut a found value in half at the window edge: stop before it
        tail_end = hi
        for _kind, fs, fe in found:
            if fs < hi < fe:
                tail_end = min(tail_end, fs)
        pieces.append(text[pos:tail_end])
    out = " ".join("".join(pieces).split())
    return ("…" if lo else "") + _clip(out, _SAMPLE_MAX - 2)


# =====================================================================================
# MinHash


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _minhash_batch(word_hashes: array, counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One-permutation MinHash signatures, shape (len(counts), _BINS) uint8.

    `word_hashes` holds the CRC-32 of each normalised word of every text in turn,
    `counts` how many words each text has. Shingles are word bigrams plus the first
    word; each shingle hash picks one of _BINS bins by its top bits and the bin keeps the
    minimum. Empty bins (short texts) borrow from the next non-empty bin, shifted by
    the distance ("rotation" densification, Shrivastava & Li 2014) so that the share of
    equal bins still estimates the Jaccard similarity. Returns (signatures, has_words).
    """
    n_texts = len(counts)
    word_counts = np.asarray(counts, dtype=np.int64)
    has_words = word_counts > 0
    if not len(word_hashes):
        return np.zeros((n_texts, _BINS), dtype=np.uint8), has_words
    with np.errstate(over="ignore"):
        hashes = np.frombuffer(word_hashes, dtype=np.uint32).astype(np.uint64) if word_hashes.itemsize == 4 else \
            np.frombuffer(word_hashes, dtype=np.uint64)
        owner = np.repeat(np.arange(n_texts, dtype=np.int64), word_counts)
        same_owner = owner[1:] == owner[:-1]
        bigrams = _mix((hashes[:-1] << np.uint64(32)) | hashes[1:])[same_owner]
        is_first_word = np.ones(len(owner), dtype=bool)
        is_first_word[1:] = ~same_owner
        shingles = np.concatenate([bigrams, _mix(hashes[is_first_word] | np.uint64(0xD6E8FEB800000000))])
        shingle_owner = np.concatenate([owner[:-1][same_owner], owner[is_first_word]])
        minimums = np.full(n_texts * _BINS, _EMPTY_BIN, dtype=np.uint64)
        bins = (shingles >> np.uint64(64 - _BIN_BITS)).astype(np.int64)  # the top bits pick the bin
        np.minimum.at(minimums, shingle_owner * _BINS + bins, shingles)
        minimums = minimums.reshape(n_texts, _BINS)
        signatures = (minimums >> np.uint64(20)).astype(np.uint8)  # 8 bits: a false bin match costs 1/256
        empty_bins = minimums == _EMPTY_BIN
        if empty_bins.any():
            # next non-empty bin to the right (circularly) of each bin, over the doubled row
            empty_twice = np.concatenate([empty_bins, empty_bins], axis=1)
            positions = np.where(empty_twice, np.int32(1 << 30), np.arange(2 * _BINS, dtype=np.int32))
            next_filled = np.minimum.accumulate(positions[:, ::-1], axis=1)[:, : _BINS - 1: -1]
            # rows without any word: anything, they are not compared
            next_filled = np.minimum(next_filled, 2 * _BINS - 1)
            distance = (next_filled - np.arange(_BINS, dtype=np.int32)).astype(np.uint8)
            signatures = np.take_along_axis(signatures, next_filled & (_BINS - 1), axis=1) + distance * np.uint8(0x9D)
    return signatures, has_words


# =====================================================================================
# small helpers


def _as_numpy(a: array) -> np.ndarray:
    """A numpy view of an array.array (32-bit ints widened to int64 for arithmetic)."""
    x = np.frombuffer(a, dtype=a.typecode) if len(a) else np.zeros(0, dtype=a.typecode)
    return x.astype(np.int64) if a.typecode == "i" else x


def _stable_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.argsort(keys, kind="stable")` of 32-bit keys, and the keys in that order.

    Why: numpy's stable sort of 32-bit integers is a timsort; each key packed with its
    position into one 64-bit integer sorts ~10x faster with the plain sort, and the order
    is the same (equal keys stay in position order). The near-duplicate search sorts every
    example once per LSH band.
    """
    n = len(keys)
    packed = (keys.astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    packed.sort()
    return (packed & np.uint64(0xFFFFFFFF)).astype(np.int64), (packed >> np.uint64(32)).astype(keys.dtype)


def _first_of(h: np.ndarray) -> np.ndarray:
    """For each position, the first position holding the same value.

    The plain (unstable, several times faster) sort groups equal values; the first position
    of each group is its smallest, taken per group."""
    n = len(h)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(h)
    sh = h[order]
    start = np.ones(n, dtype=bool)
    start[1:] = sh[1:] != sh[:-1]
    firsts = np.minimum.reduceat(order, np.flatnonzero(start))
    rep = np.empty(n, dtype=np.int64)
    rep[order] = firsts[np.cumsum(start) - 1]
    return rep


class _Parts(NamedTuple):
    """A batch of chats taken apart, one list entry per example."""

    example_hashes: list[int]  # the whole example: roles, contents, extra message keys, tools
    systems: list[str]  # system messages before the answer, joined
    user_texts: list[str]  # the other turns before the answer, joined
    finals: list[str]  # the last user message before the answer
    answers: list[str]  # the final assistant message ("" when there is none)
    joined_answers: str  # the answers joined by NUL, for the batch's pre-filters
    n_parts: list[int]  # how many turns user_texts joins
    texts: list[list[str]]  # every message's content


def _take_apart(examples: Sequence[Example]) -> _Parts:
    """Split each chat into system / turns before the final assistant / the final assistant.

    The common shapes (user, assistant; system, user, assistant) skip the general loop over
    the turns: this runs for every example."""
    identities: list[bytes] = []
    systems: list[str] = []
    user_texts: list[str] = []
    finals: list[str] = []
    answers: list[str] = []
    n_parts: list[int] = []
    texts: list[list[str]] = []
    for example in examples:
        chat = example.chat
        messages = chat.get("messages") or []
        contents: list[str] = []
        roles: list = []
        extra_keys = None
        for message in messages:
            content = message.get("content")
            if content.__class__ is not str:
                content = _text_of(content)
            contents.append(content)
            roles.append(message.get("role"))
            if len(message) > 2:  # name, weight, tool_calls...: part of the example's identity
                if extra_keys is None:
                    extra_keys = []
                extra_keys.append(_stable({key: value for key, value in message.items()
                                           if key != "role" and key != "content"}))
        answer_index = len(roles) - 1
        if answer_index == 1 and roles[1] == "assistant" and roles[0] == "user":
            system, user_text, final_user, n_user = "", contents[0], contents[0], 1
        elif answer_index == 2 and roles[2] == "assistant" and roles[1] == "user" and roles[0] == "system":
            system, user_text, final_user, n_user = contents[0], contents[1], contents[1], 1
        else:
            while answer_index >= 0 and roles[answer_index] != "assistant":
                answer_index -= 1
            system = ""
            user_parts: list[str] = []
            final_user = ""
            for index in range(answer_index if answer_index >= 0 else len(messages)):
                role = roles[index]
                if role == "system":
                    system = contents[index] if not system else system + "\n" + contents[index]
                else:
                    user_parts.append(contents[index])
                    if role == "user":
                        final_user = contents[index]
            user_text = user_parts[0] if len(user_parts) == 1 else "\n".join(user_parts)
            n_user = len(user_parts)
        if answer_index >= 0:
            answer = contents[answer_index]
            if not answer.strip() and messages[answer_index].get("tool_calls"):
                answer = _stable(messages[answer_index].get("tool_calls"))
        else:
            answer = ""
        tools = chat.get("tools")
        try:  # roles, contents, extra message keys and tools, each part told apart by a separator
            identity = "\x1e".join(roles) + "\x1f" + "\x1e".join(contents)
        except TypeError:  # a role that is not a string
            identity = repr(roles) + "\x1f" + "\x1e".join(contents)
        if extra_keys is not None:
            identity += "\x1d" + "\x1e".join(extra_keys)
        if tools is not None:
            identity += "\x1c" + _stable(tools)
        identities.append(identity.encode("utf-8", "surrogatepass"))
        systems.append(system)
        user_texts.append(user_text)
        finals.append(final_user)
        answers.append(answer)
        n_parts.append(n_user)
        texts.append(contents)
    return _Parts(_digests(identities), systems, user_texts, finals, answers, "\x00".join(answers), n_parts, texts)


def _keys(texts: list[str], delete: bytes, joined: str | None = None) -> list[bytes]:
    """Each text's bytes through NORM, `delete` deleted: one C-level pass over the batch joined
    by NUL (`joined`, when the caller has it already), text by text when a text holds a NUL."""
    if joined is None:
        joined = "\x00".join(texts)
    if joined.count("\x00") != len(texts) - 1:
        return [t.encode("utf-8", "replace").translate(_NORMALISE, delete) for t in texts]
    return joined.encode("utf-8", "replace").translate(_NORMALISE, delete).split(b"\x00")


def _merge_capped(counts: Counter, more: Counter, cap: int) -> None:
    """`more`'s counts added, keys in the order `more` first saw them: a new key only while `counts` holds
    fewer than `cap` (what counting them one by one would have kept)."""
    for key, count in more.items():
        if key in counts or len(counts) < cap:
            counts[key] += count


def _merge_first(kept: dict, more: dict, cap: int) -> None:
    """The first value of each key: `more`'s new keys, in order, while `kept` holds fewer than `cap`."""
    if len(kept) >= cap:
        return
    for key, value in more.items():
        if key not in kept and len(kept) < cap:
            kept[key] = value


def _known_or_minus_one(counts: Sequence[int | None] | None, size: int) -> list[int]:
    """Token counts with -1 for unknown ones (a 32-bit array cannot hold None)."""
    if counts is None:
        return [-1] * size
    return [-1 if count is None else int(count) for count in counts]


def _stable(obj) -> str:
    if obj is None:
        return ""
    try:
        return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(obj)


def _count_digits(text: str) -> int:
    b = text.encode("utf-8", "replace")
    return len(b) - len(b.translate(None, _DIGITS))


def _normalised(text: str) -> bytes:
    """The normalised form used for every key: lowercase, no punctuation, single spaces."""
    return b" ".join(text.encode("utf-8", "replace").translate(_NORMALISE, _PUNCTUATION).split())


def _unfixed(b: bytes | bytearray) -> str:
    return " ".join(bytes(b).rstrip(b"\0").decode("utf-8", "ignore").split())


def _clip(s: str, n: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _window(text: str, pos: int, before: int = 60, after: int = 120) -> str:
    lo = max(0, pos - before)
    return ("…" if lo else "") + _clip(text[lo: pos + after], _SAMPLE_MAX - 1)


def _dedupe_evidence(ev: list[dict]) -> list[dict]:
    seen, out = set(), []
    for e in ev:
        k = (e["line"], e["note"])
        if k not in seen:
            seen.add(k)
            out.append(e)
    return out


def _merge_by_line(ev: list[dict]) -> list[dict]:
    """One evidence entry per line, the notes joined, in line order."""
    by_line: dict[int, dict] = {}
    for e in ev:
        cur = by_line.get(e["line"])
        if cur is None:
            by_line[e["line"]] = dict(e)
        elif e["note"] not in cur["note"]:
            cur["note"] += "; " + e["note"]
    return [by_line[k] for k in sorted(by_line)]


def _counted_noun(count: int, noun: str) -> str:
    """'1 email address', '3 email addresses'."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {noun}{'es' if noun.endswith(('s', 'sh', 'ch')) else 's'}"


def _number(x: int | float | None) -> str:
    return "-" if x is None else f"{x:,}"


def _percent(k: int, n: int) -> str:
    if not n:
        return "0%"
    p = 100.0 * k / n
    return f"{p:.0f}%" if p >= 10 or p == 0 else f"{p:.1f}%" if p >= 0.1 else f"{p:.2f}%"


_RANK = {"not_checked": -1, "pass": 0, "warn": 1, "fail": 2}


def _worst(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


def _item(id_: str, status: str, summary: str, evidence: list[dict], details: dict) -> ChecklistItem:
    return ChecklistItem(id=id_, title=CHECKLIST_TITLES[id_], status=status, summary=summary,
                         evidence=evidence, details=details)
