"""the person search's indexes on PostgreSQL (issue 21 item 5): the folded names in collation "C";
the last name's index gives the results' order and carries the names and the household (the page and
the capped count of a broad name read no table row); the birth name's only holds the persons whose
birth name differs from their last name

Revision ID: 0008_person_name_order
Revises: 0007_path_due_terms
Create Date: 2026-12-06 21:00:00

SQLite keeps its lower(name) indexes: nothing changes there.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008_person_name_order'
down_revision = '0007_path_due_terms'
branch_labels = None
depends_on = None

# referents.text.ACCENTED / PLAIN as they are today (a revision does not follow later edits)
ACCENTED = "ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖòóôõöÙÚÛÜùúûüÝýÿŸ"
PLAIN = "AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOoooooUUUUuuuuYyyY"
FOLDED = ('last_name', 'birth_name', 'first_name')


def _folded(column: str) -> str:
    return f"lower(translate({column}, '{ACCENTED}', '{PLAIN}'))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in FOLDED:
        op.drop_index(f'ix_person_folded_{column}', table_name='person')
    op.create_index('ix_person_name_order', 'person',
                    [sa.text(f'({_folded("last_name")} COLLATE "C")'),
                     sa.text(f'({_folded("first_name")} COLLATE "C")'), sa.text('id')],
                    unique=False, postgresql_include=['last_name', 'first_name', 'birth_name', 'household_id'])
    op.create_index('ix_person_folded_birth_name', 'person', [sa.text(f'({_folded("birth_name")} COLLATE "C")')],
                    unique=False, postgresql_where=sa.text('birth_name IS DISTINCT FROM last_name'))
    op.create_index('ix_person_folded_first_name', 'person', [sa.text(f'({_folded("first_name")} COLLATE "C")')],
                    unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in ('ix_person_name_order', 'ix_person_folded_birth_name', 'ix_person_folded_first_name'):
        op.drop_index(name, table_name='person')
    for column in FOLDED:
        op.create_index(f'ix_person_folded_{column}', 'person',
                        [sa.literal_column(_folded(column)).label(f'folded_{column}')], unique=False,
                        postgresql_ops={f'folded_{column}': 'text_pattern_ops'})
