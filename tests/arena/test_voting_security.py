"""A public arena that cannot be rigged: each attack an outsider can make, refused or flagged.

The first part holds the rules to hand-made cases (the station and the use cases, with the clock
passed in); the second attacks the real app (`python app.py --arena-only`) over HTTP as an outsider
does, with many fresh sessions from one address, and asks the app itself (its socket) what counted.
"""

from __future__ import annotations

import dataclasses
import stat
import sys
from pathlib import Path

import pytest

from ftassist.arena import battles, limits, voters
from ftassist.usecases import arena as arena_cases
from ftassist.usecases.context import UseCaseError

sys.path.insert(0, str(Path(__file__).parent))

RULES = limits.VotingRules(min_read_seconds=3, votes_per_minute_per_address=1000, rounds_per_minute=1000,
                           rounds_per_minute_per_address=1000)


@pytest.fixture(autouse=True)
def _fresh_windows():
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = 1000
    limits.windows.reset()
    yield
    for limiter in (battles.rate_limiter, battles.prompt_limiter):
        limiter.reset()
        limiter.per_minute = None
    limits.windows.reset()


def _register(store, *ids):
    for model_id in ids:
        store.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES (?, 'hf', ?, '{}')",
                      [model_id, model_id.title()])


def _battles(store, n, a="kappa", b="omega"):
    return [battles.add_battle(store, f"question {i}", a, b, f"first answer {i}", f"second answer {i}")
            for i in range(n)]


def _vote_for(store, voter, model, *, address=None, rules=RULES, now=1000.0, read=10.0):
    """Serve `voter` a battle at `now` and vote for `model` `read` seconds later; the Reveal, or None."""
    view = battles.next_battle(store, voter, address=address, rules=rules, now=now)
    if view is None:
        return None
    (model_a, swapped), = store.query_rows(
        "SELECT b.model_a, s.swapped FROM battle_serves s JOIN battles b ON b.id = s.battle_id WHERE s.token = ?",
        [view.token])
    left_is_model = (model_a == model) != bool(swapped)
    return battles.vote(store, view.token, voter, "A" if left_is_model else "B", address=address, rules=rules,
                        now=now + read)


def _counted(store) -> int:
    from ftassist.arena import ratings

    return len(ratings.votes_frame(store))


# -- who a voter is ------------------------------------------------------------------------------------
def test_the_signing_key_is_made_once_private_and_a_tampered_cookie_does_not_verify(tmp_path):
    secret = voters.load_secret(tmp_path)
    path = tmp_path / voters.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert voters.load_secret(tmp_path) == secret == path.read_text().strip().encode()
    cookie = voters.issue(secret)
    voter = voters.verify(secret, cookie)
    assert voter and voter in cookie and secret.decode() not in cookie
    head, signature = cookie.rsplit(".", 1)
    tampered = [head + "." + ("A" if signature[0] != "A" else "B") + signature[1:],
                cookie.replace(voter, "0" * 32), "v1." + "1" * 32 + ".", "", None, "x" * 500]
    for value in tampered:
        assert voters.verify(secret, value) is None, value
    assert voters.verify(b"another key" * 4, cookie) is None
    # a Hugging Face account is a keyed hash of its name, never the name
    account = voters.signed_in_voter(secret, "Alice")
    assert account == voters.signed_in_voter(secret, "alice") and "alice" not in account


def test_the_address_comes_from_x_forwarded_for_only_as_far_as_trusted_proxies_append_it():
    assert voters.client_address("10.0.0.1", "6.6.6.6", trusted_hops=0) == "10.0.0.1"  # not trusted: ignored
    # one trusted proxy appends the client it saw; what the client wrote itself lies further left
    assert voters.client_address("10.0.0.1", "6.6.6.6, 203.0.113.7", trusted_hops=1) == "203.0.113.7"
    assert voters.client_address("10.0.0.1", "6.6.6.6, 203.0.113.7, 10.0.0.2", trusted_hops=2) == "203.0.113.7"
    assert voters.client_address("10.0.0.1", None, trusted_hops=1) == "10.0.0.1"
    secret = b"k" * 32
    # an IPv6 client is one address for its whole /64; the stored form is a hash
    one, two = (voters.hash_address(secret, a) for a in ("2001:db8::1", "2001:db8::ffff:1"))
    assert one == two and "2001" not in one
    assert voters.hash_address(secret, "203.0.113.7") != voters.hash_address(secret, "203.0.113.8")


