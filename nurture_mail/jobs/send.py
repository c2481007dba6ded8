"""RQ job: send one batch of deliveries."""
from __future__ import annotations

from dataclasses import asdict

from .. import services
from ..nurture.send import send_batch as _send_batch


def send_batch(delivery_ids: list[int]) -> dict:
    """Claim, render and send the given deliveries; returns the batch counts."""
    return asdict(_send_batch(services(), delivery_ids))
