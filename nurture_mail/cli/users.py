"""User and API token commands (admins)."""
from __future__ import annotations

import click

commands: list[click.Command] = []
