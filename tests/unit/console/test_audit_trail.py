"""How the console words the audit service's answer: the worst finding first."""

from __future__ import annotations

from services.common.protos.alama.audit.v1 import audit_pb2
from services.console.audit_trail import verdict_of


def _response(**chain: object) -> audit_pb2.GetTrailResponse:
    response = audit_pb2.GetTrailResponse(
        application_id="a-1",
        events=[audit_pb2.AuditedEvent(seq=s) for s in (4, 7)],
        chain=audit_pb2.ChainStatus(start_seq=1, head_seq=9, **chain),  # type: ignore[arg-type]
    )
    response.chain.prefix_verified_at.GetCurrentTime()
    return response


def test_verified_broken_and_partial_are_told_apart() -> None:
    verified = verdict_of(
        _response(scope=audit_pb2.VERIFICATION_SCOPE_CHAIN, ok=True, verified_through_seq=9)
    )
    assert verified.state == "verified" and "seq 7" in verified.headline
    broken = verdict_of(
        _response(
            scope=audit_pb2.VERIFICATION_SCOPE_CHAIN,
            ok=False,
            first_broken_seq=4,
            reason="row_hash does not match the row's content (row altered)",
        )
    )
    assert broken.state == "broken" and broken.headline.startswith("Broken at record 4")
    partial = verdict_of(
        _response(scope=audit_pb2.VERIFICATION_SCOPE_RECORDS, ok=True, verified_through_seq=2)
    )
    assert partial.state == "partial" and "through seq 2" in partial.headline


def test_an_anchor_that_disagrees_with_the_database_is_a_break() -> None:
    response = _response(scope=audit_pb2.VERIFICATION_SCOPE_CHAIN, ok=True)
    response.chain.latest_anchor.CopyFrom(
        audit_pb2.Anchor(seq=9, row_hash="ab", sealed=True, matches_chain=False)
    )
    verdict = verdict_of(response)
    assert verdict.state == "broken" and "anchor (seq 9)" in verdict.headline
    response.chain.ClearField("latest_anchor")
    response.chain.anchor_note = "no anchor in this server's anchor file yet"
    assert any("No anchor to compare" in line for line in verdict_of(response).details)