# -- reading time, address rate, bursts -----------------------------------------------------------------
def test_a_vote_before_the_reading_time_is_kept_flagged_and_left_out(store):
    _register(store, "kappa", "omega")
    _battles(store, 2)
    fast = _vote_for(store, "quick", "omega", read=0.4)
    assert fast.flagged and "does not count" in fast.message and "read both answers" in fast.message
    slow = _vote_for(store, "quick", "omega", read=3.5)
    assert not slow.flagged and slow.message == "Thanks, your vote is recorded."
    reasons = [r for (r,) in store.query_rows("SELECT flagged_reason FROM votes ORDER BY voted_epoch, ts")]
    assert len(reasons) == 2 and reasons.count(None) == 1
    assert any(r and r.startswith("too fast: voted 0.4 s after") for r in reasons)
    assert _counted(store) == 1


def test_votes_past_the_address_rate_count_no_more(store):
    _register(store, "kappa", "omega")
    _battles(store, 5)
    rules = dataclasses.replace(RULES, votes_per_minute_per_address=3, burst_min_votes=1000)
    reveals = [_vote_for(store, f"throwaway-{i}", "kappa" if i % 2 else "omega", address="one-nat", rules=rules)
               for i in range(5)]
    assert [r.flagged for r in reveals] == [False, False, False, True, True]
    assert "too many votes are coming from your network" in reveals[-1].message
    assert _counted(store) == 3


def test_a_one_sided_burst_from_one_address_is_flagged_whole(store):
    _register(store, "kappa", "omega")
    _battles(store, 20)
    for i in range(12):  # twelve throwaway voters behind one address, all for omega, a few seconds apart
        _vote_for(store, f"throwaway-{i}", "omega", address="attacker", now=1000.0 + 5 * i)
    reasons = [r for (r,) in store.query_rows("SELECT flagged_reason FROM votes")]
    assert len(reasons) == 12 and all(r and r.startswith("one-sided burst: ") for r in reasons), reasons
    assert _counted(store) == 0


def test_voters_who_agree_with_the_crowd_or_take_their_time_are_not_flagged(store):
    _register(store, "kappa", "omega")
    _battles(store, 40)
    # the crowd: 30 voters on their own addresses, omega wins 80%
    for i in range(30):
        _vote_for(store, f"crowd-{i}", "omega" if i % 5 else "kappa", address=f"home-{i}", now=1000.0 + i)
    # an honest fan reads fast and prefers omega 10 times out of 10 in 80 s: the crowd's view, no burst
    for i in range(10):
        reveal = _vote_for(store, "fan", "omega", address="fan-home", now=2000.0 + 8 * i, read=6)
        assert not reveal.flagged, reveal.message
    # ... and the same ten picks spread over an hour from one address are no burst either
    for i in range(10):
        reveal = _vote_for(store, "patient", "kappa", address="patient-home", now=5000.0 + 400 * i)
        assert not reveal.flagged, reveal.message
    assert _counted(store) == 50


def _crowd(store, favoured, other, n, share, start=100.0):
    """`n` voters, each on an address of their own, `share` of them for `favoured`."""
    for i in range(n):
        pick = favoured if i < round(n * share) else other
        _vote_for(store, f"crowd-{i}", pick, address=f"home-{i}", now=start + i)


def test_a_slow_stuffer_for_the_crowds_favourite_is_flagged_over_the_day(store):
    _register(store, "kappa", "omega")
    _battles(store, 60)
    _crowd(store, "omega", "kappa", 40, 0.75)  # most voters already prefer omega
    # one address, a throwaway voter each time, one vote every 10 s (6 a minute): no rate, no burst
    reveals = [_vote_for(store, f"slow-{i}", "omega", address="slow-nat", now=10_000.0 + 10 * i) for i in range(45)]
    assert not any(r.flagged for r in reveals[:29])  # too few to judge yet ...
    flagged_at = next(i for i, r in enumerate(reveals) if r.flagged)
    assert 29 <= flagged_at < 45 and "far more one-sided than other voters'" in reveals[flagged_at].message
    reasons = [r for (r,) in store.query_rows("SELECT flagged_reason FROM votes WHERE address_hash = 'slow-nat'")]
    assert all(r and r.startswith("one-sided day: ") for r in reasons), reasons  # ... then the whole day goes
    assert not any("burst" in r for r in reasons)
    assert _counted(store) == 40
    # a fan of the crowd's favourite who votes a dozen times a day is no stuffer
    for i in range(12):
        assert not _vote_for(store, "fan", "omega", address="fan-home", now=20_000.0 + 300 * i).flagged


