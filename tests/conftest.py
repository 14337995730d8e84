"""Test-suite settings shared by every test module."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (seeded from each test's name): a CI run
# on a fresh machine then fails or passes as the last local run did, never by luck of the draw.
settings.register_profile("lab", derandomize=True)
settings.load_profile("lab")


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler for the test: what a Ctrl-C test presumes, whatever handler
    an earlier test in the process (an in-process server, say) left behind."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
