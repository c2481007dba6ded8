"""Sales team commands: sync the team file, list handoffs, act on one."""
from __future__ import annotations

import click

commands: list[click.Command] = []
