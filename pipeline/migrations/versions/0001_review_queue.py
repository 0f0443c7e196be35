"""review queue: windows, items (model output per opinion), decisions (human), audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "windows",
        sa.Column("window", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_table(
        "items",
        sa.Column("window", sa.String(100), sa.ForeignKey("windows.window"), primary_key=True),
        sa.Column("opinion_id", sa.String(200), primary_key=True),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
        sa.Column("prefecture", sa.Text, nullable=False, server_default=""),
        sa.Column("stated_candidate", sa.Text, nullable=False, server_default=""),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("dup_group", sa.String(100), nullable=False, server_default=""),
        sa.Column("dup_representative", sa.String(200), nullable=False, server_default=""),
        sa.Column("dup_count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("dup_bodies", sa.Text, nullable=False, server_default=""),
        sa.Column("candidate_id", sa.String(10), nullable=False, server_default=""),
        sa.Column("candidate_confidence", sa.Float, nullable=False, server_default="0"),
        sa.Column("category", sa.String(20), nullable=False, server_default=""),
        sa.Column("category_confidence", sa.Float, nullable=False, server_default="0"),
        sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("category_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("candidate_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("review_reasons", sa.Text, nullable=False, server_default=""),
        sa.Column("prior_window", sa.String(100), nullable=False, server_default=""),
        sa.Column("prior_opinion_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("model_version", sa.String(100), nullable=False, server_default=""),
        sa.Column("present", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("row_order", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_items_window_group", "items", ["window", "dup_group"])
    op.create_table(
        "decisions",
        sa.Column("window", sa.String(100), primary_key=True),
        sa.Column("opinion_id", sa.String(200), primary_key=True),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("candidate_id", sa.String(10), nullable=False),
        sa.Column("addressed", sa.String(10), nullable=True),
        sa.Column("revision_request", sa.Text, nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("via_opinion_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.ForeignKeyConstraint(["window", "opinion_id"], ["items.window", "items.opinion_id"]),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("window", sa.String(100), nullable=False),
        sa.Column("opinion_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_audit_window_opinion", "audit_log", ["window", "opinion_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("decisions")
    op.drop_index("ix_items_window_group", "items")
    op.drop_table("items")
    op.drop_table("windows")
