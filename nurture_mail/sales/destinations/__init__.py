"""Notification destinations of a handoff, chosen by configuration (``SALES_DESTINATIONS``).

Each module holds one :class:`~.base.Destination`: ``email`` (the rep's email) and ``webhook``
(the dossier posted as signed JSON). :func:`prepare_notices` asks every configured destination
that takes a kind of notice what its job needs; ``jobs.sales`` runs them by name.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ...config import ConfigError
from ...models import Handoff
from .base import KINDS, Destination, Notice
from .email import EmailDestination
from .webhook import WebhookDestination

if TYPE_CHECKING:
    from ...extensions import Services

__all__ = ["KINDS", "REGISTRY", "Destination", "Notice", "configured", "destination", "prepare_notices"]

REGISTRY: dict[str, type[Destination]] = {cls.name: cls for cls in (EmailDestination, WebhookDestination)}


def destination(svc: "Services", name: str) -> Destination:
    """The destination registered as ``name``."""
    try:
        return REGISTRY[name](svc)
    except KeyError:
        raise ValueError(f"unknown notification destination {name!r} (known: {', '.join(REGISTRY)})") from None


def configured(svc: "Services") -> list[Destination]:
    """The destinations ``SALES_DESTINATIONS`` lists whose settings are complete, in that order."""
    unknown = [name for name in svc.config.sales_destinations if name not in REGISTRY]
    if unknown:
        raise ConfigError(f"SALES_DESTINATIONS: unknown destination {unknown[0]!r} (known: {', '.join(REGISTRY)})")
    found = (REGISTRY[name](svc) for name in svc.config.sales_destinations)
    return [target for target in found if target.enabled()]


def prepare_notices(svc: "Services", session: Session, handoff: Handoff, now: datetime, kind: str = "new",
                    rep_id: int | None = None) -> list[tuple[str, Notice]]:
    """``(destination name, notice)`` of each configured destination that takes ``kind``, its
    records added to ``session``: the caller enqueues them once its transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"notification kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    notices = []
    for target in configured(svc):
        if kind in target.kinds:
            notice = target.prepare(session, handoff, Notice(handoff.id, kind, rep_id), now)
            if notice is not None:
                notices.append((target.name, notice))
    return notices
