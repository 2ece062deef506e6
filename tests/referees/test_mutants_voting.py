"""The public arena's voting rules against referees worked out apart from the code: the cases that mutation
testing showed untested (`tools/mutation.py ftassist/arena/limits.py ftassist/arena/voters.py`). Station level
only (no app, no database): the clock is passed in, the binomial tail is checked against exact fractions and
scipy, the cookie and the stored hashes against their documented formats, computed here with hmac directly.

Why the formats are pinned: a cookie already in a voter's browser, an account's voter id and an address hash
already stored with votes must keep meaning the same voter after the app restarts or is updated, or every
limit that looks back over stored votes (daily caps, one-sided days) starts from nothing.

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- _sign 8, 9: `rstrip(None)` / `lstrip("=")` instead of `rstrip("=")`: 18 bytes are 24 base64 characters,
  with no padding to strip and never a leading "=" or a space.
- hash_address 19: `strict=None` is falsy, as `strict=False` is.
- load_secret 13, 16: the mode the key file is created with (the default 0o777 less the umask, or 0o601)
  shows only in the instant before the check below it makes the file 0o600 (a race no test can hold
  open); the final mode is asserted. 19, 22, 26, 31, 33: the key is hex digits, the same bytes in ASCII,
  "ASCII" or the locale's encoding. 28: `token_hex(None)` is 32 bytes, the default, as asked.
- verify 3, 4: the length guard only keeps long junk from being split and hashed; a cookie this server
  signed is always 60 characters (v1, 32 hex digits, 24 signature characters), so 199, 200 or 201 as the
  cut-off refuses no valid cookie and admits no invalid one.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import math
import os
import stat
import time
from fractions import Fraction

import pytest
from scipy import stats

from ftassist.arena import limits, voters

SECRET = b"s" * 64
VOTER = "0123456789abcdef0123456789abcdef"


# -- referees -----------------------------------------------------------------------------------------------
def exact_tail(k: int, n: int, p: Fraction) -> Fraction:
    """P(X >= k), X ~ Binomial(n, p), in exact fractions."""
    return sum((Fraction(math.comb(n, i)) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)),
               Fraction(0))


def crowd_rate(wins: int, n: int, high: float) -> float:
    """The other voters' rate for a model: add-one smoothed (Laplace), then kept within [0.25, high]."""
    rate = (wins + 1) / (n + 2)
    return 0.25 if rate < 0.25 else high if rate > high else rate


def referee_one_sided(k: int, n: int, crowd_wins: int, crowd_n: int, *, min_votes: int, share: float,
                      alpha: float, high: float) -> bool:
    if n < 1 or n < min_votes or k < share * n:
        return False
    return stats.binom.sf(k - 1, n, crowd_rate(crowd_wins, crowd_n, high)) < alpha


def cookie_signature(secret: bytes, voter_id: str) -> str:
    """18 bytes of HMAC-SHA256 over "voter:<id>", URL-safe base64 without padding (24 characters)."""
    mac = hmac.new(secret, b"voter:" + voter_id.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode()


def address_key_hash(secret: bytes, key: str) -> str:
    return hmac.new(secret, b"address:" + key.encode(), hashlib.sha256).hexdigest()[:32]


# -- the binomial tail --------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [Fraction(1, 10), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(9, 10)])
def test_the_binomial_tail_is_the_exact_sum_for_small_counts(p):
    for n in range(0, 25):
        for k in range(-1, n + 2):
            got = limits.binomial_tail(k, n, float(p))
            assert got == pytest.approx(float(exact_tail(k, n, p)), rel=1e-9, abs=1e-300), (k, n, p)
            assert 0.0 <= got <= 1.0, (k, n, p, got)  # rounding never takes a probability past 1


def test_the_binomial_tail_matches_scipy_for_a_days_votes():
    for k, n, p in [(2600, 3000, 0.75), (1700, 3000, 0.5), (400, 1000, 0.25), (900, 1000, 0.9), (5, 4000, 0.01)]:
        assert limits.binomial_tail(k, n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), rel=1e-7), (k, n, p)


