"""Whether the Hugging Face Hub can be reached from here, asked in seconds.

The Hub clients retry a failed connection for half a minute (backoff 1+2+4+8+8 s); offline, every
estimate for a Hub model or fetch of a Hub dataset would wait that long before saying so. One TCP
connection to the endpoint's host answers the same question at once.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse


def hub_offline() -> bool:
    """The person said so: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def client_offline() -> bool:
    """Whether the Hub client itself is in offline mode (it read HF_HUB_OFFLINE once, at import): then it
    answers from its cache and never touches the network, so there is nothing to probe."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host accepts a TCP connection within `timeout`: the endpoint the Hub clients will
    call (huggingface_hub reads HF_ENDPOINT once, at import), so the probe and the download agree."""
    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT or "https://huggingface.co")
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False
