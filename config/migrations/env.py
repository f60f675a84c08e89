"""Alembic environment: runs on the connection handed over by config.migrate."""

from alembic import context

from config.db import Base
from config.migrate import include_object
from config.modules import import_models

import_models()
target_metadata = Base.metadata


def _add_expression_indexes(context_, revision, directives) -> None:
    """Autogenerate against SQLite (`make migrations`) skips expression indexes (it cannot reflect
    them): add the model's ones to the generated initial migration so both databases get them."""
    from alembic.operations import ops

    script = directives[0]
    if script.rev_id != "0001" or context_.connection.dialect.name != "sqlite":
        return
    upgrade = script.upgrade_ops
    for table in target_metadata.sorted_tables:
        for index in sorted(table.indexes, key=lambda i: i.name):
            if any(not hasattr(e, "name") or e.table is None for e in index.expressions):
                upgrade.ops.append(ops.CreateIndexOp.from_index(index))


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        process_revision_directives=_add_expression_indexes,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