def test_the_binomial_tail_at_its_edges():
    assert limits.binomial_tail(0, 5, 0.0) == 1.0  # at least nothing: certain, whatever p
    assert limits.binomial_tail(-3, 5, 0.3) == 1.0
    assert limits.binomial_tail(1, 5, 0.0) == 0.0
    assert limits.binomial_tail(3, 5, 1.0) == 1.0 and limits.binomial_tail(5, 5, 1.0) == 1.0
    assert limits.binomial_tail(6, 5, 1.0) == 0.0
    # a rate outside [0, 1] is read as its nearest end
    assert limits.binomial_tail(2, 5, 1.7) == 1.0
    assert limits.binomial_tail(2, 5, -0.4) == 0.0
    assert limits.binomial_tail(1, 1, 0.5) == pytest.approx(0.5)


# -- one-sided bursts and days --------------------------------------------------------------------------------
CROWDS = [(0, 0), (0, 40), (10, 20), (14, 20), (40, 40), (3, 100), (70, 100), (95, 100)]


@pytest.mark.parametrize("alpha", [0.001, 0.02, 0.2])
def test_one_sided_bursts_follow_the_smoothed_clamped_crowd_rate(alpha):
    rules = limits.VotingRules(burst_min_votes=4, burst_share=0.8, burst_alpha=alpha)
    for n in range(0, 16):
        for k in range(0, n + 1):
            for wins, crowd_n in CROWDS:
                expected = referee_one_sided(k, n, wins, crowd_n, min_votes=4, share=0.8, alpha=alpha, high=0.75)
                assert limits.one_sided_burst(k, n, wins, crowd_n, rules) == expected, (k, n, wins, crowd_n)


@pytest.mark.parametrize("alpha", [0.0001, 0.01, 0.3])
def test_one_sided_days_follow_the_smoothed_clamped_crowd_rate(alpha):
    rules = limits.VotingRules(daily_min_votes=5, daily_share=0.7, daily_alpha=alpha)
    for n in range(0, 40, 3):
        for k in range(0, n + 1):
            for wins, crowd_n in CROWDS:
                expected = referee_one_sided(k, n, wins, crowd_n, min_votes=5, share=0.7, alpha=alpha, high=0.9)
                assert limits.one_sided_day(k, n, wins, crowd_n, rules) == expected, (k, n, wins, crowd_n)


def test_the_default_shares_and_alphas():
    """Nine of ten for one model is a burst when the crowd is against it (at 90%); eight of ten is not."""
    rules = limits.VotingRules(burst_min_votes=10, daily_min_votes=20)
    assert limits.one_sided_burst(9, 10, 0, 100, rules)  # P = 30 x 0.25^9 x 0.75 + ... ~ 3e-5 < 0.001
    assert not limits.one_sided_burst(8, 10, 0, 100, rules)
    assert not limits.one_sided_burst(9, 9, 0, 100, rules)  # too few
    # the day: 17 of 20 is 85%; against a crowd at 25% its tail is ~ 1e-8 < 0.0001
    assert limits.one_sided_day(17, 20, 0, 100, rules)
    assert not limits.one_sided_day(16, 20, 0, 100, rules)
    assert not limits.one_sided_day(19, 19, 0, 100, rules)
    # both alphas are strict: a p-value equal to alpha is not below it
    tail = limits.binomial_tail(9, 10, 0.25)
    assert not limits.one_sided_burst(9, 10, 0, 100, dataclasses.replace(rules, burst_alpha=tail))
    assert limits.one_sided_burst(9, 10, 0, 100, dataclasses.replace(rules, burst_alpha=math.nextafter(tail, 1)))
    tail = limits.binomial_tail(17, 20, 0.25)
    assert not limits.one_sided_day(17, 20, 0, 100, dataclasses.replace(rules, daily_alpha=tail))
    assert limits.one_sided_day(17, 20, 0, 100, dataclasses.replace(rules, daily_alpha=math.nextafter(tail, 1)))


def test_a_single_vote_can_be_judged_when_the_minimum_is_one_or_none():
    """`max(1, minimum)`: no votes are never a burst, one vote is judged once the minimum allows it."""
    for minimum in (0, 1):
        rules = limits.VotingRules(burst_min_votes=minimum, burst_alpha=0.5, daily_min_votes=minimum,
                                   daily_alpha=0.5)
        assert limits.one_sided_burst(1, 1, 0, 100, rules)  # 0.25 < 0.5
        assert limits.one_sided_day(1, 1, 0, 100, rules)
        assert not limits.one_sided_burst(0, 0, 0, 100, rules)
        assert not limits.one_sided_day(0, 0, 0, 100, rules)
    rules = limits.VotingRules(burst_min_votes=2, burst_alpha=0.5, daily_min_votes=2, daily_alpha=0.5)
    assert not limits.one_sided_burst(1, 1, 0, 100, rules) and not limits.one_sided_day(1, 1, 0, 100, rules)


