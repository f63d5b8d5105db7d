"""instances.last_seen: an instance's last long-poll (written at most once a minute per API process)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("last_seen")
