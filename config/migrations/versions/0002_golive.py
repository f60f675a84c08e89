"""go-live: monthly snapshots (household.last_monthly_batch_id), SDD dates of the flow (person)

Revision ID: 0002_golive
Revises: 0001
Create Date: 2026-12-06 05:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002_golive'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('household') as batch:
        batch.add_column(sa.Column('last_monthly_batch_id', sa.Integer(), nullable=True))
        batch.create_index(batch.f('ix_household_last_monthly_batch_id'), ['last_monthly_batch_id'], unique=False)
    with op.batch_alter_table('person') as batch:
        batch.add_column(sa.Column('sdd_start_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('sdd_end_on', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person') as batch:
        batch.drop_column('sdd_end_on')
        batch.drop_column('sdd_start_on')
    with op.batch_alter_table('household') as batch:
        batch.drop_index(batch.f('ix_household_last_monthly_batch_id'))
        batch.drop_column('last_monthly_batch_id')
