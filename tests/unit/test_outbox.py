"""The outbox with a real SQLite store: a row whose claim expired while its worker was still busy
is not sent twice (the claim is renewed atomically right before each send)."""
from __future__ import annotations

import threading
import time

from alerts.outbox import Outbox, Target
from state.models import DeliveryRecord
from state.store import Store


class SlowTarget(Target):
    """A real Target whose sending is slow; it records what it was asked to send."""

    def __init__(self, name: str, sent: list, lock: threading.Lock):
        super().__init__(name, "json://127.0.0.1:9/unused")
        self.sent, self.lock = sent, lock

    def send(self, msg, key: str = "") -> str:
        time.sleep(0.4)
        with self.lock:
            self.sent.append(msg.title)
        return ""


def test_expired_claims_are_not_sent_twice(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/g.db")
    with store.session() as s:
        for i in range(6):
            # rows sent one by one (health rows would go as one message): a row without a change
            s.add(DeliveryRecord(kind="change", target="t", title=f"t{i}", body="b"))
    sent: list[str] = []
    lock = threading.Lock()
    # a claim of 1 s, sends of 0.4 s: a batch outlives its claim, and a second worker comes by
    workers = [Outbox(store, [SlowTarget("t", sent, lock)], claim_seconds=1.0) for _ in range(2)]
    for w, name in zip(workers, ("a", "b")):
        w.worker = name
    threads = [threading.Thread(target=w.deliver_due) for w in workers]
    threads[0].start()
    time.sleep(1.2)
    threads[1].start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(sent) == [f"t{i}" for i in range(6)], sent
    with store.session() as s:
        assert {r.status for r in s.query(DeliveryRecord).all()} == {"sent"}
