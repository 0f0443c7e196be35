# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 確認キュー（分析担当者用）
# バッチ（`opinions run`）の結果を読み、意見を絞り込み、本文・モデルの判断理由・近い先例を見ながら判断を記録します。
# 判断は CLI（`opinions queue …`）と同じデータベースに入り、再実行しても失われません。
# ロジックはすべて `pipeline` にあり、このノートブックは呼び出すだけです。

# %%
import pandas as pd

from pipeline.config import database_url, load_domain
from pipeline.labeled import load_labeled
from pipeline.queue import Decision, audit, decide, list_queue, open_queue, window_info

WINDOW = "R7-sample"  # ← 照会回
REVIEWER = "分析担当"  # ← 自分の名前
domain = load_domain()
engine = open_queue(database_url())
print("照会回の種類:", window_info(engine, WINDOW)["kind"])  # policy-draft なら 記載の有無・修正意見 も記録する
queue = list_queue(engine, WINDOW)
queue["分類"] = queue["final_category"].map(domain.category_label)
queue["status"].value_counts()

# %% [markdown]
# ## 絞り込み（対象候補・分類・確信度・状況）

# %%
view = queue[(queue["status"] == "pending") & (queue["category_confidence"] < 0.9)]
# view = view[view["final_candidate"] == "C04"]
view[["opinion_id", "body", "final_candidate", "分類", "category_confidence", "dup_count", "review_reasons"]]

# %% [markdown]
# ## 1 件を読む: 本文・理由・モデルの判断理由・近い先例

# %%
OPINION_ID = view["opinion_id"].iloc[0] if len(view) else queue["opinion_id"].iloc[0]
row = queue.set_index("opinion_id").loc[OPINION_ID]
print("【意見】", row["text"], "\n【理由】", row["reason"], "\n【モデルの分類】", row["category_reason"], "\n【対象候補】", row["candidate_reason"], "\n【要確認の理由】", row["review_reasons"])

# %%
# 判断理由に出てくる「近い先例」の本文（ラベル付きデータ）
labeled = load_labeled().set_index("opinion_id")
precedents = [p.split("［")[0] for p in row["category_reason"].split("近い先例: ")[-1].rstrip("。").split("、")] if "近い先例" in row["category_reason"] else []
labeled.loc[[p for p in precedents if p in labeled.index], ["category", "candidate_id", "text"]]

# %% [markdown]
# ## 判断を記録する（既定では同旨グループ全体に適用）
# 一覧を読み込んだ時点の確認コード（`read_code`: 読んだ本文と同旨グループ）と版（`decision_version`）を渡すので、
# その後にバッチの再実行で本文が変わったり、他の担当者が判断したりしていれば、記録せずに知らせます。

# %%
written = decide(
    engine, domain, WINDOW, OPINION_ID, REVIEWER,
    Decision(category=row["final_category"], candidate_id=row["final_candidate"], note="ノートブックで確認"),
    expected_version=int(row["decision_version"]), seen=row["read_code"],
)  # fmt: skip
written

# %%
# 記録されたことを同じデータベースから確認する
list_queue(engine, WINDOW).set_index("opinion_id").loc[written, ["status", "decision_reviewer", "decision_category", "decision_version"]]

# %%
audit(engine, WINDOW, OPINION_ID)
