"""Sign in with Hugging Face, for real: the voting page served alone (`python app.py --arena-only`) with the
variables a Space sets for `hf_oauth: true`, its OpenID provider pointed at a local stand-in
(tests/standins/hf_oauth_server.py). Gradio's own sign-in routes and authlib then run the whole flow:
discovery, the redirect to the provider, the code for a token, the ID token's signature and nonce.

The test client keeps cookies as a browser does on http://127.0.0.1: Gradio's session cookie is `Secure`
(a Space is served over HTTPS), and browsers send `Secure` cookies to 127.0.0.1, a secure origin to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from ftassist.arena import voters

sys.path.insert(0, str(Path(__file__).parent))

N_BATTLES = 3
SPACE = {"SYSTEM": "spaces", "SPACE_ID": "someone/arena", "GRADIO_SERVER_NAME": "127.0.0.1",
         "FTASSIST_TRUSTED_PROXY_HOPS": "1", "FTASSIST_ARENA_MIN_READ_SECONDS": "0"}


@pytest.fixture(scope="module")
def provider():
    from standins.hf_oauth_server import HFOAuthStandIn

    with HFOAuthStandIn(users={"alice": "Alice Example", "bob": "Bob Example"}) as server:
        yield server


@pytest.fixture(scope="module")
def llm():
    from standins.openai_server import OpenAIStandIn

    with OpenAIStandIn(models=["kappa", "omega"]) as server:
        yield server


def _space_app(tmp_path_factory, provider, llm, sign_in: str):
    """The arena on a Space with OAuth on; the test plays the Space's proxy (it says each client's address)."""
    from voting_http import start_app

    return start_app(tmp_path_factory.mktemp(f"sign-in-{sign_in}") / "home", llm.base_url, N_BATTLES,
                     {**SPACE, **provider.space_env(), "FTASSIST_ARENA_SIGN_IN": sign_in})


def _as_a_browser_on_127_0_0_1(client: httpx.Client) -> None:
    """Browsers count http://127.0.0.1 as a secure origin and send it its `Secure` cookies; httpx sends
    them only over HTTPS, so once a response's cookies are stored, they are kept as not `Secure`."""
    def keep_secure_cookies(response: httpx.Response) -> None:
        for cookie in client.cookies.jar:
            cookie.secure = False

    client.event_hooks["response"] = [keep_secure_cookies]


def _visitor(app, address: str, user: str | None = None):
    """A fresh browser profile from `address`; signed in as `user` (the person at the provider) when given."""
    from voting_http import Browser

    browser = Browser(app.url, forwarded_for=address)
    browser.http.close()
    browser.http = httpx.Client(headers={"X-Forwarded-For": address}, timeout=60)
    _as_a_browser_on_127_0_0_1(browser.http)
    browser.get("/")  # the page, and with it the voter cookie
    if user:
        _sign_in(app, browser, user)
    return browser


def _sign_in(app, browser, user: str) -> None:
    """Sign this browser in as `user` through Gradio's routes and the provider (its voter cookie stays)."""
    browser.http.headers["X-Standin-User"] = user
    arrived = browser.http.get(browser.url + "/login/huggingface", params={"_target_url": "/"},
                               follow_redirects=True)
    assert arrived.status_code == 200 and str(arrived.url).rstrip("/") == browser.url, app.log_tail()
    hops = [str(r.url) for r in arrived.history]
    assert len(hops) == 3 and "/oauth/authorize?" in hops[1] and "/login/callback?" in hops[2], hops


def _ask_app(app, use_case: str, **arguments):
    from ftassist import app_socket
    from ftassist.usecases.context import Settings

    client = app_socket.connect(Settings(data_dir=app.home.resolve()))
    assert client is not None, app.log_tail()
    return client.call(use_case, arguments)


def _vote_on_everything(session) -> list:
    """Vote on each battle served until none is left; the outcomes of the votes, in order."""
    votes = []
    outcome = session.new_round()
    while outcome.prompt:
        assert len(votes) < N_BATTLES
        voted = session.vote("a")
        assert voted.success and "your vote is recorded" in voted.status, voted.raw
        votes.append(voted)
        outcome = session.new_round()
    assert "voted on every battle" in outcome.status
    return votes


