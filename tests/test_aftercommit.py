"""The one after-commit enqueue: a job reaches Redis when the session commits, never on a rollback."""
from __future__ import annotations

import pytest
from rq import Queue
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from nurture_mail.aftercommit import enqueue_after_commit, new_job_id, pending_jobs

JOB = "nurture_mail.jobs.scoring.rescore_leads"


@pytest.fixture
def session(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'after.db'}")
    with Session(engine) as session:
        yield session
    engine.dispose()


def test_enqueued_only_once_the_transaction_commits(session, redis):
    queue = Queue("after-commit-test", connection=redis)
    job_id = new_job_id()
    session.execute(text("CREATE TABLE t (x INTEGER)"))
    enqueue_after_commit(session, queue, JOB, [1, 2], job_id=job_id, job_timeout=60)
    assert len(queue) == 0 and [j.path for j in pending_jobs(session)] == [JOB]
    session.commit()
    assert queue.job_ids == [job_id]
    job = queue.fetch_job(job_id)
    assert job.func_name == JOB and job.args == ([1, 2],) and job.timeout == 60
    session.commit()  # a later commit does not enqueue it again
    assert len(queue) == 1


def test_dropped_when_the_transaction_rolls_back(session, redis):
    queue = Queue("after-commit-test", connection=redis)
    session.execute(text("CREATE TABLE t (x INTEGER)"))
    enqueue_after_commit(session, queue, JOB, [1])
    session.rollback()
    assert pending_jobs(session) == []
    session.execute(text("INSERT INTO t VALUES (1)"))
    session.commit()
    assert len(queue) == 0


def test_a_savepoint_rollback_keeps_the_job(session, redis):
    queue = Queue("after-commit-test", connection=redis)
    session.execute(text("CREATE TABLE t (x INTEGER)"))
    enqueue_after_commit(session, queue, JOB, [1])
    nested = session.begin_nested()
    nested.rollback()
    session.commit()
    assert len(queue) == 1


def test_only_jobs_of_the_job_layer_by_path(session, redis):
    with pytest.raises(ValueError, match="import path of a job"):
        enqueue_after_commit(session, Queue(connection=redis), "os.system", "true")
