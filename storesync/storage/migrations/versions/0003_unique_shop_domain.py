"""one store per shop domain, across accounts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:00:00

A shop's orders and webhooks belong to one store: two accounts holding the same shop domain
would both be refreshed by its webhooks and share its Shopify cost bucket. A database that
already holds such duplicates is refused with the list, instead of dropping anyone's store.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storesync.errors import StoresyncError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    duplicates = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT shopify_domain, COUNT(*) AS stores FROM stores "
                "GROUP BY shopify_domain HAVING COUNT(*) > 1 ORDER BY shopify_domain"
            )
        )
        .all()
    )
    if duplicates:
        listed = ", ".join(f"{row.shopify_domain} ({row.stores} stores)" for row in duplicates)
        raise StoresyncError(
            "cannot make shop domains unique: these shops are in more than one store: "
            f"{listed}. Remove the extra stores (DELETE /api/stores/ID), then migrate again."
        )
    op.create_index("uq_stores_shopify_domain", "stores", ["shopify_domain"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_stores_shopify_domain", table_name="stores")
