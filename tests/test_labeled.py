import pandas as pd
import pytest

from pipeline.labeled import REQUIRED, LabeledDataError, load_labeled, split, validate


def good():
    rows = [
        dict(opinion_id="W1-0001", window="R6-candidates", body="A市", prefecture="A県", stated_candidate="1", text="意見1", reason="", candidate_id="C01", category="SHARE", dup_group="W1-g01", note="", writer="W1", split="train"),
        dict(opinion_id="W1-0002", window="R6-candidates", body="B町", prefecture="A県", stated_candidate="1", text="意見1'", reason="", candidate_id="C01", category="SHARE", dup_group="W1-g01", note="", writer="W1", split="train"),
        dict(opinion_id="W6-0001", window="R6-candidates", body="C村", prefecture="C県", stated_candidate="", text="意見2", reason="", candidate_id="C00", category="ABSTRACT", dup_group="", note="", writer="W6", split="dev"),
    ]
    return pd.DataFrame(rows)[list(REQUIRED)]


def test_good_frame_passes(domain):
    validate(good(), domain)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.assign(category=["SHARE", "SHARE", "ABSTRACTT"]), "unknown category"),
        (lambda f: f.assign(candidate_id=["C01", "C01", "C14"]), "unknown candidate"),
        (lambda f: f.assign(opinion_id=["W1-0001", "W1-0001", "W6-0001"]), "duplicate opinion_id"),
        (lambda f: f.assign(category=["SHARE", "RESOLVED", "ABSTRACT"]), "mixed labels"),
        (lambda f: f.assign(split=["train", "dev", "dev"]), "straddles"),
        (lambda f: f.assign(text=["意見1", " ", "x"]), "empty text"),
        (lambda f: f.drop(columns=["split"]), "missing columns"),
    ],
)
def test_bad_frames_fail(domain, mutate, message):
    with pytest.raises(LabeledDataError, match=message):
        validate(mutate(good()), domain)


def test_the_corpus_meets_its_data_card(domain):
    """data/labeled/opinions.csv: the counts the data card promises."""
    data = load_labeled(domain=domain)
    assert len(data) >= 1500
    cats = data["category"].value_counts()
    assert cats.min() >= 150 and cats.idxmax() == "SHARE" and 0.30 <= cats["SHARE"] / len(data) <= 0.40
    cands = data["candidate_id"].value_counts()
    assert all(cands.get(f"C{i:02d}", 0) >= 70 for i in range(1, 13))
    assert cands.get("C00", 0) > 0 and cands.get("C13", 0) > 0
    train, dev = split(data, "train"), split(data, "dev")
    assert set(train["writer"]).isdisjoint(set(dev["writer"]))
    assert data["window"].nunique() >= 3


def test_agreement_report(domain):
    s = pd.DataFrame(
        {
            "category_writer": ["SHARE", "SHARE", "ABSTRACT", "RESOLVED"],
            "category_annotator": ["SHARE", "ABSTRACT", "ABSTRACT", "RESOLVED"],
            "candidate_writer": ["C01", "C02", "C03", "C04"],
            "candidate_annotator": ["C01", "C02", "C03", "C04"],
        }
    )
    from pipeline.labeled import agreement_report

    r = agreement_report(s, domain).set_index("scope")
    assert r.loc["category", "agreement"] == 0.75 and r.loc["candidate", "kappa"] == 1.0
    assert r.loc["category=RESOLVED", "kappa"] == 1.0 and r.loc["category=SHARE", "kappa"] < 1.0
