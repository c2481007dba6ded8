"""Configuration module for ``rq cron``: ``rq cron nurture_mail.cron_config --url $REDIS_URL``.

It only declares what to enqueue; the tick itself runs in a worker that has the app.
"""
from rq import cron

from .config import Config
from .jobs.schedule import cron_table

for _entry in cron_table(Config.from_env()):
    cron.register(**_entry)
