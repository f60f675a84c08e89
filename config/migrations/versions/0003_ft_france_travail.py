"""France Travail in the loop: its records (préconisation, orientation, contract), stock presence, and
the dispatch outbox of our decisions (issue 17)

Revision ID: 0003_ft
Revises: 0002_law, 0002_security (joins the two heads: law's branch and main's)
Create Date: 2026-12-06 06:10:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text  # noqa: F401
from sqlalchemy.dialects import postgresql

revision = '0003_ft'
down_revision = '0003_accompaniment'  # one line of revisions: golive, security, law, accompaniment, France Travail
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('france_travail_record',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('nir_hash', sa.String(length=64), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('kind', sa.String(length=14), nullable=False),
    sa.Column('parcours_code', sa.String(length=3), nullable=True),
    sa.Column('parcours', sa.String(length=30), nullable=True),
    sa.Column('organisme_code', sa.String(length=3), nullable=True),
    sa.Column('organisme', sa.String(length=20), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=True),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('structure', sa.String(length=200), nullable=True),
    sa.Column('external_id', sa.String(length=60), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('handled_on', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=80), nullable=True),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_france_travail_record_person_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_france_travail_record')),
    sa.UniqueConstraint('key', name=op.f('uq_france_travail_record_key'))
    )
    with op.batch_alter_table('france_travail_record', schema=None) as batch_op:
        batch_op.create_index('ix_ft_record_nir_hash_birth', ['nir_hash', 'birth_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_record_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_record_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_record_batch_id'), ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_record_handled_on'), ['handled_on'], unique=False)

    op.create_table('france_travail_dispatch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('orientation_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('payload', JSON, nullable=False),
    sa.Column('queued_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('transport', sa.String(length=8), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('sent_on', sa.Date(), nullable=True),
    sa.Column('sent_file', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['orientation_id'], ['orientation.id'],
                            name=op.f('fk_france_travail_dispatch_orientation_id_orientation')),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_france_travail_dispatch_person_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_france_travail_dispatch')),
    sa.UniqueConstraint('orientation_id', name=op.f('uq_france_travail_dispatch_orientation_id')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_france_travail_dispatch_idempotency_key'))
    )
    with op.batch_alter_table('france_travail_dispatch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_france_travail_dispatch_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_dispatch_queued_on'), ['queued_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_dispatch_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_france_travail_dispatch_sent_on'), ['sent_on'], unique=False)

    with op.batch_alter_table('france_travail_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_batch_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_france_travail_event_last_seen_batch_id'), ['last_seen_batch_id'],
                              unique=False)
    # Stock rows already stored were seen by the file that brought them.
    op.execute("UPDATE france_travail_event SET last_seen_batch_id = batch_id WHERE kind = 'stock'")


def downgrade() -> None:
    with op.batch_alter_table('france_travail_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_france_travail_event_last_seen_batch_id'))
        batch_op.drop_column('last_seen_batch_id')
    op.drop_table('france_travail_dispatch')
    op.drop_table('france_travail_record')
