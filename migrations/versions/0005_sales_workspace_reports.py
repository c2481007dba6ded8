"""sales rep away-until, monthly summary subscription, report counters and indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import nurture_mail.models.base


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sales_rep', schema=None) as batch_op:
        batch_op.add_column(sa.Column('away_until', nurture_mail.models.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('away_note', sa.String(length=200), nullable=True))
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monthly_summary', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('report_step_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('delivered', sa.Integer(), nullable=False),
    sa.Column('opens', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('unsubscribes', sa.Integer(), nullable=False),
    sa.Column('bounces', sa.Integer(), nullable=False),
    sa.Column('complaints', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('bot_events', sa.Integer(), nullable=False),
    sa.Column('refreshed_at', nurture_mail.models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_report_step_day_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['step_id'], ['step.id'], name=op.f('fk_report_step_day_step_id_step'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('day', 'step_id', name=op.f('pk_report_step_day'))
    )
    with op.batch_alter_table('report_step_day', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_step_day_campaign_id'), ['campaign_id'], unique=False)
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_sent_at', ['sent_at'], unique=False)
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_enrolled_at'), ['enrolled_at'], unique=False)
    with op.batch_alter_table('step_skip', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_step_skip_at'), ['at'], unique=False)
    with op.batch_alter_table('handoff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_created_at'), ['created_at'], unique=False)
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index('ix_event_kind_at_lead', ['kind', 'at', 'lead_id', 'suspected_bot'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index('ix_event_kind_at_lead')
    with op.batch_alter_table('handoff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_created_at'))
    with op.batch_alter_table('step_skip', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_step_skip_at'))
    with op.batch_alter_table('enrollment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_enrolled_at'))
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_sent_at')
    with op.batch_alter_table('report_step_day', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_step_day_campaign_id'))
    op.drop_table('report_step_day')
    with op.batch_alter_table('app_user', schema=None) as batch_op:
        batch_op.drop_column('monthly_summary')
    with op.batch_alter_table('sales_rep', schema=None) as batch_op:
        batch_op.drop_column('away_note')
        batch_op.drop_column('away_until')