# -- sliding windows ------------------------------------------------------------------------------------------
def test_a_window_counts_a_minute_and_says_how_long_to_wait():
    windows = limits.Windows()
    assert [windows.allow("a", 2, now=t) for t in (0.0, 10.0)] == [0.0, 0.0]
    assert windows.allow("a", 2, now=30.0) == pytest.approx(30.0)  # the event at 0 leaves at 60
    assert windows.allow("a", 2, now=59.5) == 1.0  # never less than a second
    assert windows.allow("b", 2, now=30.0) == 0.0  # keys are counted apart
    assert windows.allow("a", 2, now=60.0) == 0.0  # 60 s old: out of the window
    # the refusals at 30 and 59.5 counted nothing: the window holds 10 and 60
    assert windows.allow("a", 2, now=61.0) == pytest.approx(9.0)
    assert windows.allow("a", 3, now=61.0) == 0.0  # a higher limit lets one more in
    assert windows.allow("a", 3, now=62.0) == pytest.approx(8.0)


def test_no_limit_counts_nothing_and_reset_forgets():
    windows = limits.Windows()
    assert all(windows.allow("a", limit, now=1.0) == 0.0 for limit in (0, -1, 0, 0))
    assert windows.allow("a", 1, now=1.0) == 0.0  # the unlimited calls above left nothing behind
    assert windows.allow("a", 1, now=2.0) == pytest.approx(59.0)
    windows.reset()
    assert windows.allow("a", 1, now=2.0) == 0.0


def test_a_window_without_a_clock_reads_the_monotonic_one():
    windows = limits.Windows()
    assert windows.allow("a", 1) == 0.0
    wait = windows.allow("a", 1)
    assert 58.0 < wait <= 60.0
    assert windows.allow("a", 1, now=time.monotonic() + 61) == 0.0


def test_idle_keys_are_dropped_once_there_are_more_than_a_hundred_thousand():
    windows = limits.Windows()
    for i in range(99_998):
        windows.allow(f"gone-{i}", 5, now=0.0)
    windows.allow("recent", 5, now=0.0)
    windows.allow("recent", 5, now=30.0)  # first event as old as the gone ones, last one recent
    windows.allow("fresh", 5, now=60.0)  # the 100,000th key: the gone ones are idle by now, and stay
    assert len(windows._times) == 100_000  # not more than the bound yet: nothing dropped
    windows.allow("new", 5, now=60.0)  # the 100,001st key: every key idle for a minute goes
    assert sorted(windows._times) == ["fresh", "new", "recent"]
    assert list(windows._times["recent"]) == [0.0, 30.0]  # what stayed, stayed whole


# -- the settings ---------------------------------------------------------------------------------------------
def test_every_setting_reaches_its_rule(monkeypatch):
    settings = {"MIN_READ_SECONDS": "2.5", "VOTES_PER_MINUTE_PER_ADDRESS": "7.9", "ROUNDS_PER_MINUTE": "11",
                "ROUNDS_PER_MINUTE_PER_ADDRESS": "13.2", "BURST_WINDOW_SECONDS": "45.5", "BURST_MIN_VOTES": "5.7",
                "VOTES_PER_DAY_PER_VOTER": "17", "VOTES_PER_DAY_PER_ADDRESS": "19.99", "DAILY_MIN_VOTES": "23",
                "PROMPT_CALLS_PER_ADDRESS_PER_HOUR": "29.5", "PROMPT_CALLS_PER_DAY": "31",
                "SERVE_TTL_MINUTES": "2.5", "SKIP_TTL_DAYS": "0.5", "SIGN_IN": "Optional", "VOTER_PROMPTS": "never"}
    for name, value in settings.items():
        monkeypatch.setenv(f"FTASSIST_ARENA_{name}", value)
    rules = limits.VotingRules.from_environment()
    assert rules == limits.VotingRules(
        min_read_seconds=2.5, votes_per_minute_per_address=7, rounds_per_minute=11, rounds_per_minute_per_address=13,
        burst_window_seconds=45.5, burst_min_votes=5, votes_per_day_per_voter=17, votes_per_day_per_address=19,
        daily_min_votes=23, prompt_calls_per_address_per_hour=29, prompt_calls_per_day=31, serve_ttl_seconds=150.0,
        skip_ttl_seconds=43_200.0, sign_in="optional", voter_prompts="never")
    counts = [f.name for f in dataclasses.fields(rules) if f.type == "int"]
    assert len(counts) == 9 and all(type(getattr(rules, name)) is int for name in counts)


