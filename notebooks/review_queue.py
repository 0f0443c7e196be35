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
# バッチ（`opinions run`）の結果を読み、意見を絞り込み、本文・理由欄・モデルの判断理由・引用された記載・
# 同旨グループの差分を見ながら判断を記録します。判断は CLI（`opinions queue …`）や表計算ファイルの取り込みと
# 同じデータベースに入り、再実行しても失われません。
#
# **「すべて実行」（Run All）では何も記録されません。** 判断は、最後の節で自分の名前を入れて
# `record(...)` を呼ぶか、フォームの「記録する」を押したときにだけ記録されます。
# ロジックはすべて `pipeline` にあり、このノートブックは呼び出して表示するだけです。

# %%
import pandas as pd
from IPython.display import HTML, display

from pipeline.candidates import candidate_from_input
from pipeline.config import database_url, load_domain
from pipeline.queue import Decision, addressed_from_input, audit, category_from_input, decide, list_queue, open_queue, window_domain, window_info, window_table
from pipeline.report import opinion_html

WINDOW = "R7-sample"  # ← 照会回
engine = open_queue(database_url())
domain = window_domain(engine, WINDOW, load_domain())  # この照会回の対象候補一覧（バッチが保存したもの）
POLICY = window_info(engine, WINDOW)["kind"] == "policy-draft"  # 方針案の照会回なら 記載の有無・修正意見 も記録する
print("照会回の種類:", "方針案" if POLICY else "候補一覧", "／ 対象候補:", "、".join(f"{c.id} {c.name[:12]}" for c in domain.candidates))
queue = list_queue(engine, WINDOW)
queue["分類"] = queue["final_category"].map(domain.category_label)
queue["状況"] = queue["status"].map({"pending": "確認待ち", "decided": "確定", "stale": "要再確認"})
queue["状況"].value_counts()

# %% [markdown]
# ## 絞り込み（対象候補・分類・確信度・状況）

# %%
view = queue[(queue["status"] != "decided") & (queue["category_confidence"] < 0.9)]
# view = view[view["final_candidate"] == candidate_from_input("①", domain)]  # 対象候補は ID・番号・名称で指定できます
# view = view[view["分類"] == "共有すべきもの"]
view = view.reset_index(drop=True)
view.index = view.index + 1  # 左端の番号で 1 件を選びます（次の節の 番号）
COLUMNS = {"body": "団体名", "final_candidate": "対象候補", "分類": "分類", "category_confidence": "確信度", "dup_count": "同旨", "状況": "状況", "review_reasons": "要確認の理由", "text": "意見"}
view[list(COLUMNS)].rename(columns=COLUMNS).rename_axis("番号")

# %% [markdown]
# ## 1 件を読む: 意見・理由欄・モデルの判断理由・引用された記載・同旨グループの差分
# `番号` を上の一覧の左端の番号に変えて実行し直すと、別の意見を表示します（意見 ID を打ち込む必要はありません）。
# 判断はここで表示した内容（確認コード）に対して記録されます。

# %%
番号 = 1  # ← 上の一覧の左端の番号
OPINION_ID = view.loc[番号, "opinion_id"] if len(view) else queue["opinion_id"].iloc[0]
table = window_table(engine, WINDOW)
shown = table.set_index("opinion_id").loc[OPINION_ID].copy()
shown["opinion_id"] = OPINION_ID
members = table[(table["dup_key"] == shown["dup_key"]) & table["present"].astype(bool)] if shown["dup_key"] else table.iloc[:0]
display(HTML(opinion_html(shown, domain, members)))

# %% [markdown]
# ## 判断を記録する（既定では同旨グループ全体に適用）
# 例（新しいセルに書いて実行します。分類は日本語のラベル、対象候補は ID・番号・名称のどれでも構いません）:
#
# ```python
# record("山田", category="共有すべきもの", candidate="①", addressed="記載なし", revision_request="…を追記されたい", note="会議で確認")
# record("山田", category="団体固有の事情", only_this=True)   # この意見だけ
# ```
#
# 表示した時点の確認コード（本文と同旨グループ）と判断の版を渡すので、その後にバッチの再実行で本文が変わったり、
# 他の担当者が判断したりしていれば、記録せずに知らせます。指定しない項目はモデルの判断（判断済みならその値）のままです。


