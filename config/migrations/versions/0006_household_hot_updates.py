"""household rewritten by every monthly flow without touching its indexes (issue 21 item 2): the
index on last_monthly_batch_id dropped and, on PostgreSQL, the table's pages filled to half
(fillfactor 50), so that the flow's update of every household it carries (last_flow_on,
last_monthly_batch_id, even when unchanged) is a HOT update: the new row version stays in its page
and none of the eight indexes is written (94k unchanged households of a 5 %-changed re-import at
100k: 11 s → 1.2 s); the person table's pages filled to 90 %, so that the update of the persons
of the changed households (~5 % a month) stays in its page too (8,034 of 9,894 HOT instead of none).

Revision ID: 0006_household_hot_updates
Revises: 0005_report_snapshot
Create Date: 2026-12-06 12:05:00

The index served one query per monthly import (imports.lifecycle.close_absent_households), now a
scan of the table. The fillfactors apply to pages written from now on: an existing database gets
there as its rows are rewritten (every month) and vacuumed, or at once with VACUUM FULL household,
person.
Merge note: revises 0004 on its branch; chained after 0005_report_snapshot when both are on main.
"""
from alembic import op

revision = '0006_household_hot_updates'
down_revision = '0005_report_snapshot'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_last_monthly_batch_id'))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE household SET (fillfactor = 50)")
        op.execute("ALTER TABLE person SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE household RESET (fillfactor)")
        op.execute("ALTER TABLE person RESET (fillfactor)")
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_household_last_monthly_batch_id'), ['last_monthly_batch_id'], unique=False)
