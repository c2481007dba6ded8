"""``python -m nurture_mail …``: one click group, commands split by area."""
from __future__ import annotations

import click

from .campaigns import preview_command, sync_campaigns_command
from .enrollments import enrollment_command
from .leads import (
    enroll_command,
    erase_command,
    import_leads_command,
    import_resume_command,
    lead_command,
    lead_update_command,
)
from .runtime import cron_command, init_command, run_command, tick_command, worker_command
from .sales import commands as sales_commands
from .users import commands as user_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """nurture_mail: content-gap-aware email nurture campaigns."""


for command in (init_command, sync_campaigns_command, import_leads_command, enroll_command, tick_command,
                worker_command, cron_command, preview_command, lead_command, run_command,
                enrollment_command, erase_command, import_resume_command, lead_update_command,
                *sales_commands, *user_commands):
    main.add_command(command)
