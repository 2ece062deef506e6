"""The checklist judges crafted datasets: each item's pass, warn and fail, with the exact lines."""

from __future__ import annotations

import json
import random
from array import array
from dataclasses import asdict

import pytest

from ftassist.data.checklist import CHECKLIST_IDS, CHECKLIST_TITLES, ChecklistBuilder, run_checklist
from ftassist.data.report import ChecklistItem, Example
from ftassist.data.textkeys import WORD_HASH_CODE, chat_word_hashes

_rng = random.Random(7)
_VOCAB = ["".join(_rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_rng.randint(3, 9))) for _ in range(3000)]


def words(n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


def ex(line: int, user: str, answer: str, system: str | None = None, fmt: str = "chat",
       keys: tuple = ("messages",), extra: dict | None = None) -> Example:
    msgs = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return Example(line=line, chat={"messages": msgs}, source_format=fmt, extra=extra or {}, keys=keys)


def clean_set(n: int = 30, seed: int = 1, system: str | None = None) -> list[Example]:
    """Distinct prompts, complete sentences as answers, similar lengths."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = words(rng.randint(12, 20), rng).capitalize() + "?"
        answer = words(rng.randint(25, 35), rng).capitalize() + "."
        out.append(ex(i + 1, user, answer, system=system))
    return out


def item(items: list[ChecklistItem], id_: str) -> ChecklistItem:
    return next(i for i in items if i.id == id_)


def lines(it: ChecklistItem) -> list[int]:
    return [e["line"] for e in it.evidence]


def replace(exs: list[Example], i: int, **kw) -> None:
    """Rebuild example i (0-based) keeping its line, prompt, answer unless given."""
    old = exs[i]
    msgs = old.chat["messages"]
    user = next(m["content"] for m in msgs if m["role"] == "user")
    answer = msgs[-1]["content"]
    system = next((m["content"] for m in msgs if m["role"] == "system"), None)
    args = {"user": user, "answer": answer, "system": system, "fmt": old.source_format, "keys": old.keys,
            "extra": old.extra}
    args.update(kw)
    exs[i] = ex(old.line, **args)


# --- the whole list -----------------------------------------------------------------------

def test_order_ids_titles_and_json():
    items = run_checklist(clean_set())
    assert [i.id for i in items] == list(CHECKLIST_IDS) == [
        "accurate", "consistent", "diverse", "balanced", "no_contradictions", "lengths", "sensitive"]
    for it in items:
        assert it.title == CHECKLIST_TITLES[it.id]
        # nothing to balance in a set without categories: not checked, never a PASS without evidence
        assert it.status == ("not_checked" if it.id == "balanced" else "pass"), (it.id, it.summary)
        assert it.summary and "\n" not in it.summary
        json.dumps(asdict(it))  # serialisable
        for e in it.evidence:
            assert set(e) == {"line", "sample", "note"} and len(e["sample"]) <= 200


def test_empty_dataset():
    items = ChecklistBuilder().finish()
    assert [i.status for i in items] == ["not_checked"] * 7


# --- 1 accurate ---------------------------------------------------------------------------

def test_accurate_warn_lists_each_problem_line():
    exs = clean_set(60)
    replace(exs, 2, answer="Le cafÃ© est trÃ¨s bon, câ€™est vrai.")  # mojibake, line 3
    replace(exs, 9, answer="Dear [insert name], thank you for your order.")  # placeholder, line 10
    replace(exs, 19, answer="<div>The answer is forty two.</div>")  # leftover HTML, line 20
    items = run_checklist(exs)
    acc = item(items, "accurate")
    # 3 of 60 = 5%: fail at 5%, so use the 60-set with 3 -> exactly 5% -> fail; check counts and lines
    assert lines(acc) == [3, 10, 20]
    notes = {e["line"]: e["note"] for e in acc.evidence}
    assert "mojibake" in notes[3] and "placeholder" in notes[10] and "HTML" in notes[20]
    assert acc.details["counts"]["mojibake"] == 1 and acc.details["counts"]["placeholder"] == 1
    assert "3 of 60 answers (5.0%)" in acc.summary


def test_accurate_pass_warn_fail_levels():
    exs = clean_set(60)
    assert item(run_checklist(exs), "accurate").status == "pass"
    replace(exs, 4, answer="Here is the code:\n```python\nprint('hi')\n")  # unclosed fence, line 5
    acc = item(run_checklist(exs), "accurate")
    assert acc.status == "warn" and lines(acc) == [5]
    replace(exs, 7, answer="   ")  # empty answer: always fail, line 8
    acc = item(run_checklist(exs), "accurate")
    assert acc.status == "fail" and lines(acc) == [5, 8]
    assert acc.details["counts"]["empty"] == 1


def test_accurate_repeat_truncation_and_placeholders():
    exs = clean_set(40)
    user = exs[0].chat["messages"][0]["content"]
    replace(exs, 0, answer=user)  # repeats the prompt
    replace(exs, 1, answer="The main reasons are the following and then")  # no terminal punctuation
    replace(exs, 2, answer="Well, it depends on many things...")  # trailing ellipsis
    replace(exs, 3, answer="As an AI language model, I cannot have opinions.")
    replace(exs, 4, answer="Hello {{customer_name}}, your parcel has shipped.")
    replace(exs, 5, answer="Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    replace(exs, 6, answer="TODO: write this answer.")
    acc = item(run_checklist(exs), "accurate")
    assert lines(acc) == [1, 2, 3, 4, 5, 6, 7]
    assert acc.status == "fail"  # 7 of 40
    notes = {e["line"]: e["note"] for e in acc.evidence}
    assert "repeats the prompt" in notes[1]
    assert "cut off" in notes[2] and "truncated" in notes[3]
    assert all("placeholder" in notes[i] for i in (4, 5, 6, 7))


def test_accurate_spares_code_and_html_topics():
    exs = clean_set(30)
    replace(exs, 0, answer="Use a fenced block:\n```html\n<div class=\"x\">Hi</div>\n```\nThat renders a box.")
    replace(exs, 1, answer="Write `<br>` to break a line, and `{{ name }}` in Jinja.")
    replace(exs, 2, user="How do I make a paragraph in HTML?", answer="Wrap the text in <p> and </p> tags.")
    replace(exs, 3, answer="Our plan: (1) measure, (2) compare, (3) decide.")
    replace(exs, 4, answer="SÃO PAULO is the largest city in Brazil.")  # real Portuguese, no mojibake
    replace(exs, 5, answer="We still have to finish the todo list today.")  # lowercase todo is prose
    acc = item(run_checklist(exs), "accurate")
    assert acc.status == "pass", acc.evidence


def test_trivially_short_only_when_answers_are_long():
    exs = clean_set(30)
    replace(exs, 3, answer="Ok")
    acc = item(run_checklist(exs), "accurate")
    assert lines(acc) == [4] and "trivially short" in acc.summary
    # a classification set: short answers are the norm
    rng = random.Random(3)
    cls = [ex(i + 1, words(15, rng) + "?", rng.choice(["yes", "no"])) for i in range(30)]
    assert item(run_checklist(cls), "accurate").status == "pass"


# --- 2 consistent ---------------------------------------------------------------------------

def test_consistent_fail_on_mixed_formats():
    exs = clean_set(20)
    replace(exs, 5, fmt="instruction", keys=("instruction", "output"))
    replace(exs, 11, fmt="instruction", keys=("instruction", "output"))
    con = item(run_checklist(exs), "consistent")
    assert con.status == "fail"
    assert "2 formats mixed" in con.summary
    assert [6, 12] == sorted({e["line"] for e in con.evidence})


def test_consistent_warn_on_keys_and_system_prompts():
    exs = clean_set(20, system="You are terse.")
    assert item(run_checklist(exs), "consistent").status == "pass"
    replace(exs, 3, system=None)
    replace(exs, 8, system=None)
    con = item(run_checklist(exs), "consistent")
    assert con.status == "warn" and lines(con) == [4, 9]
    assert "2 of 20 examples (10%) have no system prompt" in con.summary
    exs = clean_set(20)
    replace(exs, 6, keys=("messages", "tools"))
    con = item(run_checklist(exs), "consistent")
    assert con.status == "warn" and lines(con) == [7] and con.details["n_other_keys"] == 1


# --- 3 diverse -------------------------------------------------------------------------------

def test_diverse_exact_duplicates_warn_then_fail():
    exs = clean_set(40)
    first = exs[4]
    exs.append(ex(41, first.chat["messages"][0]["content"], first.chat["messages"][1]["content"]))
    div = item(run_checklist(exs), "diverse")
    assert div.status == "warn"
    assert div.details["n_exact_duplicates"] == 1
    assert div.evidence[0]["line"] == 41 and "line 5" in div.evidence[0]["note"]
    for j in range(5):
        m = exs[j].chat["messages"]
        exs.append(ex(42 + j, m[0]["content"], m[1]["content"]))
    div = item(run_checklist(exs), "diverse")
    assert div.status == "fail" and div.details["n_exact_duplicates"] == 6


def test_near_duplicate_with_one_word_changed_not_unrelated():
    rng = random.Random(11)
    exs = clean_set(50)
    base = words(40, rng).split()
    changed = list(base)
    changed[20] = "zebra"
    exs.append(ex(51, " ".join(base).capitalize() + "?", "First answer here."))
    exs.append(ex(52, " ".join(changed).capitalize() + "!", "Second answer here."))
    exs.append(ex(53, words(40, rng) + "?", "Unrelated answer."))
    div = item(run_checklist(exs), "diverse")
    assert div.details["n_near_duplicates"] == 1
    near = [e for e in div.evidence if "near-duplicate" in e["note"]]
    assert [e["line"] for e in near] == [52] and "line 51" in near[0]["note"]
    assert div.status == "warn"  # 1 of 53 >= 1%
    # case, punctuation and digits do not hide a duplicate prompt
    exs2 = clean_set(30)
    exs2.append(ex(31, "What is the capital of France?", "Paris."))
    exs2.append(ex(32, "what is the CAPITAL of france 2", "It is Paris."))
    d2 = item(run_checklist(exs2), "diverse")
    assert d2.details["n_near_duplicates"] + d2.details["n_duplicate_prompts"] == 1


def test_template_share():
    rng = random.Random(5)
    exs = [ex(i + 1, f"Translate into French: {words(8, rng)}.", words(10, rng).capitalize() + ".") for i in range(30)]
    exs += [ex(31 + i, words(12, rng) + "?", words(10, rng).capitalize() + ".") for i in range(10)]
    div = item(run_checklist(exs), "diverse")
    assert div.details["top_template"].startswith("translate into french")
    assert div.details["top_template_share"] == pytest.approx(0.75)
    assert div.status == "warn" and "75%" in div.summary


# --- 4 balanced --------------------------------------------------------------------------------

def test_balance_by_label_column():
    rng = random.Random(2)

    def dataset(counts):
        out, line = [], 1
        for cat, k in counts.items():
            for _ in range(k):
                out.append(ex(line, words(15, rng) + "?", words(20, rng) + ".", extra={"category": cat}))
                line += 1
        return out

    bal = item(run_checklist(dataset({"billing": 10, "tech": 8, "sales": 6})), "balanced")
    assert bal.status == "pass" and bal.details["source"] == "label column 'category'"
    assert bal.details["counts"] == {"billing": 10, "tech": 8, "sales": 6}
    assert bal.details["imbalance_ratio"] == pytest.approx(10 / 6, rel=1e-3)
    assert item(run_checklist(dataset({"a": 20, "b": 5})), "balanced").status == "warn"
    bal = item(run_checklist(dataset({"a": 44, "b": 4})), "balanced")
    assert bal.status == "fail" and bal.details["imbalance_ratio"] == 11.0 and "ratio 11.0" in bal.summary


def test_balance_by_classification_answers_and_system_prompts():
    rng = random.Random(4)
    exs = [ex(i + 1, words(15, rng) + "?", "Positive." if i < 25 else "negative") for i in range(30)]
    bal = item(run_checklist(exs), "balanced")
    assert bal.details["source"] == "assistant answers (classification)"
    assert bal.details["counts"] == {"positive": 25, "negative": 5}
    assert bal.status == "warn"  # 5.0 > 3
    sys_set = clean_set(12, system="You are a pirate.") + [
        ex(13 + i, words(12, rng) + "?", words(30, rng) + ".", system="You are a poet.") for i in range(12)]
    bal = item(run_checklist(sys_set), "balanced")
    assert bal.details["source"] == "system prompt" and bal.status == "pass"
    assert sorted(bal.details["counts"].values()) == [12, 12]
    na = item(run_checklist(clean_set(20)), "balanced")
    assert na.status == "not_checked" and "not applicable" in na.summary


# --- 5 contradictions ---------------------------------------------------------------------------------

def test_contradictions_fail_for_labels_warn_for_generation():
    rng = random.Random(6)
    exs = [ex(i + 1, words(15, rng) + "?", "positive" if i % 2 else "negative") for i in range(30)]
    prompt = exs[3].chat["messages"][0]["content"]
    other = "positive" if exs[3].chat["messages"][1]["content"] == "negative" else "negative"
    exs.append(ex(31, prompt.upper() + "!!", other))  # same prompt after normalisation
    exs.append(ex(32, exs[8].chat["messages"][0]["content"], exs[8].chat["messages"][1]["content"]))  # agrees
    con = item(run_checklist(exs), "no_contradictions")
    assert con.status == "fail"
    assert lines(con) == [31] and "line 4" in con.evidence[0]["note"]
    assert con.details["n_prompts_with_conflicts"] == 1 and con.details["n_examples_in_conflict"] == 2
    gen = clean_set(30)
    gen.append(ex(31, gen[10].chat["messages"][0]["content"], "A different but fine long answer to the same question."))
    con = item(run_checklist(gen), "no_contradictions")
    assert con.status == "warn" and lines(con) == [31] and "line 11" in con.evidence[0]["note"]
    assert item(run_checklist(clean_set(30)), "no_contradictions").status == "pass"


def test_contradiction_needs_same_system_prompt():
    exs = clean_set(10)
    exs.append(ex(11, "Is it safe?", "yes", system="You are a lifeguard."))
    exs.append(ex(12, "Is it safe?", "no", system="You are a hacker."))
    assert item(run_checklist(exs), "no_contradictions").status == "pass"


# --- 6 lengths -------------------------------------------------------------------------------------------

def test_lengths_outliers_context_and_histogram():
    exs = clean_set(60)
    replace(exs, 9, answer=words(400, random.Random(1)) + ".")  # line 10: very long
    items = run_checklist(exs)
    ln = item(items, "lengths")
    assert ln.details["unit"] == "words"
    assert ln.details["n_long_outliers"] == 1 and lines(ln) == [10] and "very long" in ln.evidence[0]["note"]
    assert ln.status == "warn"  # 1 of 60 >= 1%
    h = ln.details["histogram"]
    assert sum(h["counts"]) == 60 and len(h["edges"]) == len(h["counts"]) + 1 <= 21
    # with tokens: the unit is tokens and examples over the context fail
    tokens = [100] * 60
    tokens[20] = 5000
    tokens[33] = 4097
    atoks = [40] * 60
    atoks[20] = 4800
    ln = item(run_checklist(exs, tokens=tokens, assistant_tokens=atoks, context_limit=4096), "lengths")
    assert ln.status == "fail" and ln.details["unit"] == "tokens"
    over = [e["line"] for e in ln.evidence if "truncated" in e["note"]]
    assert over == [21, 34] and ln.details["n_over_context"] == 2
    assert "2 examples over the 4,096-token context" in ln.summary
    assert sum(ln.details["histogram"]["counts"]) == 60


def test_lengths_pass_and_short_outlier():
    exs = clean_set(60)
    assert item(run_checklist(exs), "lengths").status == "pass"
    replace(exs, 0, answer="Yes indeed.")  # 2 words against a median of ~30
    ln = item(run_checklist(exs), "lengths")
    assert ln.details["n_short_outliers"] == 1 and lines(ln) == [1]


# --- 7 sensitive ----------------------------------------------------------------------------------------------

SECRET = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2


def test_sensitive_masks_secrets_and_names_lines():
    exs = clean_set(30)
    replace(exs, 2, user=f"My key is {SECRET} please debug.")
    replace(exs, 5, answer="Write to jane.doe@acme-corp.io for help.")
    replace(exs, 7, answer="Call me at (415) 555-0132 tomorrow.")
    replace(exs, 8, answer="My card is 4111 1111 1111 1111, charge it.")
    replace(exs, 9, answer="AWS key AKIAIOSFODNN7EXAMPLE leaked here.")
    replace(exs, 11, answer="Use xoxb-1234567890 in the bot.")  # a Slack token shorter than the others
    items = run_checklist(exs)
    sen = item(items, "sensitive")
    assert sen.status == "warn"
    assert lines(sen) == [3, 6, 8, 9, 10, 12]
    assert sen.details["counts"] == {"api key": 3, "email": 1, "phone": 1, "card": 1}
    blob = json.dumps([asdict(i) for i in items])
    for leaked in (SECRET, SECRET[8:30], "jane.doe@acme-corp.io", "555-0132", "4111 1111 1111 1111",
                   "AKIAIOSFODNN7EXAMPLE"):
        assert leaked not in blob
    samples = {e["line"]: e["sample"] for e in sen.evidence}
    assert "sk-proj-****" in samples[3] and "please debug" in samples[3]
    assert "j***@a***.io" in samples[6]
    assert "32" in samples[8] and "1111" in samples[9]


def test_sensitive_no_false_positives():
    exs = clean_set(30)
    replace(exs, 0, answer="On 2023-10-12 version 1.2.3 shipped; pi is 3.14159265358979.")
    replace(exs, 1, answer="Email support@example.com or use git@github.com:org/repo.git today.")
    replace(exs, 2, answer="The numbers 1234567890123 and 4111 1111 1111 1112 fail the checks.")
    replace(exs, 3, answer="Use self.hf_model and the sk-learn style API, decorated with @property.")
    replace(exs, 4, answer="Population grew from 1,234,567 to 2,345,678 in ten years.")
    sen = item(run_checklist(exs), "sensitive")
    assert sen.status == "pass", sen.evidence


def test_private_key_block_and_international_phone():
    exs = clean_set(20)
    replace(exs, 1, answer="-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----")
    replace(exs, 4, answer="Our office: +44 20 7946 0958, open daily.")
    sen = item(run_checklist(exs), "sensitive")
    assert lines(sen) == [2, 5]
    assert "MIIEowIBAAKCAQEA" not in json.dumps(sen.evidence)
    assert "[masked]" in sen.evidence[0]["sample"] and "0958" not in json.dumps(sen.evidence)
    assert sen.details["counts"] == {"private key": 1, "phone": 1}


# --- builder and run_checklist agree -------------------------------------------------------------------------

def test_builder_matches_run_checklist_and_bounds_evidence():
    exs = clean_set(30)
    for i in range(30):
        replace(exs, i, answer="")  # every answer empty
    b = ChecklistBuilder(max_evidence=5)
    for e in exs:
        b.add(e)
    acc = item(b.finish(), "accurate")
    assert acc.status == "fail" and len(acc.evidence) == 5 and acc.details["counts"]["empty"] == 30


def test_empty_prompts_are_not_duplicates_or_contradictions():
    """Completion data with empty prompts: every example stands on its own."""
    rng = random.Random(8)
    exs = [ex(i + 1, "", words(30, rng).capitalize() + ".", fmt="completion", keys=("completion", "prompt"))
           for i in range(30)]
    items = run_checklist(exs)
    assert item(items, "diverse").status == "pass"
    assert item(items, "no_contradictions").status == "pass"


def test_results_are_deterministic():
    exs = clean_set(40)
    base = exs[3].chat["messages"][0]["content"].split()
    base[5] = "zebra"
    exs.append(ex(41, " ".join(base), "Fine answer here."))
    a = [asdict(i) for i in run_checklist(exs)]
    b = [asdict(i) for i in run_checklist(exs)]
    assert a == b


# --- batches: add_many's batch-level pre-filters never change a judgement -------------------------------------

_PIECES = ["Hello", "the answer is", "42", "Ticket 123:", "Translate into French:", "lorem ipsum", "TODO", "tbd",
           "<div>x</div>", "&amp;", "Ã©tÃ©", "```py\nx=1", "(open", "[list", "{{ name }}", "sk-" + "a" * 24,
           "AKIA" + "B" * 16, "mail bob@acme.io", "+1 415 555 0100", "4111 1111 1111 1111", "café", "\x00", "\t\t",
           "\n", "...", "…", "- item", "As an AI language model", "-----BEGIN PRIVATE KEY-----", "[insert name]"]


def _varied_examples(n: int, seed: int) -> list[Example]:
    """Mostly plain examples with a rare special piece: so that some batches hold a rare
    case (HTML, a key, a NUL...) and others none, and single examples both ways."""
    rng = random.Random(seed)

    def text() -> str:
        parts = [rng.choice(_VOCAB) for _ in range(rng.choice([0, 1, 3, 12, 60]))]
        if parts and rng.random() < 0.08:
            parts.insert(rng.randrange(len(parts)), rng.choice(_PIECES))
        return " ".join(parts) + rng.choice(["", ".", "?", " ", ")"])

    out = []
    for i in range(n):
        msgs = [{"role": "system", "content": rng.choice(["Be brief.", "Call 415 555 0100 1234.", text()])}] * (
            rng.random() < 0.5)
        for _ in range(rng.choice([1, 1, 2])):
            user = {"role": "user", "content": text()}
            if rng.random() < 0.05:
                user["content"] = [{"type": "text", "text": text()}]
            msgs.append(user)
            msgs.append({"role": "assistant", "content": text() if rng.random() > 0.1 else user["content"]})
        if rng.random() < 0.03:
            msgs[-1] = {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "function": {"name": "f"}}]}
        extra = {"category": rng.choice("abc")} if rng.random() < 0.2 else {}
        out.append(Example(i + 1, {"messages": msgs}, "chat", extra, tuple(sorted(["messages", *extra]))))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_batches_of_any_size_judge_like_one_example_at_a_time(seed):
    exs = _varied_examples(1200, seed)
    tokens = [None if i % 7 == 0 else 40 + i % 300 for i in range(len(exs))]
    one = ChecklistBuilder(context_limit=300, max_evidence=50)
    for e, t in zip(exs, tokens):
        one.add(e, t, None if t is None else t // 2)
    rng = random.Random(seed)
    many = ChecklistBuilder(context_limit=300, max_evidence=50)
    i = 0
    while i < len(exs):
        size = rng.choice([1, 3, 64, 500, 2100])
        part = tokens[i:i + size]
        many.add_many(exs[i:i + size], part, [None if t is None else t // 2 for t in part])
        i += size
    expected = [asdict(x) for x in one.finish()]
    assert [asdict(x) for x in many.finish()] == expected
    flagged = {k for it in expected for k, v in it["details"].get("counts", {}).items() if v}
    assert {"html", "placeholder", "mojibake", "api key", "email", "phone"} <= flagged  # the rare cases were there


def test_prepared_items_are_judged_again_when_examples_come_after():
    """prepare() judges early (while the last token counts are on their way); examples that
    come after it must still count."""
    exs = clean_set(40)
    replace(exs, 30, answer="")
    b = ChecklistBuilder()
    b.add_many(exs[:20])
    b.prepare()
    b.add_many(exs[20:])
    items = b.finish()
    acc = item(items, "accurate")
    assert acc.details["counts"]["empty"] == 1 and lines(acc) == [31]
    assert [asdict(x) for x in items] == [asdict(x) for x in run_checklist(exs)]


# --- parts: a chunk judged elsewhere and merged back counts as if added here ------------------------------------

def _merged(exs: list[Example], tokens: list, rng: random.Random, caps: dict) -> ChecklistBuilder:
    """The examples in chunks of random sizes: some added directly, some through parts (with or
    without their word hashes), merged in order, some parts held back behind later chunks."""
    merged = ChecklistBuilder(context_limit=300, max_evidence=7)
    for name, cap in caps.items():
        setattr(merged, name, cap)
    waiting: list[ChecklistBuilder] = []
    i = 0
    while i < len(exs):
        size = rng.choice([1, 5, 64, 300])
        chunk, counts = exs[i:i + size], tokens[i:i + size]
        assistant = [None if t is None else t // 2 for t in counts]
        merged.add_formats(chunk)
        if not waiting and rng.random() < 0.3:
            merged.add_many(chunk, counts, assistant, formats=False)
        else:
            part = merged.part(i)
            words_in_part = rng.random() < 0.5
            part.add_many(chunk, counts, assistant, words=words_in_part, formats=False)
            if not words_in_part:  # hashed elsewhere, as the token worker does
                hashes = array(WORD_HASH_CODE)
                merged.add_words(i, hashes, [chat_word_hashes(e.chat, hashes) for e in chunk])
            waiting.append(part)
            if rng.random() < 0.6:
                for held in waiting:
                    merged.merge(held)
                waiting.clear()
        i += size
    for held in waiting:
        merged.merge(held)
    return merged


@pytest.mark.parametrize("seed", [3, 4])
def test_parts_merged_in_order_judge_like_adding_here(seed):
    exs = _varied_examples(1500, seed)
    tokens = [None if i % 7 == 0 else 40 + i % 300 for i in range(len(exs))]
    # small caps, so that merging has to keep exactly the keys adding one by one keeps
    caps = {"_answer_cap": 3, "_label_cap": 2, "_system_cap": 2, "_system_sample_cap": 1, "_template_cap": 5}
    one = ChecklistBuilder(context_limit=300, max_evidence=7)
    for name, cap in caps.items():
        setattr(one, name, cap)
    for e, t in zip(exs, tokens):
        one.add(e, t, None if t is None else t // 2)
    merged = _merged(exs, tokens, random.Random(seed), caps)
    # what the builder holds, not only what it judges: kept evidence stays within max_evidence, and a pair's
    # rejected side (`scan_sensitive`) counts an example once, whichever part found its other text
    for name in ("answer_counts", "label_counts", "system_counts", "system_sample", "template_text",
                 "accurate_evidence", "sensitive_evidence", "sensitive_counts", "_sensitive_lines", "n"):
        assert getattr(merged, name) == getattr(one, name), name
    for name in ("lines", "flags", "words", "template_hash", "example_hash", "prompt_hash", "conversation_hash",
                 "answer_hash", "has_system", "prefixes"):
        assert getattr(merged, name) == getattr(one, name), name
    assert len(one.answer_counts) == 3 and len(one.template_text) == 5  # the caps were reached
    assert max(len(kept) for kept in one.accurate_evidence.values()) == 7  # and the evidence kept
    assert [asdict(x) for x in merged.finish()] == [asdict(x) for x in one.finish()]


def test_a_part_must_follow_the_last_example():
    b = ChecklistBuilder()
    b.add_many(clean_set(3))
    with pytest.raises(ValueError, match="cannot follow"):
        b.merge(b.part(5))


def test_keys_are_the_same_in_every_process():
    """A part made in a process with another hash seed (the token worker) merges like one made here."""
    import os
    import pickle
    import subprocess
    import sys

    exs = _varied_examples(300, 5)
    code = ("import pickle, sys\nfrom ftassist.data.checklist import ChecklistBuilder\n"
            "exs = pickle.loads(sys.stdin.buffer.read())\npart = ChecklistBuilder(max_evidence=7).part(0)\n"
            "part.add_many(exs)\nsys.stdout.buffer.write(pickle.dumps(part))")
    child = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(exs), capture_output=True, check=True,
                           env=dict(os.environ, PYTHONHASHSEED="12345"))
    there = ChecklistBuilder(max_evidence=7)
    there.add_formats(exs)  # a part leaves formats to the builder it is merged into
    there.merge(pickle.loads(child.stdout))
    here = ChecklistBuilder(max_evidence=7)
    here.add_many(exs)
    assert list(there.example_hash) == list(here.example_hash) and list(there.answer_hash) == list(here.answer_hash)
    assert list(there.conversation_hash) == list(here.conversation_hash)
    assert [asdict(x) for x in there.finish()] == [asdict(x) for x in here.finish()]
