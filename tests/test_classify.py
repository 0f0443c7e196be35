import numpy as np
import pandas as pd
import pytest

from pipeline.classify import ModelFileError, ReviewPolicy, choose_policy, fit_temperature, load_model, predict, softmax
from pipeline.labeled import split
from pipeline.normalize import normalise


def test_fit_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4000, 5)) * 1.5
    y = np.array([rng.choice(5, p=p) for p in softmax(true)])
    t = fit_temperature(true * 3.0, y)  # logits three times too sharp
    assert 2.5 < t < 3.5


def test_choose_policy_meets_targets_on_held_out_predictions(params):
    rng = np.random.default_rng(1)
    classes = ["OUT_OF_SCOPE", "RESOLVED", "ORG_SPECIFIC", "ABSTRACT", "UNCLEAR_BASIS", "PRECONDITION", "SHARE"]
    n = 1500
    y = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7))
    logits[np.arange(n), y] += rng.uniform(0, 5, n)
    p = softmax(logits)
    cand_conf = rng.uniform(0.3, 1, n)
    cand_ok = rng.uniform(0, 1, n) < cand_conf
    targets = {"share_loss": 0.02, "auto_accuracy": 0.95, "candidate_accuracy": 0.97}
    pol, rep = choose_policy(p, y, classes, cand_conf, cand_ok, params.classify, targets)
    pred = p.argmax(1)
    review = ((pred != 6) & (p[:, 6] >= pol.share_threshold)) | (p.max(1) < pol.confidence_threshold) | (cand_conf < pol.candidate_threshold)
    auto = ~review
    assert ((y == 6) & (pred != 6) & auto).sum() / (y == 6).sum() <= 0.02
    assert (pred == y)[auto].mean() >= 0.95 and cand_ok[auto].mean() >= 0.97
    assert rep["review_rate"] == pytest.approx(review.mean())
    assert review.mean() < 1.0


def test_predict_fills_every_row(tiny_model_dir, labeled, domain):
    model = load_model(tiny_model_dir)
    dev = split(labeled, "dev").head(40)
    extra = pd.DataFrame([{"opinion_id": "x", "text": "", "reason": "", "body": "", "stated_candidate": "", "ingest_status": "empty_text"}])
    frame = normalise(pd.concat([dev, extra], ignore_index=True))
    out = predict(model, frame, domain)
    assert len(out) == 41
    assert out["category"].isin(domain.category_codes).all() and out["candidate_id"].isin(domain.candidate_ids).all()
    assert out["category_confidence"].between(0, 1).all() and out["candidate_confidence"].between(0, 1).all()
    assert out["category_reason"].str.contains("確信度").all() and out["category_reason"].str.contains("近い先例").all()
    assert out["category_label"].isin([c.label for c in domain.categories]).all()
    assert bool(out["needs_review"].iloc[-1]) and "取込時" in out["review_reasons"].iloc[-1]


def test_review_reasons_follow_the_policy(tiny_model_dir, labeled, domain):
    model = load_model(tiny_model_dir)
    model.policy = ReviewPolicy(share_threshold=1.01, confidence_threshold=0.0, candidate_threshold=0.0)
    frame = normalise(split(labeled, "dev").head(30))
    assert not predict(model, frame, domain, explain=False)["needs_review"].any()
    model.policy = ReviewPolicy(share_threshold=0.0, confidence_threshold=1.01, candidate_threshold=0.0)
    assert predict(model, frame, domain, explain=False)["needs_review"].all()


def test_model_round_trip_is_exact(tiny_model_dir, labeled, domain, tmp_path):
    from pipeline.classify import save_model

    model = load_model(tiny_model_dir)
    save_model(model, tmp_path / "copy")
    again = load_model(tmp_path / "copy")
    frame = normalise(split(labeled, "dev").head(20))
    a, b = predict(model, frame, domain), predict(again, frame, domain)
    assert a["category_confidence"].tolist() == b["category_confidence"].tolist()
    assert a["category_reason"].tolist() == b["category_reason"].tolist()


def test_missing_model_has_a_clear_message(tmp_path):
    with pytest.raises(ModelFileError, match="opinions train"):
        load_model(tmp_path)


def test_empty_frame(tiny_model_dir, domain):
    out = predict(load_model(tiny_model_dir), normalise(pd.DataFrame(columns=["opinion_id", "text", "reason", "body", "stated_candidate"])), domain)
    assert len(out) == 0 and "category" in out.columns
