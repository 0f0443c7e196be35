"""an index for the queue listing: items(window, present, row_order)

``queue list`` / ``queue decide --row`` (queue.numbered_queue, queue_count) filter a window's present
rows and order them by the batch's row order, one page at a time (LIMIT/OFFSET). Without this index
the database reads and sorts the whole window for every page (200,000 rows in a campaign window);
with it, it walks the window's present rows already in order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_window_present_order", "items", ["window", "present", "row_order"])


def downgrade() -> None:
    op.drop_index("ix_items_window_present_order", "items")
