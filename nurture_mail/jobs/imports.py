"""RQ job: run one CSV lead import (queued by ``leads.imports.enqueue_import``)."""
from __future__ import annotations

from rq import get_current_job

from .. import services
from ..leads.imports import import_progress, run_import


def run_import_job(import_id: int) -> dict:
    """Import the stored file chunk by chunk, committing progress; a finished import does nothing.

    A failure on the job's last attempt (no RQ retry left) is final: the uploaded file is deleted.
    """
    job = get_current_job()
    final = job is None or not job.retries_left
    return import_progress(run_import(services(), import_id, final_attempt=final))
