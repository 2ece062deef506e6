"""The voting rules of a public arena, and the counters that enforce them.

What a vote or round must respect (`VotingRules`, each a setting in `ftassist.config`):

- **reading time**: a vote cast sooner than `min_read_seconds` after the battle appeared is kept
  but flagged (nobody reads two answers in a second);
- **per-address limits**: rounds from one client address are refused past a rate; votes past
  theirs are kept but flagged. Throwaway sessions from one machine share the address;
- **one-sided bursts** (`one_sided_burst`): many decisive votes from one address or voter in a
  short window, nearly all for the same model, and far more than the other voters give that model,
  flag the whole burst. A voter who reads at a human pace and agrees with the crowd is not flagged;
- **daily caps** (after FastChat): votes past `votes_per_day_per_voter` from one voter, or past
  `votes_per_day_per_address` from one address, in the last 24 hours are kept but flagged;
- **one-sided days** (`one_sided_day`): a voter or address voting slowly, under every rate and outside
  any burst, whose decisive votes on one pair over the last 24 hours are far more one-sided than the
  other voters' on that pair (binomial test), has that day's votes for the favoured model flagged;
- **own prompts**: budgets of upstream model calls per address (hourly) and for everyone (daily),
  counted in the database so that they hold across restarts; voters' prompts reach other voters only
  once the admin approves them, or never.

Flagged votes stay stored with their reason and are left out of the ratings and the DPO export.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from ftassist import config

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
CALLS_PER_PROMPT = 2  # both models answer an own prompt


@dataclass(frozen=True)
class VotingRules:
    """The limits in force. `from_environment()` reads the settings; tests build their own."""

    min_read_seconds: float = config.ARENA_LIMITS["min_read_seconds"][0]
    votes_per_minute_per_address: int = int(config.ARENA_LIMITS["votes_per_minute_per_address"][0])
    rounds_per_minute: int = int(config.ARENA_LIMITS["rounds_per_minute"][0])
    rounds_per_minute_per_address: int = int(config.ARENA_LIMITS["rounds_per_minute_per_address"][0])
    burst_window_seconds: float = config.ARENA_LIMITS["burst_window_seconds"][0]
    burst_min_votes: int = int(config.ARENA_LIMITS["burst_min_votes"][0])
    burst_share: float = 0.9  # at least this share of the burst for one model
    burst_alpha: float = 0.001  # and this unlikely given the other voters' verdict on that model
    votes_per_day_per_voter: int = int(config.ARENA_LIMITS["votes_per_day_per_voter"][0])
    votes_per_day_per_address: int = int(config.ARENA_LIMITS["votes_per_day_per_address"][0])
    daily_min_votes: int = int(config.ARENA_LIMITS["daily_min_votes"][0])
    daily_share: float = 0.85  # the day's test: at least this share for one model of a pair
    daily_alpha: float = 0.0001  # and this unlikely given the other addresses' (or voters') verdict on that pair
    prompt_calls_per_address_per_hour: int = int(config.ARENA_LIMITS["prompt_calls_per_address_per_hour"][0])
    prompt_calls_per_day: int = int(config.ARENA_LIMITS["prompt_calls_per_day"][0])
    serve_ttl_seconds: float = config.ARENA_LIMITS["serve_ttl_minutes"][0] * 60
    skip_ttl_seconds: float = config.ARENA_LIMITS["skip_ttl_days"][0] * DAY_S
    sign_in: str = "off"  # off | optional | required
    voter_prompts: str = "review"  # review: shared once approved | never: never shown to others

    @classmethod
    def from_environment(cls) -> "VotingRules":
        """The rules as the settings say (a bad value raises ValueError with the fix)."""
        limit = config.arena_limit
        return cls(
            min_read_seconds=limit("min_read_seconds"),
            votes_per_minute_per_address=int(limit("votes_per_minute_per_address")),
            rounds_per_minute=int(limit("rounds_per_minute")),
            rounds_per_minute_per_address=int(limit("rounds_per_minute_per_address")),
            burst_window_seconds=limit("burst_window_seconds"),
            burst_min_votes=int(limit("burst_min_votes")),
            votes_per_day_per_voter=int(limit("votes_per_day_per_voter")),
            votes_per_day_per_address=int(limit("votes_per_day_per_address")),
            daily_min_votes=int(limit("daily_min_votes")),
            prompt_calls_per_address_per_hour=int(limit("prompt_calls_per_address_per_hour")),
            prompt_calls_per_day=int(limit("prompt_calls_per_day")),
            serve_ttl_seconds=limit("serve_ttl_minutes") * 60,
            skip_ttl_seconds=limit("skip_ttl_days") * DAY_S,
            sign_in=config.arena_choice("sign_in"),
            voter_prompts=config.arena_choice("voter_prompts"),
        )


class Windows:
    """Sliding one-minute windows of counted events per key (in memory: the app is one process)."""

    def __init__(self) -> None:
        self._times: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str, per_minute: int, now: float | None = None) -> float:
        """Count one event for `key` and return 0 when it is within `per_minute` (0: no limit);
        else count nothing and return the seconds until one is allowed again."""
        if per_minute <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._times[key]
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= per_minute:
                return max(1.0, 60 - (now - times[0]))
            times.append(now)
            if len(self._times) > 100_000:  # keys of voters long gone: drop the idle ones
                for stale in [k for k, t in self._times.items() if not t or now - t[-1] >= 60]:
                    del self._times[stale]
            return 0.0

    def reset(self) -> None:
        with self._lock:
            self._times.clear()


windows = Windows()


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space so that a day's thousands of votes do not
    overflow (no scipy: this runs on every vote)."""
    p = min(max(p, 0.0), 1.0)
    if k <= 0:
        return 1.0
    if k > n or p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def one_sided_burst(k: int, n: int, crowd_wins: int, crowd_n: int, rules: VotingRules) -> bool:
    """Whether `k` wins for one model out of the `n` recent decisive votes on it from one address or voter
    is a one-sided burst: enough votes, nearly all for that model, and unlikely given how often the other
    voters pick it (their rate, smoothed and kept within [0.25, 0.75], so that neither a lone stuffer with
    no crowd to compare with nor a crowd that agrees with them makes a burst look ordinary)."""
    if n < max(1, rules.burst_min_votes) or k < rules.burst_share * n:
        return False
    crowd_rate = min(0.75, max(0.25, (crowd_wins + 1) / (crowd_n + 2)))
    return binomial_tail(k, n, crowd_rate) < rules.burst_alpha