# -- who a voter is -------------------------------------------------------------------------------------------
def test_the_signing_key_is_64_hex_digits_and_kept(tmp_path):
    secret = voters.load_secret(tmp_path)
    assert len(secret) == 64 and int(secret, 16) >= 0
    (tmp_path / voters.SECRET_FILE).write_text("f" * 64)  # read once: the cached key holds for this process
    assert voters.load_secret(tmp_path) == secret
    other = tmp_path / "other"
    other.mkdir()
    assert voters.load_secret(other) != secret


def test_a_key_already_on_disk_is_read_and_made_private(tmp_path):
    (tmp_path / voters.SECRET_FILE).write_text("  " + "a" * 32 + "\n")
    os.chmod(tmp_path / voters.SECRET_FILE, 0o644)
    assert voters.load_secret(tmp_path) == b"a" * 32  # 32 characters are enough, surrounding space is not key
    assert stat.S_IMODE((tmp_path / voters.SECRET_FILE).stat().st_mode) == 0o600
    for mode in (0o640, 0o604, 0o660):
        folder = tmp_path / f"mode-{mode:o}"
        folder.mkdir()
        (folder / voters.SECRET_FILE).write_text("b" * 40)
        os.chmod(folder / voters.SECRET_FILE, mode)
        voters.load_secret(folder)
        assert stat.S_IMODE((folder / voters.SECRET_FILE).stat().st_mode) == 0o600, oct(mode)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / voters.SECRET_FILE).write_text("d" * 40)
    os.chmod(tmp_path / "owner" / voters.SECRET_FILE, 0o700)  # the owner's own bits are left alone
    voters.load_secret(tmp_path / "owner")
    assert stat.S_IMODE((tmp_path / "owner" / voters.SECRET_FILE).stat().st_mode) == 0o700


def test_a_short_key_is_refused_with_the_fix(tmp_path):
    path = tmp_path / voters.SECRET_FILE
    path.write_text("c" * 31)
    with pytest.raises(ValueError) as refused:
        voters.load_secret(tmp_path)
    assert str(refused.value) == (f"{path} is not a voter signing key (too short): delete it and restart the app "
                                  "(voters then get new ids).")


def test_the_cookie_format_is_stable():
    assert voters.issue(SECRET, VOTER) == f"v1.{VOTER}.{cookie_signature(SECRET, VOTER)}"
    fresh = voters.issue(SECRET)
    version, voter_id, signature = fresh.split(".")
    assert version == "v1" and len(voter_id) == 32 and int(voter_id, 16) >= 0 and voter_id == voter_id.lower()
    assert signature == cookie_signature(SECRET, voter_id) and len(signature) == 24
    assert voters.issue(SECRET) != fresh  # a new random id each time
    assert len(voters.new_voter_id()) == 32 and voters.new_voter_id() != voters.new_voter_id()
    for bad in (VOTER.upper(), VOTER[:-1], VOTER + "0", "g" * 32):
        with pytest.raises(ValueError) as refused:
            voters.issue(SECRET, bad)
        assert str(refused.value) == "A voter id is 32 lowercase hex digits."
    # a signature may end in any of its characters, 'X' included (only padding is stripped, and 18 bytes need none)
    ending_in_x = next(f"{i:032x}" for i in range(10_000) if cookie_signature(SECRET, f"{i:032x}").endswith("X"))
    assert voters.issue(SECRET, ending_in_x) == f"v1.{ending_in_x}.{cookie_signature(SECRET, ending_in_x)}"


def test_a_cookie_verifies_only_as_issued():
    assert voters.verify(SECRET, f"v1.{VOTER}.{cookie_signature(SECRET, VOTER)}") == VOTER
    signed_upper = f"v1.{VOTER.upper()}.{cookie_signature(SECRET, VOTER.upper())}"
    other_version = f"v2.{VOTER}.{cookie_signature(SECRET, VOTER)}"
    extra_part = f"v1.{VOTER}.{cookie_signature(SECRET, VOTER)}.x"
    other_purpose = f"v1.{VOTER}.{base64.urlsafe_b64encode(hmac.new(SECRET, VOTER.encode(), 'sha256').digest()[:18]).decode()}"
    for value in (signed_upper, other_version, extra_part, other_purpose, b"v1." + VOTER.encode(), 42):
        assert voters.verify(SECRET, value) is None, value


