"""Settings with a value we cannot use fail at start-up with the variable's name."""
from __future__ import annotations

import pytest

from nurture_mail.config import Config, ConfigError


@pytest.mark.parametrize(("env", "message"), [
    ({"SALES_TIMEZONE": "Mars/Olympus"}, "SALES_TIMEZONE: unknown IANA timezone 'Mars/Olympus'"),
    ({"SALES_DAY_START": "9am"}, "SALES_DAY_START: expected a time as HH:MM, got '9am'"),
    ({"SALES_DAY_END": "17:75"}, "SALES_DAY_END: expected a time as HH:MM"),
    ({"SALES_DAY_START": "18:00"}, "SALES_DAY_START / SALES_DAY_END: the day must start before it ends"),
    ({"OWNERSHIP_DAYS": "0"}, "OWNERSHIP_DAYS: must be at least 1"),
    ({"OWNERSHIP_DAYS": "two weeks"}, "OWNERSHIP_DAYS: expected an integer, got 'two weeks'"),
    ({"HANDOFF_SLA_HOURS": "-1"}, "HANDOFF_SLA_HOURS: must be positive"),
    ({"API_WRITE_RATE_PER_MINUTE": "-5"}, "API_WRITE_RATE_PER_MINUTE: must be 0 (unlimited) or positive"),
    ({"CHECK_DELIVERABILITY": "maybe"}, "CHECK_DELIVERABILITY: expected true/false, got 'maybe'"),
    # Each reaches a header of every email: a line break there would fail every send.
    ({"SENDER_NAME": "Northwind\r\nBcc: x@evil.example"},
     "SENDER_NAME: contains a control character (carriage return); one line of text expected"),
    ({"REPLY_TO": "reply@northwind.example\n"}, "REPLY_TO: contains a control character (line feed)"),
    ({"SENDER_EMAIL": "nurture\x00@northwind.example"}, "SENDER_EMAIL: contains a control character (NUL)"),
])
def test_bad_settings_name_the_variable(tmp_path, env, message):
    with pytest.raises(ConfigError) as error:
        Config.from_env({"INSTANCE_PATH": str(tmp_path), **env})
    assert str(error.value).startswith(message)


def test_sales_and_api_settings_are_read_from_the_environment(tmp_path):
    config = Config.from_env({
        "INSTANCE_PATH": str(tmp_path), "SALES_TIMEZONE": "America/Chicago", "SALES_DAY_START": "08:30",
        "SALES_DAY_END": "18:00", "OWNERSHIP_DAYS": "21", "HANDOFF_SLA_HOURS": "2.5",
        "SALES_WEBHOOK_URL": " https://hooks.example/x ", "API_WRITE_RATE_PER_MINUTE": "0",
        "CHECK_DELIVERABILITY": "yes", "HYGIENE_PATH": str(tmp_path / "h.yaml"),
    })
    assert (config.sales_timezone, config.sales_day_start, config.sales_day_end) == ("America/Chicago", "08:30", "18:00")
    assert (config.ownership_days, config.handoff_sla_hours) == (21, 2.5)
    assert config.sales_webhook_url == "https://hooks.example/x"
    assert config.api_write_rate_per_minute == 0 and config.check_deliverability is True
    assert config.hygiene_path == tmp_path / "h.yaml"


def test_a_child_process_gets_the_parents_environment_and_decided_settings(tmp_path):
    from dataclasses import replace

    config = Config.from_env({"PATH": "/usr/bin", "CLOCK_SPEED": "60", "LOG_LEVEL": "debug"},
                             instance_path=tmp_path, secret_key="k")
    config = replace(config, redis_url="unix:///tmp/r.sock?db=0", clock_epoch="2026-03-02T09:00:00+00:00")
    env = config.child_environ(EXTRA="1")
    assert env["PATH"] == "/usr/bin" and env["EXTRA"] == "1"
    assert env["REDIS_URL"] == "unix:///tmp/r.sock?db=0" and env["SECRET_KEY"] == "k"
    assert env["CLOCK_EPOCH"] == "2026-03-02T09:00:00+00:00" and env["LOG_LEVEL"] == "DEBUG"
    child = Config.from_env(env)  # the child reads the same settings back
    assert (child.clock_speed, child.clock_epoch, child.redis_url, child.instance_path, child.log_level) == (
        60.0, config.clock_epoch, config.redis_url, tmp_path, "DEBUG")


def test_run_demo_speeds_the_clock_unless_the_environment_says_otherwise(tmp_path):
    from nurture_mail.runtime import demo_clock_settings

    fast = demo_clock_settings(Config.from_env({}, instance_path=tmp_path), 1800.0)
    assert (fast.clock_speed, fast.tick_interval) == (1800.0, 2)
    kept = demo_clock_settings(Config.from_env({"CLOCK_SPEED": "10"}, instance_path=tmp_path), 1800.0)
    assert (kept.clock_speed, kept.tick_interval) == (10.0, 60)
    tick = demo_clock_settings(Config.from_env({"TICK_INTERVAL": "5"}, instance_path=tmp_path), 1800.0)
    assert (tick.clock_speed, tick.tick_interval) == (1800.0, 5)
