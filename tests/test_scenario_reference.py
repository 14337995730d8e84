"""The scenario reference (docs/scenario_reference.md) is derived from the code and kept true.

Every field reachable from ``rl.Scenario`` must be described in its class docstring, a numeric
interval a docstring states must be the one the validator enforces, and the generated reference
must be current (regenerate with ``PYTHONPATH=tests python -m scenario_reference --write``).
"""

from __future__ import annotations

import scenario_reference as ref


def test_every_field_is_documented() -> None:
    missing = ref.undocumented()
    assert not missing, f"describe these fields in their class docstrings: {missing}"


def test_documented_ranges_are_the_validated_ranges() -> None:
    wrong = ref.range_mismatches()
    assert not wrong, "docstring ranges disagree with the validator:\n" + "\n".join(wrong)


def test_range_parser_reads_intervals() -> None:
    assert ref.parse_range("seconds, in (0, 1e6]; 0 is none") == ("(", 0.0, 1e6, "]")
    assert ref.parse_range("in [initial, 1e6]") is None  # symbolic bound: not compared
    assert ref.parse_range("in [0, 2**64 - 1]") == ("[", 0.0, 2.0**64 - 1, "]")


def test_reference_is_current() -> None:
    assert ref.OUT.exists(), "generate docs/scenario_reference.md"
    assert ref.OUT.read_text() == ref.render(), (
        "docs/scenario_reference.md is stale: PYTHONPATH=tests python -m scenario_reference --write"
    )
