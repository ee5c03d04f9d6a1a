"""Alert delivery for a configuration: the outbox with its targets, and one delivery pass
(used by `check`, by the scheduler's cycle and by its delivery job)."""
from __future__ import annotations

from alerts import outbox
from alerts.outbox import Outbox, Target
from state.models import DeliveryRecord


def build_outbox(cfg, store) -> Outbox:
    targets = [Target(t.name, t.url.get_secret_value(), t.max_attempts) for t in cfg.notify + cfg.health_notify]
    health_names = {t.name for t in cfg.health_notify}

    def on_give_up(target: str, change_id, error: str) -> None:
        """A delivery given up is loud: the operator's health targets hear of it."""
        if target in health_names:
            return  # the operator's own channel failing cannot be reported through itself
        with store.session() as s:
            for t in cfg.health_notify:
                s.add(DeliveryRecord(kind="health", target=t.name, title=f"govwatch: alert for change {change_id} to {target} given up",
                                     body=f"Delivery of change {change_id} to target `{target}` failed for good: {error[:400]}"))

    return Outbox(store, targets, source_names={s.id: s.display_name for s in cfg.sources}, public_url=cfg.public_url,
                  on_give_up=on_give_up, claim_seconds=cfg.scheduler.delivery_claim)


def deliver(cfg, store, *, retry_now: bool = False):
    if retry_now:
        outbox.retry_now(store)
    return build_outbox(cfg, store).deliver_due()