def test_an_honest_address_with_mixed_votes_is_not_flagged_over_the_day(store):
    _register(store, "kappa", "omega")
    _battles(store, 80)
    _crowd(store, "omega", "kappa", 20, 0.75)
    # a campus behind one address: sixty voters, mostly for omega as the crowd is, a vote a minute
    reveals = [_vote_for(store, f"student-{i}", "omega" if i % 4 else "kappa", address="campus",
                         now=10_000.0 + 60 * i) for i in range(60)]
    assert not any(r.flagged for r in reveals), [r.message for r in reveals if r.flagged][:1]


def test_daily_caps_keep_votes_past_them_flagged(store):
    _register(store, "kappa", "omega")
    _battles(store, 12)
    rules = dataclasses.replace(RULES, votes_per_day_per_voter=4, votes_per_day_per_address=6, burst_min_votes=1000,
                                daily_min_votes=1000)
    one = [_vote_for(store, "keen", "kappa" if i % 2 else "omega", address="keen-home", rules=rules,
                     now=1000.0 + 60 * i) for i in range(6)]
    assert [r.flagged for r in one] == [False] * 4 + [True] * 2
    assert "come back tomorrow" in one[-1].message
    # throwaway voters from one address: six count, then the address's cap
    many = [_vote_for(store, f"nat-{i}", "kappa" if i % 2 else "omega", address="nat", rules=rules,
                      now=1000.0 + 60 * i) for i in range(8)]
    assert [r.flagged for r in many] == [False] * 6 + [True] * 2
    reasons = {r for (r,) in store.query_rows("SELECT flagged_reason FROM votes WHERE flagged_reason IS NOT NULL")}
    assert reasons == {"daily cap: over 4 counted votes in a day from one voter",
                       "daily cap: over 6 counted votes in a day from one address"}
    # a day later the caps are fresh
    assert not _vote_for(store, "keen", "omega", address="keen-home", rules=rules, now=1000.0 + limits.DAY_S + 1).flagged
    assert _counted(store) == 4 + 6 + 1


def test_the_binomial_tail_holds_for_a_days_votes():
    assert limits.binomial_tail(3, 5, 0.5) == pytest.approx(0.5)
    assert limits.binomial_tail(20, 20, 0.75) == pytest.approx(0.75**20)
    assert limits.binomial_tail(1500, 3000, 0.5) == pytest.approx(0.5073, abs=1e-3)  # no overflow
    assert limits.binomial_tail(0, 10, 0.3) == 1.0 and limits.binomial_tail(11, 10, 0.3) == 0.0


# -- the logs stay bounded -------------------------------------------------------------------------------
def test_serves_and_skips_stay_bounded_over_many_anonymous_rounds(store):
    _register(store, "kappa", "omega")
    _battles(store, 3)
    rules = dataclasses.replace(RULES, serve_ttl_seconds=60, skip_ttl_seconds=120, min_read_seconds=0)
    kept = _vote_for(store, "voter-who-voted", "omega", rules=rules, now=0.0)
    assert kept is not None
    sizes = []
    for i in range(600):  # one anonymous round a second, never voted on, every fifth one skipped
        now = 1.0 + i
        view = battles.next_battle(store, f"anon-{i}", rules=rules, now=now)
        if i % 5 == 0:
            battles.skip(store, view.token, f"anon-{i}", now=now)
        sizes.append(store.query_rows("SELECT (SELECT count(*) FROM battle_serves), (SELECT count(*) FROM battle_skips)")[0])
    serves, skips = max(s for s, _ in sizes), max(k for _, k in sizes)
    assert serves <= 60 + 6 + 1 + 1  # a minute of rounds, the compaction's step, the voted serve
    assert skips <= (120 + 6) // 5 + 1
    # what votes need stays: the vote, and its serve (a second click still says "already voted")
    assert store.query_rows("SELECT count(*) FROM votes") == [(1,)]
    (token,), = store.query_rows("SELECT s.token FROM battle_serves s JOIN votes v ON v.voter = s.voter")
    assert battles.vote(store, token, "voter-who-voted", "A").already_voted


# -- voters' own prompts -----------------------------------------------------------------------------------
def _fake_generate(calls):
    def generate(store, model_id, prompts, sampling=None):
        calls.append(model_id)
        return [{"text": f"answer number {len(calls)} to {p}", "sampling": {}} for p in prompts]

    return generate