def _voters_stored(app) -> set[str]:
    """The voter ids of the stored votes (read once the app has stopped and let go of its database)."""
    import duckdb

    app.stop()
    with duckdb.connect(str(app.home / "ftassist.duckdb"), read_only=True) as db:
        return {voter for (voter,) in db.execute("SELECT DISTINCT voter FROM votes").fetchall()}


def _secret(app) -> bytes:
    return (app.home / voters.SECRET_FILE).read_text().strip().encode()


def _counted_votes_per_battle(app) -> dict[str, int]:
    """How many votes that count (not flagged) each battle has, read from the stopped app's database."""
    import duckdb

    app.stop()
    with duckdb.connect(str(app.home / "ftassist.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT b.id, count(v.id) FROM battles b LEFT JOIN votes v ON v.battle_id = b.id"
                          " AND v.flagged_reason IS NULL GROUP BY b.id").fetchall()
    return dict(rows)


def test_sign_in_required_on_a_space_takes_accounts_not_cookies(tmp_path_factory, provider, llm):
    app = _space_app(tmp_path_factory, provider, llm, "required")
    try:
        anonymous = _visitor(app, "203.0.113.1")
        assert "Sign in with Hugging Face" in str(anonymous.config)  # the button, served with the page
        refused = anonymous.session().new_round()
        assert refused.success and refused.prompt == "" and "sign in with Hugging Face first" in refused.status
        assert _ask_app(app, "arena_counts")["voters"] == 0

        alice = _visitor(app, "203.0.113.2", "alice")
        assert provider.signed_in[-1:] == ["alice"] and provider.refusals == []
        assert len(_vote_on_everything(alice.session())) == N_BATTLES
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["voters"]) == (N_BATTLES, 1)

        # a session cookie the server did not sign is nobody: still refused
        forged = _visitor(app, "203.0.113.3")
        forged.http.cookies.set("session", alice.http.cookies["session"][:-4] + "AAAA", domain="127.0.0.1")
        assert "sign in with Hugging Face first" in forged.session().new_round().status

        # bob, from alice's very address, is another voter: every battle is his to vote on
        bob = _visitor(app, "203.0.113.2", "bob")
        assert len(_vote_on_everything(bob.session())) == N_BATTLES
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["voters"]) == (2 * N_BATTLES, 2)

        # alice again, in a fresh browser profile (a new voter cookie) from elsewhere: still alice, nothing left
        again = _visitor(app, "198.51.100.9", "alice")
        assert again.http.cookies[voters.COOKIE_NAME] != alice.http.cookies[voters.COOKIE_NAME]
        left = again.session().new_round()
        assert left.prompt == "" and "voted on every battle" in left.status
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["voters"]) == (2 * N_BATTLES, 2)

        # signing out makes the browser anonymous again
        again.http.get(again.url + "/logout", follow_redirects=True)
        assert "sign in with Hugging Face first" in again.session().new_round().status
        assert provider.signed_in[-3:] == ["alice", "bob", "alice"] and provider.refusals == []
    finally:
        app.stop()
    # each account is stored as a keyed hash of its stable id (the OpenID `sub`), never the id or the name
    secret = _secret(app)
    assert _voters_stored(app) == {voters.signed_in_voter(secret, "alice", provider.subs["alice"]),
                                   voters.signed_in_voter(secret, "bob", provider.subs["bob"])}


def test_sign_in_optional_counts_anonymous_voters_and_accounts_apart(tmp_path_factory, provider, llm):
    app = _space_app(tmp_path_factory, provider, llm, "optional")
    try:
        anonymous = _visitor(app, "203.0.113.4")
        assert "Sign in with Hugging Face" in str(anonymous.config)
        assert len(_vote_on_everything(anonymous.session())) == N_BATTLES  # no account needed
        alice = _visitor(app, "203.0.113.5", "alice")
        assert len(_vote_on_everything(alice.session())) == N_BATTLES
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["voters"]) == (2 * N_BATTLES, 2)
    finally:
        app.stop()
    stored = _voters_stored(app)
    assert voters.signed_in_voter(_secret(app), "alice", provider.subs["alice"]) in stored and len(stored) == 2


