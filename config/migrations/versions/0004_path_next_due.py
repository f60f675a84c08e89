"""the person's next due date stored on the path (issue 21 item 5): next_due_on, next_due,
next_due_as_of and the index the "my people" lists sort on

Revision ID: 0004_path_next_due
Revises: 0003_ft
Create Date: 2026-12-06 08:25:00

The columns start NULL: a NULL next_due_as_of means "not computed yet", which the lists compute on
the fly (cases.followup.my_people_page); the nightly job cases.refresh_next_due (or
`rsa cases refresh-next-due`) fills them.
"""
from alembic import op
import sqlalchemy as sa

revision = '0004_path_next_due'
down_revision = '0003_ft'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_due_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('next_due', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('next_due_as_of', sa.Date(), nullable=True))
        batch_op.create_index('ix_path_next_due', ['next_due_on'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.drop_index('ix_path_next_due')
        batch_op.drop_column('next_due_as_of')
        batch_op.drop_column('next_due')
        batch_op.drop_column('next_due_on')
