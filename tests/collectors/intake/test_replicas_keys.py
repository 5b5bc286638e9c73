"""Two collectors (Store + Ingest each) on one PostgreSQL store: a key rotation one of them
records is in force for the other at once (docs/scaling.md, the audit's key history row)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from tests.collectors.intake.test_ingest_api import batch


def test_a_rotation_recorded_by_one_replica_holds_on_the_other(
    request: pytest.FixtureRequest, store_location: Callable[[str], Path | str]
) -> None:
    if request.config.getoption("--store") != "postgresql":
        pytest.skip("replicas share a PostgreSQL store: runs with --store=postgresql")
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    a, b = Store(store_location("shared")), Store(store_location("shared"))
    try:
        # Each replica enrols the agent's configured (old) key; only `a` sees the rotation.
        ia = Ingest(a, {"agent-1": old.public_key()}, max_bytes=1 << 20)
        ib = Ingest(b, {"agent-1": old.public_key()}, max_bytes=1 << 20)
        body1 = wire.encode_body(batch(1))
        out = ia(wire.envelope(body1, old, rotate_to=new.public_key()))
        assert out.status == 200 and out.body["status"] == "stored", out.body
        # Batch 2, signed with the announced key, reaches the other replica.
        out = ib(wire.seal(batch(2, wire.batch_hash(body1)), new))
        assert out.status == 200 and out.body["status"] == "stored", out.body
        # The old key no longer verifies there from seq 3 on.
        body2 = wire.encode_body(batch(2, wire.batch_hash(body1)))
        out = ib(wire.seal(batch(3, wire.batch_hash(body2)), old))
        assert out.status == 403 and out.body["reason"] == "bad_signature", out.body
        assert [r["seq"] for r in a.batches("agent-1")] == [1, 2]
    finally:
        a.close()
        b.close()
