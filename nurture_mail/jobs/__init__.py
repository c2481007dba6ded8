"""The functions RQ runs: thin, each takes ids, loads what it needs, and is safe to run twice.

They find their app through ``current_app``: the worker that runs them (``worker.py``,
``python -m nurture_mail worker``) pushes an app context; none is created at import time.
"""
