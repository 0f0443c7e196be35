"""the window's own candidate list and the candidate's name per opinion

- windows.candidates: the candidate list the batch used for the window (JSON of
  candidates.CandidateList.manifest: source, general_id, candidates [{id, number, name, ministry}]);
  empty for windows written before, which used the configured 令和6年度 list;
- items.candidate_name: the name of the model's candidate in that list.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("windows") as batch:
        batch.add_column(sa.Column("candidates", sa.Text, nullable=False, server_default=""))
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("candidate_name", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("candidate_name")
    with op.batch_alter_table("windows") as batch:
        batch.drop_column("candidates")
