"""Start one RQ worker on the app's queue: ``python worker.py [--burst]``."""
import sys

from nurture_mail import create_app
from nurture_mail.runtime import configure_logging, run_worker

if __name__ == "__main__":
    configure_logging()
    run_worker(create_app(), burst="--burst" in sys.argv[1:])