# %%
def record(reviewer, category=None, candidate=None, addressed=None, revision_request=None, note=None, only_this=False, row=None):
    """表示中の意見（row を省略すると上で表示した意見）の判断を、判断者 reviewer の名前で記録し、記録した意見 ID を返す。"""
    row = shown if row is None else row
    if not str(reviewer or "").strip():
        raise ValueError("判断者の名前を指定してください（例: record(\"山田\", category=\"共有すべきもの\")）。")
    decision = Decision(
        category=category_from_input(category, domain) if category else None,
        candidate_id=candidate_from_input(candidate, domain) if candidate else None,
        addressed=addressed_from_input(addressed) if addressed else None,
        revision_request=revision_request or None,
        note=note or None,
    )
    written = decide(engine, domain, WINDOW, row["opinion_id"], str(reviewer).strip(), decision, whole_group=not only_this, expected_version=int(row["decision_version"]), seen=row["read_code"])
    after = window_table(engine, WINDOW).set_index("opinion_id").loc[written]
    print(f"{len(written)} 件を記録しました（{reviewer}）:", "、".join(f"{i}（{domain.category_label(c)}）" for i, c in zip(written, after["decision_category"])))
    return written


# %% [markdown]
# ### フォームで記録する（ipywidgets がある場合）
# 名前を入れ、分類などを選んで「記録する」を押します。押すまでは何も記録されません。

# %%
from html import escape

try:
    import ipywidgets as w
except ImportError:  # フォームなしでも record(...) で記録できます
    w = None
form = None
if w is not None:
    target = shown  # the form records for the opinion shown when it was built
    fields = {
        "reviewer": w.Text(description="判断者", placeholder="自分の名前"),
        "category": w.Dropdown(description="分類", options=[(c.label, c.label) for c in domain.categories], value=domain.category_label(shown["final_category"])),
        "candidate": w.Dropdown(description="対象候補", options=[(f"{c.id} {c.name}", c.id) for c in domain.candidates], value=shown["final_candidate"] if shown["final_candidate"] in domain.candidate_ids else None),
        "addressed": w.Dropdown(description="記載の有無", options=[("（未記入）", ""), ("記載あり", "記載あり"), ("記載なし", "記載なし")], disabled=not POLICY),
        "revision_request": w.Textarea(description="修正意見", disabled=not POLICY),
        "note": w.Text(description="メモ"),
        "only_this": w.Checkbox(description="この意見だけ（同旨グループに適用しない）"),
    }
    button, result = w.Button(description="記録する", button_style="primary"), w.Output()

    def _on_click(_):
        with result:
            result.clear_output()
            try:
                record(**{k: f.value for k, f in fields.items()}, row=target)
            except Exception as e:  # the queue's message (Japanese) says what to do; nothing was written
                print("記録しませんでした:", e)

    button.on_click(_on_click)
    form = w.VBox([w.HTML(f"<b>{escape(target['body'] or '団体名なし')}（意見ID {escape(target['opinion_id'])}）</b> の判断"), *fields.values(), button, result])
    display(form)

# %% [markdown]
# ## 記録を確かめる

# %%
decided = list_queue(engine, WINDOW, "decided")
decided_view = decided.assign(分類=decided["decision_category"].map(domain.category_label), 対象候補=decided["decision_candidate_id"].map(lambda c: f"{c} {domain.candidate_name(c)}" if c else ""))[
    ["body", "decision_reviewer", "分類", "対象候補", "decision_version", "text"]
].rename(columns={"body": "団体名", "decision_reviewer": "判断者", "decision_version": "版", "text": "意見"})
decided_view

# %%
history = audit(engine, WINDOW, OPINION_ID)  # 表示中の意見の変更履歴
history.drop(columns=["id", "window"], errors="ignore").rename(columns={"opinion_id": "意見ID", "action": "操作", "field": "項目", "old": "変更前", "new": "変更後", "reviewer": "判断者", "at": "日時"})
