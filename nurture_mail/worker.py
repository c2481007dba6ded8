"""A worker's own start: ``python -m nurture_mail worker [--count N]`` runs jobs, and pays only
for what running them needs.

Start-up is CPU an operator pays per process before the first email: through the full command
line and ``create_app``, a worker imported the web app, the API (flask-smorest, marshmallow),
every command, reports and scoring, about 1.6 s of CPU (docs/benchmarks.md). Here a worker
imports the send path and RQ; a job of another kind imports its own modules when it first runs.

A pool (``--count N``) imports all that once, then forks its workers: each starts warm, with
nothing to import or compile again, and a worker that dies is forked again from the same warm
parent. The parent opens no connection of its own before forking (services are lazy), so no
child shares a socket with another.
"""
from __future__ import annotations

import ast
import functools
import gc
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask

if TYPE_CHECKING:
    from .extensions import Database

log = logging.getLogger(__name__)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.option("--name", help="Worker name (default: host and pid).")
@click.option("--count", default=None,
              help="Run a pool of this many worker processes ('auto': one per core), each started again if it "
                   "dies. Without it, one worker in this process.")
def worker_command(burst: bool, name: str | None, count: str | None) -> None:
    """Run RQ worker(s) on the nurture queue; they wait out Redis and database restarts."""
    from .runtime import configure_logging, run_worker, worker_count

    workers = None
    if count is not None:
        try:
            workers = worker_count(count)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--count") from None
    # Checked before logging is set up: a database still to ``init`` gets its one line, not the
    # INFO lines Alembic logs as it loads.
    app = make_worker_app()
    configure_logging()
    if workers is not None:
        run_worker_pool(workers, app, burst=burst, name=name)
        return
    gc.freeze()
    run_worker(app, burst=burst, name=name)


def make_worker_app() -> Flask:
    """The app a worker runs jobs in; one ``Error:`` line when ``init`` is still to run."""
    from sqlalchemy.exc import OperationalError

    from . import create_worker_app

    app = create_worker_app()
    try:
        problem = _schema_problem(app.extensions["nurture"].db)
    except OperationalError as exc:  # the database itself cannot be reached
        problem = f"cannot reach the database: {str(exc.orig or exc).strip().splitlines()[0]}"
    if problem is not None:
        app.extensions["nurture"].close()
        raise click.ClickException(problem)
    return app


#: Alembic's scripts (as ``migrate.MIGRATIONS``, without importing Alembic).
VERSIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"
_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+)$", re.M)


def _schema_problem(database: Database) -> str | None:
    """``migrate.schema_problem``, with its common answer (ready) found without Alembic.

    Alembic loads every migration script to find the head (0.3 s of CPU per worker start);
    reading their ``revision`` lines finds it in a millisecond. Anything else (not initialised,
    behind, scripts this cannot read) gets Alembic's own answer.
    """
    from sqlalchemy import text

    heads = _script_heads()
    if heads:
        try:
            with database.engine.connect() as connection:
                current = {row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))}
        except Exception:  # no such table yet, or no database: Alembic's check says which
            current = set()
        if current == heads:
            return None
    from .migrate import schema_problem

    return schema_problem(database)


def _script_heads() -> set[str]:
    """Head revisions from the scripts' ``revision``/``down_revision`` lines; empty if unreadable."""
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        for script in VERSIONS.glob("*.py"):
            found = dict(_REVISION.findall(script.read_text(encoding="utf-8")))
            revision, parent = ast.literal_eval(found["revision"]), ast.literal_eval(found["down_revision"])
            if not isinstance(revision, str):
                return set()
            revisions.add(revision)
            parents.update([parent] if isinstance(parent, str) else parent or ())
    except (OSError, KeyError, ValueError, SyntaxError, TypeError):
        return set()
    return revisions - parents


def preload(burst: bool = False) -> None:
    """Import what every worker needs, once, before the pool forks."""
    import rq.worker  # noqa: F401
    from jinja2 import sandbox  # noqa: F401
    from sqlalchemy.orm import configure_mappers

    from .jobs import send  # noqa: F401

    # The ORM's mappers are configured by the first query of a process (45 ms): once here,
    # not in every child.
    configure_mappers()
    if not burst:  # ``run_worker`` starts the click drain, which each child would otherwise import
        from .tracking import ingest  # noqa: F401


