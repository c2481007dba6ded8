"""the scheduler's index serves its whole order: (state, next_send_at, id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollment_due')
        batch_op.create_index('ix_enrollment_due', ['state', 'next_send_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollment_due')
        batch_op.create_index('ix_enrollment_due', ['state', 'next_send_at'], unique=False)
