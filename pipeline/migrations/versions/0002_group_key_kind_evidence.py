"""stable duplicate-group key, window kinds as DOMAIN.md spells them, per-opinion evidence columns

- items.dup_key: a group key that survives re-runs (group numbers are renumbered every run). Rows of a
  0001 database get ``legacy:<dup_group>`` when present (their numbers come from the same latest run, so
  they still agree with each other) and a key of their own when absent (their numbers are from an older
  run and must never join a current group);
- windows.kind: 0001 wrote ``policy`` / ``candidates`` (guessed from the window's name); DOMAIN.md's
  values are ``policy-draft`` / ``candidate-list``;
- items: the evidence columns of the batch (resolved_by, resolved_quote, addressed_suggestion,
  nearest_passage, nearest_quote, prediction_set), empty for rows written before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EVIDENCE = ("resolved_by", "resolved_quote", "addressed_suggestion", "nearest_passage", "nearest_quote", "prediction_set")
OLD_KINDS = {"policy": "policy-draft", "candidates": "candidate-list"}


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("dup_key", sa.String(250), nullable=False, server_default=""))
        for name in EVIDENCE:
            batch.add_column(sa.Column(name, sa.Text, nullable=False, server_default=""))
    items = sa.table("items", sa.column("dup_key", sa.String), sa.column("dup_group", sa.String), sa.column("opinion_id", sa.String), sa.column("present", sa.Boolean))
    op.execute(items.update().where(items.c.present.is_(True), items.c.dup_group != "").values(dup_key=sa.literal("legacy:") + items.c.dup_group))
    op.execute(items.update().where(items.c.dup_key == "").values(dup_key=sa.literal("legacy-own:") + items.c.opinion_id))
    op.create_index("ix_items_window_dup_key", "items", ["window", "dup_key"])
    windows = sa.table("windows", sa.column("kind", sa.String))
    for old, new in OLD_KINDS.items():
        op.execute(windows.update().where(windows.c.kind == old).values(kind=new))


def downgrade() -> None:
    windows = sa.table("windows", sa.column("kind", sa.String))
    for old, new in OLD_KINDS.items():
        op.execute(windows.update().where(windows.c.kind == new).values(kind=old))
    op.drop_index("ix_items_window_dup_key", "items")
    with op.batch_alter_table("items") as batch:
        for name in ("dup_key", *EVIDENCE):
            batch.drop_column(name)
