"""Alert delivery for a configuration: the outbox with its targets, and one delivery pass
(used by `check`, by the scheduler's cycle and by its delivery job)."""
from __future__ import annotations

from alerts import outbox
from alerts.outbox import Outbox, Target
from monitor import subscriptions
from monitor.records import iso
from state.models import ChangeRecord, DeliveryRecord


def build_outbox(cfg, store) -> Outbox:
    targets = [Target(t.name, t.url.get_secret_value(), t.max_attempts) for t in cfg.notify + cfg.health_notify]
    targets += [Target(name, url) for name, url in subscriptions.all_targets(store, cfg.subscriptions)]
    health_names = {t.name for t in cfg.health_notify}

    def on_give_up(target: str, change_id, error: str) -> None:
        """A delivery given up is loud: the operator's health targets hear of it."""
        if target in health_names:
            return  # the operator's own channel failing cannot be reported through itself
        with store.session() as s:
            for t in cfg.health_notify:
                s.add(DeliveryRecord(kind="health", target=t.name, title=f"govwatch: alert for change {change_id} to {target} given up",
                                     body=f"Delivery of change {change_id} to target `{target}` failed for good: {error[:400]}"))

    quiet = {t.name: (t.quiet_hours, t.timezone or cfg.display_timezone) for t in cfg.notify + cfg.health_notify if t.quiet_hours}
    return Outbox(store, targets, source_names={s.id: s.display_name for s in cfg.sources}, public_url=cfg.public_url,
                  on_give_up=on_give_up, claim_seconds=cfg.scheduler.delivery_claim, quiet=quiet)


def deliver(cfg, store, *, retry_now: bool = False):
    if retry_now:
        outbox.retry_now(store)
    return build_outbox(cfg, store).deliver_due()


STATES = ("pending", "sending", "sent", "retrying", "failed")


def delivery_list(store, state: str | None = None, limit: int | None = None) -> list[dict]:
    """The outbox, newest first (optionally one state): what `govwatch deliveries` shows."""
    from sqlalchemy import select

    q = (select(DeliveryRecord, ChangeRecord).outerjoin(ChangeRecord, ChangeRecord.id == DeliveryRecord.change_id)
         .order_by(DeliveryRecord.id.desc()))
    if state:
        q = q.where(DeliveryRecord.status == state)
    if limit:
        q = q.limit(limit)
    with store.session() as s:
        rows = s.execute(q).all()
    return [{"id": d.id, "kind": d.kind, "change_id": d.change_id, "source_id": c.source_id if c else "",
             "title": (c.title or c.url) if c else d.title, "target": d.target, "status": d.status, "attempts": d.attempts,
             "created_at": iso(d.created_at), "next_try_at": iso(d.next_try_at) if d.status in ("pending", "retrying") else "",
             "sent_at": iso(d.sent_at), "last_error": d.last_error} for d, c in rows]