def one_sided_day(k: int, n: int, crowd_wins: int, crowd_n: int, rules: VotingRules) -> bool:
    """Whether `k` wins for one model of a pair out of the `n` decisive votes on that pair from one address
    or voter over the last day is far more one-sided than the other voters' verdict on the pair: enough
    votes, at least `daily_share` for that model, and unlikely (below `daily_alpha`) at the others' rate.

    The others' rate is smoothed and kept within [0.25, 0.9]: with no one to compare with, half; a model the
    crowd picks every time still leaves room to tell a stuffer (hundreds of votes, all one way) from a fan."""
    if n < max(1, rules.daily_min_votes) or k < rules.daily_share * n:
        return False
    crowd_rate = min(0.9, max(0.25, (crowd_wins + 1) / (crowd_n + 2)))
    return binomial_tail(k, n, crowd_rate) < rules.daily_alpha


def settings_table() -> str:
    """The public arena's settings as a Markdown table, defaults from `config` (README.md holds a copy between
    its `arena-settings` markers; tests/arena/test_settings_doc.py keeps the two equal)."""
    rows = [f"| `FTASSIST_ARENA_{name.upper()}` | {default:g} | {what} |"
            for name, (default, what) in config.ARENA_LIMITS.items()]
    sign_in, prompts = config.ARENA_CHOICES["sign_in"], config.ARENA_CHOICES["voter_prompts"]
    rows.append(f"| `FTASSIST_ARENA_SIGN_IN` | {sign_in[0]} | {', '.join(sign_in)}: voters sign in with Hugging Face "
                "(a Space with `hf_oauth: true`, the arena served with `--arena-only`) |")
    rows.append(f"| `FTASSIST_ARENA_VOTER_PROMPTS` | {prompts[0]} | {' or '.join(prompts)}: a voter's own question "
                "reaches other voters once the admin approves it, or never |")
    rows.append("| `FTASSIST_TRUSTED_PROXY_HOPS` | 0 (1 on a Space) | proxies in front of the app that append to "
                "X-Forwarded-For and are trusted to |")
    return "\n".join(["| Setting | Default | What it sets |", "| --- | --- | --- |", *rows])
