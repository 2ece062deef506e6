"""Admin protection for public deployments.

When `FTASSIST_ADMIN_PASSWORD` is set, the full app (data, estimates, training, the arena's
owner tools) asks for a login; the arena-only voting page never does, so voters just vote.
The password is read from the environment at each login and never written anywhere.
"""

from __future__ import annotations

import hmac

from ftassist import config

AUTH_MESSAGE = ("This ftassist app is protected: log in as the admin (user name and the password set in "
                "FTASSIST_ADMIN_PASSWORD). Voters: the arena is open at /arena, no login needed.")


def auth_enabled() -> bool:
    return config.admin_password() is not None


def check_login(username: str, password: str) -> bool:
    """Gradio's `auth` callable: the admin user name and password, compared in constant time."""
    expected = config.admin_password()
    if expected is None:
        return True
    user_ok = hmac.compare_digest((username or "").strip().encode(), config.admin_user().encode())
    pass_ok = hmac.compare_digest((password or "").encode(), expected.encode())
    return user_ok and pass_ok


def gradio_auth():
    """What to pass as `auth=` to Gradio: None (open) or the login check."""
    return check_login if auth_enabled() else None