def test_own_prompts_spend_budgets_per_address_and_for_everyone(store, monkeypatch):
    from ftassist.arena import models as arena_models

    calls = []
    monkeypatch.setattr(arena_models, "generate", _fake_generate(calls))
    rules = dataclasses.replace(RULES, prompt_calls_per_address_per_hour=4, prompt_calls_per_day=10)
    pair = ["kappa", "omega"]
    for i in range(2):
        battles.battle_for_prompt(store, f"mine {i}", f"v{i}", pair, address="nat", rules=rules, now=100.0 + i)
    with pytest.raises(battles.RateLimited, match="At most 2 own questions an hour from one network: try again in 59 min"):
        battles.battle_for_prompt(store, "more", "v9", pair, address="nat", rules=rules, now=200.0)
    for i in range(3):
        battles.battle_for_prompt(store, f"theirs {i}", f"w{i}", pair, address=f"home-{i}", rules=rules, now=300.0)
    with pytest.raises(battles.RateLimited, match="used today's budget"):
        battles.battle_for_prompt(store, "late", "w9", pair, address="home-9", rules=rules, now=400.0)
    assert len(calls) == 10  # refused requests called nobody
    # an hour later the address may ask again; a day later so may everyone
    battles.battle_for_prompt(store, "next day", "v0", pair, address="nat", rules=rules, now=500.0 + limits.DAY_S)
    off = dataclasses.replace(rules, prompt_calls_per_day=0)
    with pytest.raises(battles.RateLimited, match="turned off"):
        battles.battle_for_prompt(store, "q", "v0", pair, address="x", rules=off)


def test_an_own_prompt_is_served_to_nobody_else_and_counts_only_once_approved(store, monkeypatch, ctx):
    from ftassist.arena import models as arena_models

    monkeypatch.setattr(arena_models, "generate", _fake_generate([]))
    _register(store, "kappa", "omega")
    spam = battles.battle_for_prompt(store, "BUY CHEAP PILLS", "spammer", ["kappa", "omega"], rules=RULES, now=0.0)
    reveal = battles.vote(store, spam.token, "spammer", "A", rules=RULES, now=10.0)
    assert reveal.flagged and "once the arena's owner has reviewed it" in reveal.message
    assert _counted(store) == 0
    assert battles.next_battle(store, "someone-else", rules=RULES) is None  # the only battle is pending
    pending = arena_cases.voter_prompts(ctx).prompts
    assert [p["prompt"] for p in pending] == ["BUY CHEAP PILLS"] and pending[0]["votes"] == 1
    assert arena_cases.arena_counts(ctx).pending_prompts == 1

    kind = battles.battle_for_prompt(store, "What is a kind word?", "asker", ["kappa", "omega"], rules=RULES)
    kind_id = store.query_rows("SELECT battle_id FROM battle_serves WHERE token = ?", [kind.token])[0][0]
    spam_id = store.query_rows("SELECT battle_id FROM battle_serves WHERE token = ?", [spam.token])[0][0]
    battles.vote(store, kind.token, "asker", "B", rules=RULES, now=time_after(store, kind.token))
    reviewed = arena_cases.review_voter_prompt(ctx, kind_id, True)
    assert (reviewed.review, reviewed.votes_counted) == ("approved", 1)
    assert arena_cases.review_voter_prompt(ctx, spam_id, False).votes_counted == 0
    assert _counted(store) == 1
    served = battles.next_battle(store, "someone-else", rules=RULES)
    assert served.prompt == "What is a kind word?"
    assert battles.next_battle(store, "a-third", rules=dataclasses.replace(RULES, voter_prompts="never")) is None
    with pytest.raises(UseCaseError, match="No voter's prompt"):
        arena_cases.review_voter_prompt(ctx, "not-a-battle", True)


def time_after(store, token, seconds=10.0):
    return store.query_rows("SELECT served_epoch FROM battle_serves WHERE token = ?", [token])[0][0] + seconds


# -- the use cases: sign-in, settings, the leaderboard's count ---------------------------------------------
def test_sign_in_required_refuses_anonymous_voters_and_takes_signed_in_ones(ctx, store, monkeypatch):
    _register(store, "kappa", "omega")
    _battles(store, 1)
    monkeypatch.setenv("FTASSIST_ARENA_SIGN_IN", "required")
    for call in (lambda: arena_cases.next_battle(ctx, "anon"), lambda: arena_cases.vote(ctx, "t", "anon", "A"),
                 lambda: arena_cases.skip_battle(ctx, "anon"), lambda: arena_cases.ask_own_prompt(ctx, "q", "anon")):
        with pytest.raises(arena_cases.SignInRequired, match="sign in with Hugging Face"):
            call()
    assert store.query_rows("SELECT count(*) FROM battle_serves") == [(0,)]
    voter = voters.signed_in_voter(voters.load_secret(ctx.settings.data_dir), "alice")
    view = arena_cases.next_battle(ctx, voter, address="a", signed_in=True)
    assert arena_cases.vote(ctx, view.token, voter, "A", address="a", signed_in=True).model_a


