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
        (lambda f: f.assign(category=["SHARE", "SHARE", "ABSTRACTT"]), "分類コード"),
        (lambda f: f.assign(candidate_id=["C01", "C01", "C14"]), "対象候補 ID"),
        (lambda f: f.assign(opinion_id=["W1-0001", "W1-0001", "W6-0001"]), "opinion_id が重複"),
        (lambda f: f.assign(category=["SHARE", "RESOLVED", "ABSTRACT"]), "ラベルが異なります"),
        (lambda f: f.assign(split=["train", "dev", "dev"]), "またがっています"),
        (lambda f: f.assign(text=["意見1", " ", "x"]), "本文が空"),
        (lambda f: f.drop(columns=["split"]), "がありません"),
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


def test_training_windows_need_the_train_split_and_their_documents(tmp_path):
    from pipeline.labeled import training_windows

    rows = pd.DataFrame([{c: "" for c in REQUIRED} | {"opinion_id": "X-1", "window": "RX", "text": "意見", "split": "heldout"}])
    rows.to_csv(tmp_path / "RX.csv", index=False)
    with pytest.raises(LabeledDataError, match="split は train"):
        training_windows(tmp_path, {"RX": object()})
    rows.assign(split="train").to_csv(tmp_path / "RX.csv", index=False)
    with pytest.raises(LabeledDataError, match="参考文書"):
        training_windows(tmp_path, {})
    assert len(training_windows(tmp_path, {"RX": object()})[0]) == 1


def test_no_window_is_both_trained_on_and_held_out(domain):
    """A window in data/labeled/windows/ is trained on; one in heldout/ must never be: no window, opinion
    id or text may be in both."""
    from pipeline import paths
    from pipeline.labeled import load_corpus_references, load_heldout, load_training_corpus

    refs = load_corpus_references(domain=domain)
    trained = load_training_corpus(domain=domain, lists=refs.candidates)
    held = load_heldout(domain=domain, lists=refs.candidates)
    assert len(held) and list(paths.LABELED_WINDOWS.glob("*.csv"))
    assert not set(held["window"]) & set(trained["window"])
    assert not set(held["opinion_id"]) & set(trained["opinion_id"])
    assert not set(held["text"]) & set(trained["text"])
    assert {"R8-candidates"} <= set(trained["window"])
