"""reports: summaries for the topics and monthly reports, and the watermarks of their refreshes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import nurture_mail.models.base


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_topic_day',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('topic', sa.String(length=80), nullable=False),
    sa.Column('level', sa.String(length=10), nullable=False),
    sa.Column('leads', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_report_topic_day_campaign_id_campaign'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'day', 'topic', 'level', name=op.f('pk_report_topic_day'))
    )
    op.create_table('report_engaged_month',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], name=op.f('fk_report_engaged_month_lead_id_lead'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('month', 'lead_id', name=op.f('pk_report_engaged_month'))
    )
    op.create_table('report_watermark',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('scan_from', sa.BigInteger(), nullable=False),
    sa.Column('seen_id', sa.BigInteger(), nullable=False),
    sa.Column('refreshed_at', nurture_mail.models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_report_watermark'))
    )


def downgrade() -> None:
    op.drop_table('report_watermark')
    op.drop_table('report_engaged_month')
    op.drop_table('report_topic_day')