def _through_guard(guard_app, path: str) -> int:
    """The status the guard (with a stand-in app behind it that answers 200 to everything) gives `GET path`."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": ("203.0.113.9", 1)}
    asyncio.run(guard_app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


async def _answers_everything(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_sign_in_routes_answer_only_on_the_voting_page_served_alone(monkeypatch, mode):
    from ftassist.ui import guard

    oauth = ["/login/huggingface", "/login/callback", "/logout"]
    monkeypatch.setenv("FTASSIST_ARENA_SIGN_IN", "off")
    alone = guard.Guard(_answers_everything, voting_prefix="")
    assert [_through_guard(alone, path) for path in oauth] == [404] * 3  # sealed: no sign-in asked for
    monkeypatch.setenv("FTASSIST_ARENA_SIGN_IN", mode)
    alone = guard.Guard(_answers_everything, voting_prefix="")
    assert [_through_guard(alone, path) for path in oauth] == [200] * 3
    assert _through_guard(alone, "/gradio_api/upload") == 404  # the rest stays sealed
    mounted = guard.Guard(_answers_everything, voting_prefix="/arena")
    assert [_through_guard(mounted, "/arena" + path) for path in oauth] == [404] * 3


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_the_full_app_refuses_to_start_with_sign_in_on(tmp_path, mode):
    """Hugging Face sends voters back to the root's /login/callback, which only the voting page served alone
    has: the full app says so in one line and does not start (nor touch the data dir's database)."""
    import subprocess

    from voting_http import ROOT as APP_ROOT
    from voting_http import _app_env

    home = tmp_path / "home"
    result = subprocess.run([sys.executable, "app.py", "--port", "9"], cwd=APP_ROOT, capture_output=True, text=True,
                            timeout=120, env=_app_env(home, {"FTASSIST_ARENA_SIGN_IN": mode}))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"ftassist: cannot start: FTASSIST_ARENA_SIGN_IN={mode} needs the voting page served alone: start it with "
        "`python app.py --arena-only` (or FTASSIST_ARENA_ONLY=1), or set FTASSIST_ARENA_SIGN_IN=off."]
    assert not (home / "ftassist.duckdb").exists()


def test_a_wrong_setting_is_refused_with_its_fix(ctx, monkeypatch):
    monkeypatch.setenv("FTASSIST_ARENA_MIN_READ_SECONDS", "soon")
    with pytest.raises(UseCaseError, match=r"FTASSIST_ARENA_MIN_READ_SECONDS='soon' is not a number.*=3"):
        arena_cases.next_battle(ctx, "v")
    monkeypatch.setenv("FTASSIST_ARENA_MIN_READ_SECONDS", "2")
    monkeypatch.setenv("FTASSIST_ARENA_SIGN_IN", "always")
    with pytest.raises(UseCaseError, match="not one of off, optional, required"):
        arena_cases.next_battle(ctx, "v")


def test_the_leaderboard_says_how_many_votes_it_left_out(ctx, store, monkeypatch):
    _register(store, "kappa", "omega")
    _battles(store, 3)
    monkeypatch.setenv("FTASSIST_ARENA_MIN_READ_SECONDS", "60")  # every vote below comes too fast
    for voter in ("v1", "v2"):
        view = arena_cases.next_battle(ctx, voter)
        assert arena_cases.vote(ctx, view.token, voter, "A").flagged
    board = arena_cases.leaderboard(ctx, rounds=0)
    assert (board.votes, board.flagged_votes) == (0, 2)
    assert arena_cases.arena_counts(ctx).flagged_votes == 2
    assert arena_cases.leaderboard_summary(ctx, rounds=0).flagged_votes == 2
    from ftassist.ui import leaderboard as leaderboard_tab

    assert "Left out: 2 flagged vote(s)" in leaderboard_tab.refresh(ctx, 0)[0]


# == the real app, attacked over HTTP =======================================================================
ATTACKER = "203.0.113.7"


