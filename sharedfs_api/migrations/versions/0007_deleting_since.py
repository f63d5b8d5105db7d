"""filesystems.deleting_since: when the delete began (its job waits for the instances to unmount, within a bound)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("filesystems") as batch:
        batch.add_column(sa.Column("deleting_since", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("filesystems") as batch:
        batch.drop_column("deleting_since")