def test_an_account_is_a_stable_keyed_hash_of_its_lowercased_name():
    expected = "hf-" + hmac.new(SECRET, b"hf-user:alice", hashlib.sha256).hexdigest()[:32]
    assert voters.signed_in_voter(SECRET, " Alice ") == expected == voters.signed_in_voter(SECRET, "ALICE")
    assert voters.signed_in_voter(SECRET, "bob") != expected


def test_an_address_is_stored_as_a_stable_keyed_hash_of_its_network():
    assert voters.hash_address(SECRET, None) is None and voters.hash_address(SECRET, "") is None
    assert voters.hash_address(SECRET, " 203.0.113.7 ") == address_key_hash(SECRET, "203.0.113.7")
    # an IPv4 client seen through an IPv6 socket is the same client
    assert voters.hash_address(SECRET, "::ffff:203.0.113.7") == address_key_hash(SECRET, "203.0.113.7")
    # an IPv6 client is its /64
    assert voters.hash_address(SECRET, "2001:db8:1:2:3:4:5:6") == address_key_hash(SECRET, "2001:db8:1:2::/64")
    assert voters.hash_address(SECRET, "2001:db8:1:3::1") != voters.hash_address(SECRET, "2001:db8:1:2::1")
    # what is not an address (a test's label, a proxy's oddity) is keyed as written, at most 100 characters
    assert voters.hash_address(SECRET, " campus ") == address_key_hash(SECRET, "campus")
    long = "n" * 100
    assert voters.hash_address(SECRET, long + "-one") == voters.hash_address(SECRET, long + "-two") \
        == address_key_hash(SECRET, long)
    assert voters.hash_address(SECRET, "n" * 99 + "a") != voters.hash_address(SECRET, "n" * 99 + "b")


def test_the_client_is_the_entry_as_many_hops_from_the_right_as_there_are_trusted_proxies():
    forwarded = " 6.6.6.6 ,, 203.0.113.7 , "
    assert voters.client_address("10.0.0.1", forwarded, trusted_hops=1) == "203.0.113.7"  # blanks skipped
    assert voters.client_address("10.0.0.1", forwarded, trusted_hops=2) == "6.6.6.6"  # exactly as many entries
    assert voters.client_address("10.0.0.1", forwarded, trusted_hops=3) == "10.0.0.1"  # fewer: the peer
    assert voters.client_address("10.0.0.1", forwarded, trusted_hops=-1) == "10.0.0.1"
    assert voters.client_address("10.0.0.1", "", trusted_hops=1) == "10.0.0.1"
    assert voters.client_address(None, "6.6.6.6", trusted_hops=0) is None


def test_the_settings_table_lists_each_setting_its_default_and_what_it_sets(monkeypatch):
    from ftassist import config

    monkeypatch.setattr(config, "ARENA_LIMITS", {"min_read_seconds": (2.5, "reading time"),
                                                 "prompt_calls_per_day": (1000.0, "calls a day")})
    monkeypatch.setattr(config, "ARENA_CHOICES", {"sign_in": ("no", "maybe", "yes"), "voter_prompts": ("ask", "mute")})
    assert limits.settings_table().split("\n") == [
        "| Setting | Default | What it sets |",
        "| --- | --- | --- |",
        "| `FTASSIST_ARENA_MIN_READ_SECONDS` | 2.5 | reading time |",
        "| `FTASSIST_ARENA_PROMPT_CALLS_PER_DAY` | 1000 | calls a day |",
        "| `FTASSIST_ARENA_SIGN_IN` | no | no, maybe, yes: voters sign in with Hugging Face (a Space with "
        "`hf_oauth: true`, the arena served with `--arena-only`) |",
        "| `FTASSIST_ARENA_VOTER_PROMPTS` | ask | ask or mute: a voter's own question reaches other voters once the "
        "admin approves it, or never |",
        "| `FTASSIST_TRUSTED_PROXY_HOPS` | 0 (1 on a Space) | proxies in front of the app that append to "
        "X-Forwarded-For and are trusted to |",
    ]
