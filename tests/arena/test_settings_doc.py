"""README.md's table of the public arena's settings is the one the code generates from its defaults, so the
two cannot drift apart: a setting added, renamed or given a new default fails here until README.md follows."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ftassist import config
from ftassist.arena import limits

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- arena-settings:start[^>]*-->\n(.*?)\n<!-- arena-settings:end -->", text, re.S)
    assert found, "README.md lost its arena-settings markers"
    return found.group(1)


def test_the_readme_lists_every_arena_setting_with_its_default():
    table = _readme_table()
    assert table == limits.settings_table(), ("README.md's arena settings differ from the code's; paste this "
                                              "between the markers:\n" + limits.settings_table())
    for name, (default, _) in config.ARENA_LIMITS.items():
        assert f"| `FTASSIST_ARENA_{name.upper()}` | {default:g} |" in table
    for name, choices in config.ARENA_CHOICES.items():
        assert f"| `FTASSIST_ARENA_{name.upper()}` | {choices[0]} |" in table
    assert "`FTASSIST_TRUSTED_PROXY_HOPS` | 0 (1 on a Space) |" in table


def test_the_documented_defaults_are_the_rules_in_force(monkeypatch):
    for key in [k for k in os.environ if k.startswith("FTASSIST_ARENA_") or k == "FTASSIST_TRUSTED_PROXY_HOPS"]:
        monkeypatch.delenv(key)
    monkeypatch.delenv("SPACE_ID", raising=False)
    rules = limits.VotingRules.from_environment()
    for name, (default, _) in config.ARENA_LIMITS.items():
        value = {"serve_ttl_minutes": rules.serve_ttl_seconds / 60,
                 "skip_ttl_days": rules.skip_ttl_seconds / limits.DAY_S}.get(name, getattr(rules, name, None))
        assert value == default, name
    assert (rules.sign_in, rules.voter_prompts) == ("off", "review")
    assert config.trusted_proxy_hops() == 0
    monkeypatch.setenv("SPACE_ID", "someone/arena")
    assert config.trusted_proxy_hops() == 1
