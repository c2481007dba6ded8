"""leaner indexes on the tick's writes: no duplicate of the lead_id prefix on enrollment, sent_at
indexed only once sent

Every enrollment the tick queues is rewritten (next_send_at is in ix_enrollment_due, so the update
cannot be HOT) and every delivery it queues is a new row: each index on those tables is one more
entry written, and dirtied page, per due enrollment. ``ix_enrollment_lead_id`` repeats the
leading column of ``uq_enrollment_lead_id_campaign_id``, which serves every lookup by lead_id
(and the foreign key's cascade); ``ix_delivery_sent_at`` served only sent deliveries (reports
count what was sent per day), so it no longer holds the queued ones.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

SENT = sa.text('sent_at IS NOT NULL')


def upgrade() -> None:
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index('ix_enrollment_lead_id')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_sent_at')
        batch_op.create_index('ix_delivery_sent_at', ['sent_at'], unique=False,
                              postgresql_where=SENT, sqlite_where=SENT)


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_sent_at')
        batch_op.create_index('ix_delivery_sent_at', ['sent_at'], unique=False)
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.create_index('ix_enrollment_lead_id', ['lead_id'], unique=False)
