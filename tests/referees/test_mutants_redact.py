"""`scrub` against hand-written expectations: the cases that mutation testing showed untested
(`tools/mutation.py ftassist/redact.py`).

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- `x_scrub__mutmut_17`: `return out if (limit is None) and False else out[:limit]` always slices,
  and `out[:None]` is `out`, so the result is the same for every limit.
"""

from __future__ import annotations

import pytest

from ftassist.redact import MASK, MIN_SECRET_LENGTH, scrub


def test_the_shortest_secret_that_is_masked_has_four_characters():
    assert MIN_SECRET_LENGTH == 4
    assert scrub("pin 7Qx2 accepted", "7Qx2") == "pin *** accepted"
    # three characters would mask ordinary words: left as they are
    assert scrub("the cat sat", "cat") == "the cat sat"


def test_a_secret_is_masked_without_its_surrounding_whitespace():
    assert scrub("bad key Zq81-local given", "  Zq81-local\n") == "bad key *** given"


def test_a_missing_or_empty_secret_masks_nothing():
    text = "XXXX, xxxx and an empty '' stay"
    assert scrub(text, None) == text
    assert scrub(text, "") == text
    assert scrub(text, None, "", "   ") == text


def test_every_given_secret_is_masked_everywhere():
    assert scrub("k1=alpha9 k2=beta77 again alpha9", "alpha9", "beta77") == "k1=*** k2=*** again ***"


def test_provider_key_shapes_are_masked_without_being_given():
    assert scrub("key sk-proj-Ab12Cd34Ef56 refused") == "key *** refused"
    assert scrub("token hf_ABCDEFGHIJKLMNOP1234 used") == "token *** used"
    assert scrub("tgp_v1_abcdefghijklmnop0 failed") == "*** failed"
    assert scrub("Authorization: Bearer abc.DEF-123_xyz=") == "Authorization: Bearer ***"
    # too short for a key, or part of a longer word: left alone
    assert scrub("sk-1234567 and task-abcdefghijkl") == "sk-1234567 and task-abcdefghijkl"


@pytest.mark.parametrize(("limit", "expected"), [
    (None, "error: key *** was refused"),
    (0, ""),
    (3, "err"),
    (14, "error: key ***"),  # cut after masking: the mask is whole, no piece of the key shows
    (100, "error: key *** was refused"),
])
def test_limit_cuts_the_masked_text(limit, expected):
    assert scrub("error: key sk-abcdefghijklmnop was refused", limit=limit) == expected


def test_a_limit_that_falls_inside_a_key_shows_none_of_it():
    text = "x sk-abcdefghijklmnop"
    for limit in range(len(text) + 1):
        assert "sk-" not in scrub(text, limit=limit) and "abc" not in scrub(text, limit=limit)


def test_any_value_is_turned_into_text_first():
    assert scrub(ValueError("bad key my-secret-123"), "my-secret-123") == "bad key ***"
    assert scrub(12345) == "12345"
    assert MASK == "***"
