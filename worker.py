"""Start one RQ worker on the app's queue: ``python worker.py [--burst]`` (as ``python -m
nurture_mail worker``: the worker's own light start, see nurture_mail/worker.py)."""
import gc
import sys

import click

from nurture_mail.runtime import configure_logging, run_worker
from nurture_mail.worker import make_worker_app

if __name__ == "__main__":
    try:
        app = make_worker_app()
    except click.ClickException as exc:  # the database is not ready: one line, exit 1
        exc.show()
        sys.exit(exc.exit_code)
    configure_logging()
    gc.freeze()
    run_worker(app, burst="--burst" in sys.argv[1:])