@pytest.fixture(scope="module")
def llm():
    """The OpenAI stand-in both arena models answer from (it counts the upstream calls)."""
    from standins.openai_server import OpenAIStandIn

    with OpenAIStandIn(models=["kappa", "omega"]) as server:
        yield server


def _app(tmp_path_factory, llm, name, n_battles, env):
    from voting_http import start_app

    app = start_app(tmp_path_factory.mktemp(name) / "home", llm.base_url, n_battles, env)
    return app


@pytest.fixture(scope="module")
def proxy_app(tmp_path_factory, llm):
    """Behind one trusted proxy (as on a Space): the test plays the proxy and says which address each
    request came from. No reading time, so that the other rules are what stops the stuffing."""
    app = _app(tmp_path_factory, llm, "proxied", 30, {
        "FTASSIST_TRUSTED_PROXY_HOPS": "1", "FTASSIST_ARENA_MIN_READ_SECONDS": "0",
        "FTASSIST_ARENA_ROUNDS_PER_MINUTE": "1000", "FTASSIST_ARENA_ROUNDS_PER_MINUTE_PER_ADDRESS": "1000",
        "FTASSIST_ARENA_PROMPT_CALLS_PER_ADDRESS_PER_HOUR": "4", "FTASSIST_ARENA_PROMPT_CALLS_PER_DAY": "10"})
    yield app
    app.stop()


@pytest.fixture(scope="module")
def default_app(tmp_path_factory, llm):
    """The default settings (the e2e helpers turn the reading time off: here it is the default's 3 s again):
    clients reach the app directly, so X-Forwarded-For means nothing."""
    app = _app(tmp_path_factory, llm, "default", 4, {"FTASSIST_ARENA_MIN_READ_SECONDS": "3"})
    yield app
    app.stop()


def _ask_app(app, use_case: str, **arguments):
    """A use case answered by the running app itself (its socket, as the CLI does)."""
    from ftassist import app_socket
    from ftassist.usecases.context import Settings

    client = app_socket.connect(Settings(data_dir=app.home.resolve()))
    assert client is not None, app.log_tail()
    return client.call(use_case, arguments)


def _served_prompts(url: str, address: str) -> list[str]:
    """Every battle a fresh voter from `address` is served, skipping each, until none is left."""
    from voting_http import Browser

    session = Browser(url, forwarded_for=address).session()
    outcome, prompts = session.new_round(), []
    while outcome.prompt:
        prompts.append(outcome.prompt)
        assert len(prompts) <= 100
        outcome = session.skip()
    return prompts


def test_throwaway_sessions_from_one_address_cannot_stuff_the_ratings(proxy_app):
    from voting_http import STYLE, Browser

    stuffed = []
    for i in range(12):  # twelve fresh browser profiles (new cookie, new session), all from one address,
        # each writing a made-up address of its own into X-Forwarded-For, which the proxy appends to
        browser = Browser(proxy_app.url, forwarded_for=f"10.9.{i}.1, {ATTACKER}")
        session = browser.session()
        for _ in range(4):
            served = session.new_round()
            assert served.success and served.prompt, served.raw
            stuffed.append(session.vote(served.side_of(STYLE.strip()[-2:])))
        browser.close()
    assert all(vote.success for vote in stuffed)
    assert "does not count" in stuffed[-1].status and "one-sided votes" in stuffed[-1].status
    honest = []
    for j in range(3):  # three honest voters elsewhere, who like each side half the time
        session = Browser(proxy_app.url, forwarded_for=f"198.51.100.{j + 1}").session()
        for k in range(4):
            served = session.new_round()
            side = served.side_of(STYLE.strip()[-2:])
            honest.append(session.vote(side if k % 2 else {"a": "b", "b": "a"}[side]))
    assert all("does not count" not in vote.status for vote in honest), [v.status for v in honest]

    counts = _ask_app(proxy_app, "arena_counts")
    assert counts["votes"] == 48 + 12 and counts["flagged_votes"] == 48  # every vote kept, the stuffed flagged
    board = _ask_app(proxy_app, "leaderboard", rounds=0)
    assert (board["votes"], board["flagged_votes"]) == (12, 48)
    assert {row["model"]: row["win_rate"] for row in board["rows"]} == {"Kappa Seven": 0.5, "Omega Nine": 0.5}