def test_a_renamed_account_is_the_same_voter(tmp_path_factory, provider, llm):
    app = _space_app(tmp_path_factory, provider, llm, "required")
    try:
        before = _visitor(app, "203.0.113.7", "alice")
        assert len(_vote_on_everything(before.session())) == N_BATTLES
        provider.rename("alice", "alicia")  # same account (same sub), new user name
        after = _visitor(app, "198.51.100.7", "alicia")
        assert provider.signed_in[-2:] == ["alice", "alicia"] and provider.refusals == []
        left = after.session().new_round()
        assert left.prompt == "" and "voted on every battle" in left.status
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["voters"]) == (N_BATTLES, 1)
    finally:
        app.stop()
        if "alicia" in provider.users:
            provider.rename("alicia", "alice")
    stored = _voters_stored(app)
    sub = provider.subs["alice"]
    assert stored == {voters.signed_in_voter(_secret(app), "alicia", sub)}
    assert not any(sub in voter or "ali" in voter for voter in stored)


def test_a_new_account_under_an_old_name_is_another_voter(tmp_path_factory, provider, llm):
    old_sub = provider.new_account("carol", "Carol Example")
    app = _space_app(tmp_path_factory, provider, llm, "required")
    try:
        first = _visitor(app, "203.0.113.8", "carol")
        assert len(_vote_on_everything(first.session())) == N_BATTLES
        # the first carol deletes her account (or renames it); someone else now signs up as carol
        new_sub = provider.new_account("carol", "Another Carol")
        second = _visitor(app, "198.51.100.8", "carol")
        assert provider.signed_in[-2:] == ["carol", "carol"] and provider.refusals == []
        assert len(_vote_on_everything(second.session())) == N_BATTLES  # nothing of the first carol's is hers
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["voters"]) == (2 * N_BATTLES, 2)
    finally:
        app.stop()
    secret = _secret(app)
    assert old_sub != new_sub
    assert _voters_stored(app) == {voters.signed_in_voter(secret, "carol", old_sub),
                                   voters.signed_in_voter(secret, "carol", new_sub)}


def test_sign_in_optional_one_browser_votes_once_per_battle_signed_in_or_not(tmp_path_factory, provider, llm):
    """The browser's anonymous voter and the account it signs in as are one person: a battle voted on one way
    is not served again the other way (and a vote on it, were one cast, is kept but flagged)."""
    app = _space_app(tmp_path_factory, provider, llm, "optional")
    try:
        browser = _visitor(app, "203.0.113.9")
        anonymous = _vote_on_everything(browser.session())
        assert len(anonymous) == N_BATTLES and not any("does not count" in v.status for v in anonymous)
        _sign_in(app, browser, "alice")  # the same browser, so the same voter cookie
        assert _vote_on_everything(browser.session()) == []  # signed in: nothing left this person has not voted on

        # the reverse: bob votes signed in, then signs out in the same browser and votes anonymously
        other = _visitor(app, "203.0.113.10", "bob")
        assert len(_vote_on_everything(other.session())) == N_BATTLES
        other.http.get(other.url + "/logout", follow_redirects=True)
        assert _vote_on_everything(other.session()) == []  # signed out, the same browser: the same person

        # another browser's anonymous voter is someone else: its votes count
        stranger = _visitor(app, "203.0.113.11")
        assert not any("does not count" in v.status for v in _vote_on_everything(stranger.session()))
        counts = _ask_app(app, "arena_counts")
        assert (counts["votes"], counts["flagged_votes"]) == (3 * N_BATTLES, 0)
    finally:
        app.stop()
    counted = _counted_votes_per_battle(app)  # one vote per person: the first browser, bob's, the stranger's
    assert len(counted) == N_BATTLES and set(counted.values()) == {3}


@pytest.mark.parametrize("missing", ["SYSTEM", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"])
def test_the_button_appears_only_where_gradio_really_signs_voters_in(monkeypatch, missing):
    """Off a Space Gradio would sign everyone in as the machine's own account, and with a variable missing it
    would not start: in both cases the page has no button (and `required` says voting is closed)."""
    from ftassist.ui import arena

    for name, value in {**SPACE, "OAUTH_CLIENT_ID": "i", "OAUTH_CLIENT_SECRET": "s", "OAUTH_SCOPES": "openid profile",
                        "OPENID_PROVIDER_URL": "https://huggingface.co"}.items():
        monkeypatch.setenv(name, value)
    assert arena._oauth_set_up()
    monkeypatch.delenv(missing)
    assert not arena._oauth_set_up()
