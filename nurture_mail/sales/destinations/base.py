"""The contract every notification destination keeps (rep email, signed webhook, and later
Slack or Teams): a new destination is a new module with one :class:`Destination` subclass,
registered by name in ``destinations/__init__.py`` and turned on by ``SALES_DESTINATIONS``."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rq import Retry
from sqlalchemy.orm import Session

from ...models import Handoff

if TYPE_CHECKING:
    from ...extensions import Services

__all__ = ["KINDS", "Destination", "Notice"]

#: Why a handoff is notified: created (``new``), SLA missed (``escalation``), ownership window
#: over (``transfer``).
KINDS = ("new", "escalation", "transfer")


@dataclass(frozen=True)
class Notice:
    """One notification of one handoff, as a destination's job receives it."""

    handoff_id: int
    kind: str = "new"
    #: Who is told (escalation: the manager; transfer: the territory owner); None: the handoff's rep.
    rep_id: int | None = None
    #: The destination's own record of this notice, when it keeps one (a webhook delivery row).
    ref: int | None = None

    def job_args(self) -> tuple[int, str, int | None, int | None]:
        return self.handoff_id, self.kind, self.rep_id, self.ref


class Destination(ABC):
    """Where handoff notifications go. Two steps: :meth:`prepare` in the transaction that makes
    the handoff (or escalates it), and :meth:`notify` in the RQ job enqueued after that commit."""

    #: The name ``SALES_DESTINATIONS`` lists and jobs carry.
    name: ClassVar[str]
    #: The notice kinds this destination is told about.
    kinds: ClassVar[frozenset[str]] = frozenset({"new"})

    def __init__(self, svc: "Services") -> None:
        self.svc = svc

    def enabled(self) -> bool:
        """Whether its settings are complete (a webhook needs its URL)."""
        return True

    @property
    @abstractmethod
    def max_attempts(self) -> int:
        """Attempts of one notice, the first included (RQ retries with backoff)."""

    @property
    @abstractmethod
    def job_timeout(self) -> int:
        """Seconds one attempt may take."""

    def job_options(self) -> dict[str, Any]:
        """RQ options of this destination's job: its timeout and its retry policy (RETRY_BACKOFF_SECONDS
        doubled at each retry; no retry when ``max_attempts`` is 1)."""
        retries = max(self.max_attempts - 1, 0)
        base = self.svc.config.retry_backoff_seconds
        retry = Retry(max=retries, interval=[base * 2 ** i for i in range(retries)]) if retries else None
        return {"job_timeout": self.job_timeout, "result_ttl": 3600, "retry": retry}

    def prepare(self, session: Session, handoff: Handoff, notice: Notice, now: datetime) -> Notice | None:
        """Record what the job will need, in the caller's transaction; None: nothing to send."""
        return notice

    @abstractmethod
    def notify(self, notice: Notice) -> Any:
        """One attempt, safe to run twice; raises to have RQ try again. Returns a dataclass report."""
