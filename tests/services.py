"""Where the test services are, and what to do when one is missing.

In CI (`CI` set) a missing service fails its tests; on a laptop it skips only them,
and the session ends with a loud summary line (see conftest).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "CONVEYOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

IN_CI = bool(os.environ.get("CI"))
missing: set[str] = set()
_reachable: dict[str, bool] = {}


def reachable(url: str, default_port: int) -> bool:
    if url not in _reachable:
        parts = urlsplit(url if "://" in url else f"tcp://{url}")
        try:
            with socket.create_connection((parts.hostname, parts.port or default_port), 2):
                _reachable[url] = True
        except OSError:
            _reachable[url] = False
    return _reachable[url]


def require(name: str, url: str, default_port: int) -> None:
    if reachable(url, default_port):
        return
    missing.add(name)
    message = f"{name} is not reachable at {url}"
    if IN_CI:
        pytest.fail(f"{message} (CI: a missing service is a failure)")
    pytest.skip(message)
