"""Keys out of every text a person or a log will see.

Why one module: an error from an SDK or an endpoint may echo the key it was given (a 401 body,
a URL with `?key=`), and the text then travels to the UI, the CLI, DuckDB and the events files.
Every place that shows such a text passes it through `scrub` first, with the secrets it knows
of; shapes that look like keys of the providers we talk to are masked even when not given.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# OpenAI (sk-, sk-proj-), Hugging Face (hf_), Together (tgp_v1_...), and bearer headers.
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-[A-Za-z0-9_\-]{8,}|hf_[A-Za-z0-9]{16,}|tgp_v1_[A-Za-z0-9_\-]{16,})"
    r"|(?<=Bearer )[A-Za-z0-9_\-\.=]{8,}",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 4  # shorter strings would mask ordinary words


def scrub(text: Any, *secrets: str | None, limit: int | None = None) -> str:
    """`text` with each given secret and anything shaped like a provider key replaced by '***'.

    `limit` cuts the result (after masking, so a key split by the cut is never half shown).
    """
    out = str(text)
    for secret in secrets:
        secret = (secret or "").strip()
        if len(secret) >= MIN_SECRET_LENGTH:
            out = out.replace(secret, MASK)
    out = _KEY_SHAPES.sub(MASK, out)
    return out if limit is None else out[:limit]
