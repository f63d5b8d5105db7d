"""identity_grants: per-instance credentials of filesystems reached by identity (the cephfs driver's cephx keys)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "identity_grants",
        sa.Column("filesystem_id", sa.Integer(), sa.ForeignKey("filesystems.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("secret", sa.String(256), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
    )


def downgrade():
    op.drop_table("identity_grants")
