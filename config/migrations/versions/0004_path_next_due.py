"""the person's next due date stored on the path (issue 21 item 5): next_due_on, next_due,
next_due_as_of and the index the "my people" lists sort on; on PostgreSQL, the folded-name indexes
of the person search (referents.text.pg_folded)

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

FOLDED = ('last_name', 'birth_name', 'first_name')
# referents.text.ACCENTED / PLAIN as they are today (a revision does not follow later edits)
ACCENTED = "ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖòóôõöÙÚÛÜùúûüÝýÿŸ"
PLAIN = "AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOoooooUUUUuuuuYyyY"


def _folded(column: str) -> str:
    return f"lower(translate({column}, '{ACCENTED}', '{PLAIN}'))"


def upgrade() -> None:
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_due_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('next_due', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('next_due_as_of', sa.Date(), nullable=True))
        batch_op.create_index('ix_path_next_due', ['next_due_on'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for column in FOLDED:
            op.create_index(f'ix_person_folded_{column}', 'person',
                            [sa.literal_column(_folded(column)).label(f'folded_{column}')], unique=False,
                            postgresql_ops={f'folded_{column}': 'text_pattern_ops'})


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in FOLDED:
            op.drop_index(f'ix_person_folded_{column}', table_name='person')
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.drop_index('ix_path_next_due')
        batch_op.drop_column('next_due_as_of')
        batch_op.drop_column('next_due')
        batch_op.drop_column('next_due_on')
