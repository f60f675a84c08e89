"""stored report results (issue 21 item 5): report_snapshot (one computed report per report, scope
and normalised parameters, shared by every worker and host) and report_data_change (the bulk changes
that make the snapshots stale)

Revision ID: 0005_report_snapshot
Revises: 0004_path_next_due
Create Date: 2026-12-06 11:40:00

Both tables start empty: the first request of each report computes it (docs/reports.md).
"""
from alembic import op
import sqlalchemy as sa

revision = '0005_report_snapshot'
down_revision = '0004_path_next_due'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'report_snapshot',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('report', sa.String(length=40), nullable=False),
        sa.Column('scope', sa.String(length=80), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=True),
        sa.Column('computed_at', sa.DateTime(), nullable=True),
        sa.Column('data_version', sa.Integer(), nullable=True),
        sa.Column('compute_ms', sa.Integer(), nullable=True),
        sa.Column('computation', sa.String(length=32), nullable=True),
        sa.Column('computing_since', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_report_snapshot')),
    )
    op.create_table(
        'report_data_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=80), nullable=False),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_data_change')),
    )


def downgrade() -> None:
    op.drop_table('report_data_change')
    op.drop_table('report_snapshot')
