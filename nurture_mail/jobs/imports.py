"""RQ job: run one CSV lead import (queued by ``leads.imports.enqueue_import``)."""
from __future__ import annotations

from .. import services
from ..leads.imports import import_progress, run_import


def run_import_job(import_id: int) -> dict:
    """Import the stored file chunk by chunk, committing progress; a finished import does nothing."""
    return import_progress(run_import(services(), import_id))
