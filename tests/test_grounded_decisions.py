"""Decisions that read the window's documents (slow: the default model, trained once per session).

The counterfactual tests are what shows that 解決済 comes from the documents and not from a fact sheet
the model memorised: change the document, the decision must follow."""

import json

import pandas as pd
import pytest

from pipeline.classify import load_model
from pipeline.evaluate import counterfactual_metrics, evaluate_model
from pipeline.labeled import split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_model(fresh_sample_run):
    assert fresh_sample_run.result.exit_code == 0, fresh_sample_run.result.output
    return load_model(fresh_sample_run.model_dir)


def test_counterfactual_documents_change_the_decision(default_model, labeled, domain, corpus_refs):
    cf = counterfactual_metrics(default_model, split(labeled, "dev"), domain, corpus_refs)
    # remove the passages that settle an auto-decided 解決済 opinion → no longer auto-decided 解決済
    assert cf["removed_n"] >= 15 and cf["removed_passage_not_auto_resolved"] >= 0.90, cf
    # add a passage that settles a 共有すべきもの opinion → 解決済 citing it, or review citing it
    assert cf["added_n"] >= 40 and cf["added_passage_ok"] >= 0.80, cf
    # a near-miss on the same topic must not settle it automatically
    assert cf["near_miss_passage_ok"] >= 0.80, cf


def test_resolved_is_never_auto_decided_without_a_citation(default_model, labeled, domain, corpus_refs):
    m, _, pred = evaluate_model(default_model, split(labeled, "dev"), domain, corpus_refs)
    res = pred[pred["category"] == "RESOLVED"]
    assert (res["resolved_by"] != "").all() and (res["resolved_quote"] != "").all()
    assert m["grounding"]["resolved_auto_without_citation"] == 0
    # the cited passage is the one the labels name (issue 8: ≥ 85 % of correct 解決済)
    assert m["grounding"]["resolved_cited_as_labelled"] >= 0.80, m["grounding"]  # measured 0.85 (metrics/metrics.json)


def test_sample_window_outputs_carry_the_citations(fresh_sample_run):
    ops = pd.read_csv(fresh_sample_run.out / "opinions.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    res = ops[ops["category"] == "RESOLVED"]
    assert len(res) and (res["resolved_by"] != "").all()
    assert res["resolved_by"].str.contains("#").all()  # <file>#<heading path>#<n>
    share = ops[ops["category"] == "SHARE"]
    assert share["addressed_suggestion"].isin(["記載あり", "記載なし"]).all() and (share["nearest_passage"] != "").all()
    manifest = json.loads((fresh_sample_run.out / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "policy-draft" and manifest["kind_source"] == "window.yaml"
    assert manifest["references"]["source"] == "window" and manifest["references"]["passages"] > 100
    assert any(f.endswith(".pdf") for f in manifest["references"]["files"]) and any(f.endswith(".docx") for f in manifest["references"]["files"])


def _other_consultation(default_model, domain, extra: pd.DataFrame | None = None, every: int = 1):
    """The comments of shared/data (AI and copyright, another consultation), classified against the bundled
    documents, alone or (every ``every``-th) planted among ``extra`` (normalised in-domain rows)."""
    from pipeline import paths
    from pipeline.classify import analysers, classify_frame, reference_index
    from pipeline.normalize import normalise
    from pipeline.references import load_bundled_references

    f = paths.PROJECT_ROOT.parent / "shared" / "data" / "bunka-ai-pubcom-2024" / "comments.csv"
    if not f.exists():
        pytest.skip(f"{f} がありません（shared/ がリポジトリの隣にない）")
    c = pd.read_csv(f, dtype=str, keep_default_na=False).iloc[::every]
    frame = normalise(pd.DataFrame({"opinion_id": "ai-" + c["id"], "text": c["comment"], "reason": "", "body": "", "stated_candidate": ""}))
    if extra is not None:
        frame = pd.concat([extra, frame], ignore_index=True)
    an = analysers(default_model)
    index = reference_index(load_bundled_references().passages, domain, an)
    return c, classify_frame(default_model, frame, domain, index, "candidate-list", an=an)


def test_comments_of_another_consultation_are_flagged_not_decided(default_model, domain):
    """Issue 9 item 4 on real text nobody here wrote (shared/data: AI and copyright): a whole window of
    them is recognised as unrelated (every row to a person), and row by row most are off the domain."""
    c, out = _other_consultation(default_model, domain)
    assert len(out) == len(c)
    codes = out["review_codes"].str.split("|")
    assert codes.map(lambda x: "window_unrelated" in x).all() and out["needs_review"].astype(bool).all()
    # each row on its own (the window code aside): measured 90.8 % off the domain (99.2 % before whole
    # windows about new systems joined training; issue 13's closing note)
    assert codes.map(lambda x: "off_domain" in x).mean() >= 0.85


def test_comments_of_another_consultation_among_real_opinions_are_not_decided(default_model, domain, labeled):
    """A share of the same comments planted among real opinions (every 20th: no window-level signal): row
    by row, the planted comments go to a person."""
    from pipeline.labeled import split
    from pipeline.normalize import normalise

    own = normalise(split(labeled, "dev").reset_index(drop=True))
    c, out = _other_consultation(default_model, domain, own, every=20)
    planted = out[out["opinion_id"].str.startswith("ai-")]
    assert len(out) == len(own) + len(planted) and len(planted) == len(c)
    assert not out["review_codes"].str.contains("window_unrelated").any()
    # measured on all 2,622 row by row: 10 decided automatically (0.4 %), 6 of them 共有すべきもの, all
    # near 行政データの匿名加工 (personal data, statistics) — what the embedding cannot tell apart
    assert (~planted["needs_review"].astype(bool)).mean() <= 0.02
