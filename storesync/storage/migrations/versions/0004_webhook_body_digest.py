"""webhook deliveries: the SHA-256 of each body, unique

A signed body sent again under a new webhook id, or under another shop's domain header, is a
duplicate of the delivery that first brought it (storesync.api.webhooks). Deliveries recorded
before keep NULL (they expire after seven days); NULLs never conflict in a unique index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_deliveries", sa.Column("body_sha256", sa.String(length=64), nullable=True)
    )
    op.create_index(
        "uq_webhook_deliveries_body_sha256",
        "webhook_deliveries",
        ["body_sha256"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_webhook_deliveries_body_sha256", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("body_sha256")
