"""The profile summary: py-spy's raw stacks turned into self and inclusive shares."""

from __future__ import annotations

from bench.profile_services import frame_label, heaviest


def test_self_and_inclusive_shares_are_counted_per_frame_not_per_line() -> None:
    raw = "\n".join(
        [
            "run (asyncio/runners.py:118);score (services/gateway/routes/scores.py:40) 6",
            "run (asyncio/runners.py:118);score (services/gateway/routes/scores.py:52) 2",
            "run (asyncio/runners.py:118) 2",
            "garbage line",
        ]
    )
    profile = heaviest(raw)
    assert profile["samples"] == 10
    assert profile["self"] == [
        ("score (services/gateway/routes/scores.py)", 0.8),
        ("run (asyncio/runners.py)", 0.2),
    ]
    assert profile["inclusive_services"] == [("score (services/gateway/routes/scores.py)", 0.8)]
    assert frame_label("f (a/b.py:12)") == "f (a/b.py)" and frame_label("<idle>") == "<idle>"
    assert heaviest("")["samples"] == 0