@pytest.fixture(scope="module")
def daily_app(tmp_path_factory, llm):
    """Behind a trusted proxy, with small daily caps, and a burst window so short that no burst is ever seen:
    what stops a slow stuffer here is the day's test alone."""
    app = _app(tmp_path_factory, llm, "daily", 30, {
        "FTASSIST_TRUSTED_PROXY_HOPS": "1", "FTASSIST_ARENA_MIN_READ_SECONDS": "0",
        "FTASSIST_ARENA_ROUNDS_PER_MINUTE": "1000", "FTASSIST_ARENA_ROUNDS_PER_MINUTE_PER_ADDRESS": "1000",
        "FTASSIST_ARENA_VOTES_PER_MINUTE_PER_ADDRESS": "1000", "FTASSIST_ARENA_BURST_WINDOW_SECONDS": "0.01",
        "FTASSIST_ARENA_VOTES_PER_DAY_PER_VOTER": "5", "FTASSIST_ARENA_VOTES_PER_DAY_PER_ADDRESS": "45",
        "FTASSIST_ARENA_DAILY_MIN_VOTES": "20"})
    yield app
    app.stop()


def _vote_once(url: str, forwarded_for: str, for_styled: bool):
    """A throwaway browser profile's one vote: for the styled side (Omega Nine's) or against it."""
    from voting_http import STYLE, Browser

    browser = Browser(url, forwarded_for=forwarded_for)
    try:
        session = browser.session()
        served = session.new_round()
        assert served.success and served.prompt, served.raw
        side = served.side_of(STYLE.strip()[-2:])
        return session.vote(side if for_styled else {"a": "b", "b": "a"}[side])
    finally:
        browser.close()


def test_a_slow_stuffer_behind_one_address_is_flagged_over_the_day(daily_app):
    for i in range(16):  # the crowd, each on an address of its own: three in four prefer Omega Nine already
        assert "does not count" not in _vote_once(daily_app.url, f"198.51.100.{i + 1}", i % 4 != 0).status
    stuffed = [_vote_once(daily_app.url, f"10.7.{i}.1, 203.0.113.99", True) for i in range(40)]
    assert all(vote.success for vote in stuffed)
    assert "does not count" not in stuffed[0].status
    assert "far more one-sided than other" in stuffed[-1].status
    counts = _ask_app(daily_app, "arena_counts")
    assert counts["flagged_votes"] == 40  # the whole day's stuffing, the first votes too
    board = _ask_app(daily_app, "leaderboard", rounds=0)
    assert (board["votes"], board["flagged_votes"]) == (16, 40)
    assert {row["model"]: row["wins"] for row in board["rows"]} == {"Kappa Seven": 4, "Omega Nine": 12}


def test_daily_caps_hold_per_voter_and_per_address(daily_app):
    from voting_http import Browser

    before = _ask_app(daily_app, "arena_counts")["flagged_votes"]
    session = Browser(daily_app.url, forwarded_for="192.0.2.200").session()  # one browser, cookie kept
    votes = []
    for k in range(7):
        served = session.new_round()
        assert served.prompt, served.raw
        votes.append(session.vote("a" if k % 2 else "b"))
    assert ["does not count" in v.status for v in votes] == [False] * 5 + [True] * 2
    assert "come back tomorrow" in votes[-1].status
    # throwaway profiles behind one address, votes split evenly: 45 count, then the address's cap
    shared = [_vote_once(daily_app.url, f"10.8.{i}.1, 203.0.113.50", i % 2 == 0) for i in range(47)]
    assert ["does not count" in v.status for v in shared] == [False] * 45 + [True] * 2
    assert _ask_app(daily_app, "arena_counts")["flagged_votes"] - before == 2 + 2


def test_own_prompts_keep_to_their_budgets_and_reach_nobody_unapproved(proxy_app, llm):
    from voting_http import Browser

    before = len(llm.calls("POST", "/chat/completions"))
    answered, refused = [], []
    for i in range(5):  # throwaway sessions from one address: 2 questions an hour (4 calls)
        outcome = Browser(proxy_app.url, forwarded_for=f"10.1.1.{i}, {ATTACKER}").session().ask(f"SPAM {i}: buy now")
        (answered if outcome.prompt else refused).append(outcome)
    assert (len(answered), len(refused)) == (2, 3)
    assert all("own questions an hour from one network" in " ".join(o.warnings) for o in refused), refused[0].raw
    for i in range(5):  # one question each from five other addresses: the day's 10 calls run out after 3
        outcome = Browser(proxy_app.url, forwarded_for=f"192.0.2.{i + 1}").session().ask(f"SPAM from afar {i}")
        (answered if outcome.prompt else refused).append(outcome)
    assert (len(answered), len(refused)) == (5, 5)
    assert "used today's budget" in " ".join(refused[-1].warnings)
    assert len(llm.calls("POST", "/chat/completions")) - before == 10  # the budget, and not one call more

    asked = {o.prompt for o in answered}
    pending = {p["prompt"]: p["battle_id"] for p in _ask_app(proxy_app, "voter_prompts")["prompts"]}
    assert set(pending) == asked
    served = _served_prompts(proxy_app.url, "198.51.100.50")
    assert len(served) == 30 and not asked & set(served)  # every prepared battle, no voter's question
    approved, rejected = sorted(asked)[:2]
    _ask_app(proxy_app, "review_voter_prompt", battle_id=pending[approved], approve=True)
    _ask_app(proxy_app, "review_voter_prompt", battle_id=pending[rejected], approve=False)
    served = _served_prompts(proxy_app.url, "198.51.100.51")
    assert len(served) == 31 and asked & set(served) == {approved}


