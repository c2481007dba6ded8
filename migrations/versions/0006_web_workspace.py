"""web workspace: lifted suppressions kept for audit; indexes for the leads list

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import nurture_mail.models.base


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

SEARCHED = ('email', 'first_name', 'last_name', 'company')


def upgrade() -> None:
    op.create_table('suppression_removal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('scope', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('detail', sa.String(length=1000), nullable=True),
    sa.Column('suppressed_at', nurture_mail.models.base.UTCDateTime(), nullable=False),
    sa.Column('removed_by', sa.String(length=320), nullable=False),
    sa.Column('removed_reason', sa.String(length=500), nullable=False),
    sa.Column('removed_at', nurture_mail.models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression_removal'))
    )
    with op.batch_alter_table('suppression_removal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suppression_removal_email'), ['email'], unique=False)
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.create_index('ix_lead_updated_at_id', ['updated_at', 'id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        # The leads list's search matches prefixes of these, case-insensitively.
        for column in SEARCHED:
            op.execute(f'CREATE INDEX ix_lead_lower_{column} ON lead (lower({column}) text_pattern_ops)')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for column in SEARCHED:
            op.execute(f'DROP INDEX ix_lead_lower_{column}')
    with op.batch_alter_table('lead', schema=None) as batch_op:
        batch_op.drop_index('ix_lead_updated_at_id')
    with op.batch_alter_table('suppression_removal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suppression_removal_email'))
    op.drop_table('suppression_removal')
