"""accompaniment as the 2025 law says (issue 19): sanction caps, amounts and radiation; review reason and
joint-diagnostic parties; the contract's legal review reason

Revision ID: 0003_accompaniment
Revises: 0002_security
Create Date: 2026-12-06 06:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0003_accompaniment'
down_revision = '0002_law'  # after the orientation-law revision (both branched from 0002_security)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_reason', sa.String(length=20), nullable=True))
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('referent_participant', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('france_travail_participant', sa.String(length=200), nullable=True))
    with op.batch_alter_table('sanction', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cap_percent', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cap_reason', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('base_amount', sa.Numeric(precision=10, scale=2), nullable=True))
        batch_op.add_column(sa.Column('withheld_amount', sa.Numeric(precision=10, scale=2), nullable=True))
        batch_op.add_column(sa.Column('repaid_amount', sa.Numeric(precision=10, scale=2), nullable=True))
        batch_op.add_column(sa.Column('lift_reason', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('radiation_proposed_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sanction', schema=None) as batch_op:
        for column in ('radiation_proposed_on', 'lift_reason', 'repaid_amount', 'withheld_amount', 'base_amount',
                       'cap_reason', 'cap_percent'):
            batch_op.drop_column(column)
    with op.batch_alter_table('review', schema=None) as batch_op:
        for column in ('france_travail_participant', 'referent_participant', 'reason'):
            batch_op.drop_column(column)
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.drop_column('review_reason')