def test_a_vote_cast_before_the_reading_time_is_flagged(default_app):
    from voting_http import Browser

    session = Browser(default_app.url).session()
    served = session.new_round()
    assert served.prompt
    voted = session.vote("a")  # at once: nobody reads two answers this fast
    assert voted.success and "does not count" in voted.status and "read both answers" in voted.status
    assert "Model A** was" in voted.status  # the names are still revealed
    board = _ask_app(default_app, "leaderboard", rounds=0)
    assert board["votes"] == 0 and board["flagged_votes"] >= 1


def test_the_signed_cookie_keeps_a_voter_across_sessions_and_a_tampered_one_is_replaced(default_app):
    from voting_http import Browser

    browser = Browser(default_app.url)
    cookie_line = browser.page_response.headers["set-cookie"]
    assert cookie_line.startswith(voters.COOKIE_NAME + "=v1.") and "HttpOnly" in cookie_line
    secret_file = default_app.home / voters.SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert secret not in cookie_line and secret not in browser.get("/").text and secret not in str(browser.config)
    original = voters.verify(secret.encode(), browser.http.cookies[voters.COOKIE_NAME])
    assert original

    first = browser.session()
    for _ in range(4):  # vote on every battle there is
        served = first.new_round()
        assert served.prompt
        first.vote("b")
    assert first.new_round().prompt == ""
    # a new session (a reload, a new tab) of the same browser is the same voter: nothing left to vote on
    assert browser.session().new_round().prompt == ""

    value = browser.http.cookies[voters.COOKIE_NAME]
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
    browser.http.cookies.clear()
    browser.http.cookies.set(voters.COOKIE_NAME, tampered)
    assert browser.session().new_round().prompt  # not the voter it claims to be: a fresh identity
    reissued = browser.http.get(browser.url + "/").headers.get("set-cookie", "")
    fresh = reissued.split(";")[0].split("=", 1)[1]
    assert fresh != tampered and voters.verify(secret.encode(), fresh) not in (None, original)


def test_forged_forwarded_for_is_ignored_without_a_trusted_proxy(default_app, llm):
    from voting_http import Browser

    before = len(llm.calls("POST", "/chat/completions"))
    answered = 0
    for i in range(12):  # each throwaway session claims another address: all are 127.0.0.1 to the app
        outcome = Browser(default_app.url, forwarded_for=f"10.0.{i}.1").session().ask(f"Free question {i}?")
        answered += bool(outcome.prompt)
    assert answered == 10  # the default: 20 calls an hour from one address
    assert len(llm.calls("POST", "/chat/completions")) - before == 20


def test_sign_in_required_closes_voting_to_anonymous_voters(tmp_path_factory, llm):
    from voting_http import Browser

    app = _app(tmp_path_factory, llm, "sign-in", 2, {"FTASSIST_ARENA_SIGN_IN": "required"})
    upstream = len(llm.calls("POST", "/chat/completions"))
    try:
        browser = Browser(app.url)
        assert "sign-in is not set up here" in str(browser.config)  # no OAuth outside a Space: said plainly
        session = browser.session()
        served = session.new_round()
        assert served.success and served.prompt == "" and "sign in with Hugging Face" in served.status
        asked = session.ask("May I ask?")
        assert asked.prompt == "" and "sign in with Hugging Face" in " ".join(asked.warnings)
        assert session.vote("a").success
        assert _ask_app(app, "arena_counts")["votes"] == 0
        assert len(llm.calls("POST", "/chat/completions")) == upstream  # nobody was asked
    finally:
        app.stop()
