"""the terms of the stored due date on the path (issue 21 item 5, issue 18): contract_due_on,
review_due_on, due_review_id, next_appointment_at, suspension_ends_on, computed for the day
next_due_as_of with next_due_on, so that the person file and the "my people" lists read them
instead of computing them again (six queries a person file, seven a page of a list).

Revision ID: 0007_path_due_terms
Revises: 0006_household_hot_updates
Create Date: 2026-12-06 15:00:00

The columns start NULL and next_due_as_of is cleared, so that every stored value is computed again
with its terms: the lists compute such rows on the fly until the nightly job cases.refresh_next_due
(or `rsa cases refresh-next-due`) has run.
"""
from alembic import op
import sqlalchemy as sa

revision = '0007_path_due_terms'
down_revision = '0006_household_hot_updates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contract_due_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('review_due_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('due_review_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('next_appointment_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('suspension_ends_on', sa.Date(), nullable=True))
    op.execute("UPDATE path SET next_due_as_of = NULL WHERE next_due_as_of IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.drop_column('suspension_ends_on')
        batch_op.drop_column('next_appointment_at')
        batch_op.drop_column('due_review_id')
        batch_op.drop_column('review_due_on')
        batch_op.drop_column('contract_due_on')
