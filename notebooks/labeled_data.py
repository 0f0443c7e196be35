# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # ラベル付きデータの閲覧と一致率
# `data/labeled/opinions.csv` の件数・分布・難しい例と、二重ラベル付け（340 件）の一致率を確認します。
# ロジックはすべて `pipeline` にあり、このノートブックは呼び出して表示するだけです。

# %%
import pandas as pd

from pipeline import paths
from pipeline.config import load_domain
from pipeline.labeled import agreement_report, load_labeled

domain = load_domain()
data = load_labeled()
data["分類"] = data["category"].map(domain.category_label)
len(data)

# %% [markdown]
# ## 分類 × 分割、対象候補 × 分割

# %%
pd.crosstab(data["分類"], data["split"], margins=True)

# %%
pd.crosstab(data["candidate_id"], data["split"], margins=True).T

# %% [markdown]
# ## 難しい例（note に hard とあるもの）を分類ごとに読む

# %%
category = "PRECONDITION"  # ← 見たい分類コードに変える
hard = data[(data["category"] == category) & data["note"].str.contains("hard", case=False)]
hard[["opinion_id", "window", "body", "text", "reason", "note"]].head(10)

# %% [markdown]
# ## 重複グループ（同旨の意見）

# %%
groups = data[data["dup_group"] != ""].sort_values(["dup_group", "opinion_id"])
groups[["dup_group", "body", "text"]].head(12)

# %% [markdown]
# ## 二重ラベル付けの一致率（Cohen's κ）と不一致

# %%
sample = pd.read_csv(paths.LABELED / "agreement_sample.csv", dtype=str, keep_default_na=False)
agreement_report(sample, domain).round(3)

# %%
sample[(sample["category_writer"] != sample["category_annotator"]) | (sample["candidate_writer"] != sample["candidate_annotator"])]
