"""jobs resume, global names unique in the database, retired instance ids

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GLOBAL = sa.text("scope = 'global'")


def upgrade():
    with op.batch_alter_table("filesystems", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("filesystems", schema=None) as batch_op:
        batch_op.alter_column("attempts", server_default=None)
    # Before the index: rows made by the old code's race (one global name in several projects)
    # would make it fail; the newest keeps the name, the others become errors under a new name.
    connection = op.get_bind()
    duplicates = connection.execute(sa.text(
        "SELECT id, name FROM filesystems WHERE scope = 'global' AND id NOT IN "
        "(SELECT MIN(id) FROM filesystems WHERE scope = 'global' GROUP BY name)"
    )).all()  # fmt: skip
    for fs_id, name in duplicates:
        connection.execute(
            sa.text("UPDATE filesystems SET scope = 'project', status = 'error', status_detail = :detail "
                    "WHERE id = :id"),  # fmt: skip
            {"id": fs_id, "detail": f"duplicate global name {name!r}: made project scope by migration 0003"},
        )
    op.create_index("uq_filesystems_global_name", "filesystems", ["name"], unique=True,
                    sqlite_where=GLOBAL, postgresql_where=GLOBAL)  # fmt: skip
    op.create_table(
        "retired_instances",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade():
    op.drop_table("retired_instances")
    op.drop_index("uq_filesystems_global_name", table_name="filesystems")
    with op.batch_alter_table("filesystems", schema=None) as batch_op:
        batch_op.drop_column("attempts")
