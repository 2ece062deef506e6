"""The "sensitive" checklist item of a file of preference pairs covers the rejected answers too: they are
uploaded and trained on like the chosen ones, so a key or an email there must not go unnoticed."""

import json
import re

from ftassist.data.check import check_path

# 40 letters and digits after the prefix: the shape of an OpenAI project key
KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5kL7n"
OTHER_KEY = "sk-proj-" + "Zy9xW8vU7tS6rQ5pO4nM3lK2jI1hG0fE9dC8bA7z"
EMAIL = "jane.doe@acme-mail.io"


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def openai_row(i, chosen, rejected):
    """A pair in OpenAI's DPO JSONL shape."""
    return {"input": {"messages": [user(f"Question {i} about the billing page?")]},
            "preferred_output": [assistant(chosen)], "non_preferred_output": [assistant(rejected)]}


def clean_row(i):
    return openai_row(i, f"Answer {i}: open the billing page and pick a plan.", f"No idea about {i}.")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sensitive(report):
    return next(item for item in report.checklist if item.id == "sensitive")


def test_a_key_and_an_email_only_in_rejected_answers_are_flagged(tmp_path):
    rows = [clean_row(i) for i in range(1, 9)]
    rows[2] = openai_row(3, "Answer 3: open the billing page.", f"Just use my key {KEY} and you are set.")
    rows[5] = openai_row(6, "Answer 6: write to support.", f"Mail {EMAIL} and ask for a refund.")
    report = check_path(write_jsonl(tmp_path / "pairs.jsonl", rows))

    item = sensitive(report)
    assert item.status != "pass"
    assert item.summary.startswith("Both sides: ")
    assert item.details["counts"] == {"api key": 1, "email": 1}
    assert item.details["n_examples"] == 2
    by_line = {entry["line"]: entry for entry in item.evidence}
    assert set(by_line) == {3, 6}
    assert "api key" in by_line[3]["note"] and "rejected" in by_line[3]["note"]
    assert "email" in by_line[6]["note"] and "rejected" in by_line[6]["note"]
    assert "sk-proj-" in by_line[3]["sample"] and "masked" in by_line[3]["sample"]
    # the values themselves never reach the report: not its key, nor any 12-character run of it
    report_json = json.dumps(report.to_dict())
    assert KEY not in report_json and KEY[8:20] not in report_json
    assert EMAIL not in report_json


def test_a_pair_with_secrets_on_both_sides_counts_once(tmp_path):
    rows = [clean_row(i) for i in range(1, 6)]
    rows[1] = openai_row(2, f"Use the key {KEY} in the header.", f"Try {OTHER_KEY} or mail {EMAIL}.")
    report = check_path(write_jsonl(tmp_path / "pairs.jsonl", rows))

    item = sensitive(report)
    assert item.status != "pass"
    assert item.details["n_examples"] == 1  # one pair, although both sides hold something
    assert item.details["counts"] == {"api key": 2, "email": 1}
    assert re.search(r"\bin 1 of 5 examples\b", item.summary), item.summary
    notes = sorted(entry["note"] for entry in item.evidence if entry["line"] == 2)
    assert len(notes) == 2 and sum("rejected" in note for note in notes) == 1
    report_json = json.dumps(report.to_dict())
    assert KEY not in report_json and OTHER_KEY not in report_json


def test_trl_pairs_with_a_secret_in_the_rejected_answer_are_flagged(tmp_path):
    rows = [{"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": f"No idea about {i}."}
            for i in range(1, 5)]
    rows[3]["rejected"] = f"Paste {KEY} into the settings."
    report = check_path(write_jsonl(tmp_path / "trl.jsonl", rows))

    item = sensitive(report)
    assert item.status != "pass"
    assert [entry["line"] for entry in item.evidence] == [4]
    assert "rejected" in item.evidence[0]["note"]


def test_clean_pairs_still_pass(tmp_path):
    report = check_path(write_jsonl(tmp_path / "pairs.jsonl", [clean_row(i) for i in range(1, 9)]))

    item = sensitive(report)
    assert item.status == "pass"
    assert item.summary.startswith("Both sides: ")
    assert item.details["n_examples"] == 0
