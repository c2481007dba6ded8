import sys

if sys.argv[1:2] == ["worker"]:
    # A worker's start is per process CPU: it loads its own command, not every command and the
    # web app they import (nurture_mail/worker.py). ``--help`` lists it with the others.
    from .worker import worker_command

    worker_command(args=sys.argv[2:], prog_name="python -m nurture_mail worker")
else:
    from .cli import main

    main(prog_name="python -m nurture_mail")
