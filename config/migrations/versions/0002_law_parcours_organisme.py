"""orientation: parcours, organisme and how the decision was validated (issue 15)

Revision ID: 0002_law
Revises: 0002_security
Create Date: 2026-12-06 05:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002_law'
down_revision = '0002_security'
branch_labels = None
depends_on = None

# referents.vocabulary.ORGANISME_OF and DEFAULT_PARCOURS_OF as they were when this revision was written
# (a migration never imports the live vocabulary).
_ORGANISME = {"pole_emploi": "france_travail", "mds": "departement", "ati": "departement", "ccas": "departement",
              "actipro": "delegataire", "mission_locale": "mission_locale", "cap_emploi": "cap_emploi"}
_PARCOURS = {"pole_emploi": "emploi", "actipro": "socio_professionnel", "ati": "socio_professionnel",
             "mission_locale": "socio_professionnel", "cap_emploi": "emploi", "mds": "social"}


def _case(mapping: dict) -> str:
    whens = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in mapping.items())
    return f"CASE referent_type {whens} ELSE NULL END"


def upgrade() -> None:
    with op.batch_alter_table('orientation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parcours', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('organisme', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('validation', sa.String(length=10), nullable=True))
        batch_op.create_index(batch_op.f('ix_orientation_parcours'), ['parcours'], unique=False)
        batch_op.create_index(batch_op.f('ix_orientation_organisme'), ['organisme'], unique=False)
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.add_column(sa.Column('oriented_parcours', sa.String(length=30), nullable=True))
    # Existing decisions: the organisme of their referent type, the default parcours of that type, and
    # how they were validated (automatic only when nobody validated an automatic decision).
    op.execute(f"UPDATE orientation SET organisme = {_case(_ORGANISME)}, parcours = {_case(_PARCOURS)}")
    op.execute("UPDATE orientation SET validation = CASE WHEN origin = 'auto' AND mode = 'auto' "
               "AND validated_by IS NULL THEN 'auto' ELSE 'agent' END WHERE validated_on IS NOT NULL")
    # The path's decision carries its parcours (orientation.outcomes keeps it; the nightly refresh
    # recomputes it from the decisions).
    op.execute(f"UPDATE path SET oriented_parcours = {_case(_PARCOURS).replace('referent_type', 'oriented_referent_type')}"
               " WHERE oriented_on IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('path', schema=None) as batch_op:
        batch_op.drop_column('oriented_parcours')
    with op.batch_alter_table('orientation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orientation_organisme'))
        batch_op.drop_index(batch_op.f('ix_orientation_parcours'))
        batch_op.drop_column('validation')
        batch_op.drop_column('organisme')
        batch_op.drop_column('parcours')