def run_worker_pool(count: int, app: Flask, burst: bool = False, name: str | None = None) -> None:
    """``count`` workers forked from this warm process, each forked again if it dies;
    SIGTERM/Ctrl-C stop them all (each finishes or gives back its batch). ``app`` is made by
    :func:`make_worker_app` once, before the pool: a database still to ``init`` stops the pool
    with that one line, instead of forking workers that fail again and again."""
    preload(burst)
    _inline_templates(app)
    # Every worker runs in this app, its templates compiled: forked, it has nothing to build.
    # No connection is left open across fork (the engine makes new ones in each child; Redis
    # was not touched here).
    app.extensions["nurture"].close()
    # What start-up made lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it (a tenth of a send's CPU), and children do not copy it.
    gc.freeze()
    pool = ForkPool(functools.partial(_work, app), count, name or f"{os.uname().nodename}.{os.getpid()}", burst)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        pool.start()
        log.info("worker pool: %d workers (pids %s)", count, ", ".join(map(str, pool.pids())))
        pool.watch()
    except KeyboardInterrupt:
        log.info("worker pool stopping")
    finally:
        pool.stop()


def _inline_templates(app: Flask) -> None:
    """Inline the CSS of every step's template here, once: the workers forked next find it
    done (``mail/render.py``), instead of each running premailer (0.15 s of CPU a template)."""
    from sqlalchemy import select

    from .models import Step

    svc = app.extensions["nurture"]
    try:
        with svc.db.Session() as session:
            pairs = set(session.execute(select(Step.html_template, Step.text_template).distinct()).tuples())
        for html, text in pairs:
            svc.renderer.compiled(html, text)
    except Exception as exc:  # a worker compiles what it needs anyway, and reports it there
        log.warning("templates not inlined before forking: %s", exc)


def _work(app: Flask, name: str, burst: bool) -> None:
    from .runtime import run_worker

    run_worker(app, burst=burst, name=name)


class ForkPool:
    """Forked children running ``target(name, burst)``; restarts any that dies (unless burst).

    Watched from the main thread (no thread of its own: forking a threaded process is unsafe).
    """

    def __init__(self, target: Callable[[str, bool], None], count: int, base_name: str, burst: bool) -> None:
        self.target = target
        self.count = count
        self.base_name = base_name
        self.burst = burst
        #: pid -> (index, started, failures)
        self.children: dict[int, tuple[int, float, int]] = {}
        self.restarts = 0

    def pids(self) -> list[int]:
        return sorted(self.children)

    def start(self) -> None:
        for index in range(1, self.count + 1):
            self._fork(index, 0)

    def _fork(self, index: int, failures: int) -> None:
        name = f"{self.base_name}.{index}"
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; measured by the pool tests
            os._exit(_child(self.target, name, self.burst))
        self.children[pid] = (index, time.monotonic(), failures)

    def watch(self) -> None:
        """Until every child is done (burst) or until interrupted: reap and fork again.

        Blocks in ``waitpid`` (a signal handler that raises still interrupts it)."""
        while self.children:
            pid, status = os.waitpid(-1, 0)
            if pid not in self.children:
                continue
            index, started, failures = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.burst:
                if code:
                    log.warning("worker %d (pid %s) exited with status %s", index, pid, code)
                continue
            failures = 0 if time.monotonic() - started > 30 else failures + 1
            delay = min(0.5 * 2 ** max(failures - 1, 0), 10.0)
            log.warning("worker %d (pid %s) exited with status %s; starting it again in %.1f s",
                        index, pid, code, delay)
            time.sleep(delay)
            self._fork(index, failures)
            self.restarts += 1

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM once to each child (a second would make RQ abandon the batch), then wait."""
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while self.children:
            for pid in list(self.children):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.children.pop(pid)
            if not self.children:
                break
            if time.monotonic() > deadline:
                for pid in list(self.children):
                    log.warning("pid %s did not stop within %.0f s; killed", pid, timeout)
                    try:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                    except (ProcessLookupError, ChildProcessError):
                        pass
                self.children.clear()
                break
            time.sleep(0.05)


def _child(target: Callable[[str, bool], None], name: str, burst: bool) -> int:  # pragma: no cover - child
    """Run in a forked child; returns its exit status (the caller ends with ``os._exit``)."""
    from .embedded_redis import die_with_parent

    # A group of its own, as ``runtime.spawn`` gives: a Ctrl-C in the terminal reaches only the
    # pool, which stops each worker once.
    os.setpgid(0, 0)
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        target(name, burst)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 0
    except BaseException:
        log.exception("worker %s failed", name)
        code = 1
    finally:
        logging.shutdown()
    return code


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
