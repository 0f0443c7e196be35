import numpy as np
import pandas as pd
import pytest

from pipeline.classify import ModelFileError, classify_frame, load_model, predict, reference_index, analysers
from pipeline.labeled import split
from pipeline.model import fit_temperature, softmax
from pipeline.normalize import normalise
from pipeline.policy import ConformalPolicy, choose_epsilons, compose, review_codes

CLASSES = ["OUT_OF_SCOPE", "RESOLVED", "ORG_SPECIFIC", "ABSTRACT", "UNCLEAR_BASIS", "PRECONDITION", "SHARE"]
TEXT_CLASSES = [c for c in CLASSES if c != "RESOLVED"]


def test_fit_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4000, 5)) * 1.5
    y = np.array([rng.choice(5, p=p) for p in softmax(true)])
    t = fit_temperature(true * 3.0, y)  # logits three times too sharp
    assert 2.5 < t < 3.5


def test_compose_follows_the_flowchart_order():
    p_text = np.array([[0.9, 0.02, 0.02, 0.02, 0.02, 0.02], [0.0, 0.1, 0.1, 0.1, 0.1, 0.6], [0.0, 0.1, 0.1, 0.1, 0.1, 0.6]])
    P = compose(p_text, TEXT_CLASSES, np.array([0.99, 0.9, 0.0]), CLASSES)
    assert np.allclose(P.sum(1), 1)
    assert CLASSES[P[0].argmax()] == "OUT_OF_SCOPE"  # 射程外 is asked first: documents do not save it
    assert CLASSES[P[1].argmax()] == "RESOLVED"  # a settling passage makes it 解決済
    assert CLASSES[P[2].argmax()] == "SHARE" and P[2, CLASSES.index("RESOLVED")] == 0  # no passage, no 解決済


def _synthetic(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    logits = rng.normal(size=(n, 7))
    logits[np.arange(n), y] += rng.uniform(0, 5, n)
    return softmax(logits), y


def test_conformal_sets_keep_share_with_the_stated_probability():
    p_cal, y_cal = _synthetic(seed=1)
    p_new, y_new = _synthetic(seed=2)
    pol = ConformalPolicy(tuple(CLASSES), 1 - p_cal[np.arange(len(y_cal)), y_cal], y_cal, {"SHARE": 0.02, "*": 0.1})
    sets = pol.sets(p_new)
    s = CLASSES.index("SHARE")
    share = y_new == s
    assert sets[share, s].mean() >= 0.97  # class-conditional: SHARE opinions keep SHARE in their set ≥ 98 % (±noise)
    other = ~share
    assert sets[other, y_new[other]].mean() >= 0.87
    # auto-deciding only singletons can lose a SHARE opinion only when SHARE left its set
    auto_lost = share & (sets.sum(1) == 1) & ~sets[:, s]
    assert auto_lost.mean() / share.mean() <= 0.03


def test_choose_epsilons_meets_targets_on_held_out_scores():
    p, y = _synthetic(n=2000, seed=3)
    rng = np.random.default_rng(4)
    cand_conf = rng.uniform(0.3, 1, len(y))
    cand_ok = rng.uniform(0, 1, len(y)) < cand_conf
    targets = {"share_loss": 0.02, "auto_accuracy": 0.95, "candidate_accuracy": 0.97}
    eps, tk, rep = choose_epsilons(p, y, CLASSES, cand_ok, cand_conf, targets)
    assert eps["SHARE"] == 0.02
    pol = ConformalPolicy(tuple(CLASSES), 1 - p[np.arange(len(y)), y], y, eps, tk)
    sets = pol.sets(p)
    pred = p.argmax(1)
    codes = review_codes(pred, sets, CLASSES, np.ones(len(y)), cand_conf, np.ones(len(y)), pol, np.zeros(len(y), bool))
    auto = np.array([not c for c in codes])
    assert (pred == y)[auto].mean() >= 0.95 and cand_ok[auto].mean() >= 0.97
    assert rep["review_rate"] == pytest.approx(1 - auto.mean())
    assert not any(a for a, c in zip(auto, cand_conf) if c < 0.5)  # less than even odds on the candidate: a person reads it


def test_a_candidate_below_even_odds_goes_to_review_whatever_the_policy_chose():
    p, y = _synthetic(n=200, seed=5)
    pol = ConformalPolicy(tuple(CLASSES), 1 - p[np.arange(len(y)), y], y, {"SHARE": 0.02, "*": 0.3}, 0.0)
    codes = review_codes(p.argmax(1), pol.sets(p), CLASSES, np.ones(len(y)), np.full(len(y), 0.47), np.ones(len(y)), pol, np.zeros(len(y), bool))
    assert all("candidate_low" in c for c in codes)


def test_predict_fills_every_row_with_structured_columns(tiny_model_dir, labeled, domain, corpus_refs):
    model = load_model(tiny_model_dir)
    dev = split(labeled, "dev")
    dev = dev[dev["window"] == "R7-policy"].head(40)
    extra = pd.DataFrame([{"opinion_id": "x", "window": "R7-policy", "text": "", "reason": "", "body": "", "stated_candidate": "", "ingest_status": "empty_text"}])
    frame = normalise(pd.concat([dev, extra], ignore_index=True))
    an = analysers(model)
    index = reference_index(corpus_refs.passages["R7-policy"], domain, an)
    out = classify_frame(model, frame, domain, index, "policy-draft", an=an)
    assert len(out) == 41
    assert out["category"].isin(domain.category_codes).all() and out["candidate_id"].isin(domain.candidate_ids).all()
    assert out["category_confidence"].between(0, 1).all() and out["candidate_confidence"].between(0, 1).all()
    assert out["category_reason"].str.contains("判断フローチャート").all()
    assert out["category_label"].isin([c.label for c in domain.categories]).all()
    assert bool(out["needs_review"].iloc[-1]) and "取込時" in out["review_reasons"].iloc[-1]
    assert (out["retrieved_passages"].str.len() > 0).all()  # every opinion is compared with the documents
    res = out[out["category"] == "RESOLVED"]
    assert (res["resolved_by"] != "").all() and (res["resolved_quote"].str.len() <= 200).all()
    share = out[out["category"] == "SHARE"]
    assert share["addressed_suggestion"].isin(["記載あり", "記載なし"]).all() and (share["nearest_passage"] != "").all()
    # explanation columns are structured: no own training-row ids in the sentence a WT member reads
    assert not out["category_reason"].str.contains(r"W\d-\d{4}").any()


def test_without_documents_nothing_is_auto_resolved(tiny_model_dir, labeled, domain):
    model = load_model(tiny_model_dir)
    rows = split(labeled, "dev")
    rows = rows[rows["category"] == "RESOLVED"].head(20)
    out = predict(model, normalise(rows), domain, index=None)
    assert not ((out["category"] == "RESOLVED") & ~out["needs_review"].astype(bool)).any()


def test_review_codes_follow_the_policy(tiny_model_dir, labeled, domain):
    model = load_model(tiny_model_dir)
    frame = normalise(split(labeled, "dev").head(30))
    model.policy.epsilons = {"SHARE": 1.0, "*": 1.0}  # every set empty → nobody is auto-decided
    assert predict(model, frame, domain, explain=False)["needs_review"].all()


def test_tampered_model_file_is_refused(tiny_model_dir, tmp_path):
    import shutil

    import skops.io as sio

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    sio.dump({"x": pd.Timestamp("2026-01-01")}, d / "coverage.skops")  # a type outside the explicit list
    with pytest.raises(ModelFileError, match="想定外の型"):
        load_model(d)


def test_model_files_hold_vocabularies_as_plain_ints(tiny_model_dir):
    """A char TF-IDF vocabulary of NumPy integers is written by skops as one array file per n-gram
    (tens of thousands: seconds of every start-up); plain ints go into the schema."""
    import zipfile

    for name in ("text", "learned"):
        with zipfile.ZipFile(tiny_model_dir / f"{name}.skops") as z:
            assert sum(n.endswith(".npy") for n in z.namelist()) < 100, name
    m = load_model(tiny_model_dir)
    X = m.text.named_steps["features"]
    vocabularies = [t.vocabulary_ for _, t, _ in X.transformers_ if hasattr(t, "vocabulary_")]
    assert vocabularies and all(type(j) is int for v in vocabularies for j in list(v.values())[:50])


def test_old_format_model_gets_a_clear_message(tmp_path):
    (tmp_path / "meta.json").write_text('{"category_temperature": 1.0}', encoding="utf-8")
    with pytest.raises(ModelFileError, match="学習し直して"):
        load_model(tmp_path)


OFF_DOMAIN = [
    "生成AIの学習に著作物を無断で使うことは、クリエイターの権利を侵害するものであり、許諾の仕組みを法律で定めるべきだと考えます。",
    "イラストレーターとして活動していますが、AIによる画風の模倣で仕事が減りました。学習データからの除外を求める手段を整備してください。",
    "今年の夏は暑さが厳しく、熱中症対策として公園に日陰とミストを増やしてほしいです。子どもが安心して遊べる場所が必要です。",
]


def test_off_domain_opinions_are_flagged_and_never_auto_decided(tiny_model_dir, labeled, domain):
    """Issue 9 item 4: an opinion unlike anything the candidates and the corpus concern goes to a person
    with 「対象候補との関連が薄い」; the in-domain dev rows are (nearly) never flagged."""
    model = load_model(tiny_model_dir)
    off = pd.DataFrame({"opinion_id": [f"o{i}" for i in range(len(OFF_DOMAIN))], "text": OFF_DOMAIN, "reason": "", "body": "", "stated_candidate": ""})
    out = classify_frame(model, normalise(off), domain, None, "candidate-list")
    assert out["review_codes"].str.contains("off_domain").all() and out["needs_review"].all()
    assert out["review_reasons"].str.contains("対象候補との関連が薄い").all()
    dev = predict(model, normalise(split(labeled, "dev")), domain, explain=False)
    assert dev["review_codes"].str.contains("off_domain").mean() <= 0.02


def test_a_category_outside_its_prediction_set_is_never_auto_decided():
    """The most probable category must be the one its conformal set accepts (review finding)."""
    p_cal, y_cal = _synthetic(seed=5)
    pol = ConformalPolicy(tuple(CLASSES), 1 - p_cal[np.arange(len(y_cal)), y_cal], y_cal, {"SHARE": 0.02, "*": 0.1})
    P = np.array([[0.0, 0.30, 0.58, 0.02, 0.0, 0.0, 0.10]])
    sets = np.zeros((1, 7), bool)
    sets[0, CLASSES.index("RESOLVED")] = True  # the set holds 解決済 only, the argmax is 団体固有の事情
    codes = review_codes(P.argmax(1), sets, CLASSES, np.ones(1), np.ones(1), np.ones(1), pol, np.zeros(1, bool))
    assert "outside_set" in codes[0]


def test_no_addressed_verdict_without_the_windows_own_drafts(tiny_model_dir, labeled, domain):
    """A policy-draft window that brought no references/ is judged on the bundled base set only: the
    model must not claim 記載なし for drafts it never read (review finding)."""
    from pipeline.references import load_bundled_references

    model = load_model(tiny_model_dir)
    an = analysers(model)
    index = reference_index(load_bundled_references().passages, domain, an, source="bundled")
    rows = split(labeled, "dev").head(30)
    out = classify_frame(model, normalise(rows), domain, index, "policy-draft", an=an)
    assert (out["addressed_suggestion"] == "").all()
    assert (out.loc[out["category"] == "SHARE", "nearest_passage"] != "").all()


def _counting_encoder(monkeypatch):
    """Replace the sentence encoder's backend by a deterministic 512-d one that records every text it is
    asked to encode, with the process cache disabled (a batch beyond its bound)."""
    from pipeline import embed

    seen: list[str] = []

    class Counting:
        def encode(self, texts, **kw):
            texts = list(texts)
            seen.extend(texts)
            out = np.zeros((len(texts), 512), dtype=np.float32)
            for i, t in enumerate(texts):
                for a, b in zip(t, t[1:] or t):
                    out[i, hash(a + b) % 512] += 1
                out[i, 511] += 1
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    monkeypatch.setattr(embed, "load_sentence_model", lambda name, threads=None: Counting())
    monkeypatch.setattr(embed, "_CACHE", {})
    monkeypatch.setattr(embed, "_CACHE_MAX", 0)
    return seen


def test_distinct_rows_groups_exact_copies_in_input_order():
    from pipeline.classify import distinct_rows

    f = pd.DataFrame({"match_text": ["a", "b", "a", "c", "b"], "match_reason": ["", "", "", "", "x"], "stated_candidate": "", "ingest_status": "ok", "body": list("vwxyz")})
    first, inverse = distinct_rows(f)
    assert first.tolist() == [0, 1, 3, 4]  # row 4 has the text of row 1 but another reason: its own decision
    assert inverse.tolist() == [0, 1, 0, 2, 3]


def test_a_copy_under_another_bodys_name_shares_the_decision_but_an_added_sentence_does_not():
    from pipeline.classify import distinct_rows
    from pipeline.normalize import normalise

    base = "八戸市では、預貯金照会の回答に時間がかかっている。オンライン化を早めてほしい。"
    texts = [base, base.replace("八戸市", "弘前市").replace("、", ""), base.replace("八戸市では", "本町では"), base + "特に年度末が厳しい。"]
    f = normalise(pd.DataFrame({"opinion_id": list("abcd"), "text": texts, "reason": "", "body": ["青森県八戸市", "青森県弘前市", "岩手県岩手町", "秋田県秋田市"], "stated_candidate": ""}))
    first, inverse = distinct_rows(f)
    assert first.tolist() == [0, 3] and inverse.tolist() == [0, 0, 0, 1]


def test_each_distinct_text_is_encoded_once_and_copies_share_their_result(tiny_model_dir, labeled, domain, corpus_refs, monkeypatch):
    """Issue 11 item 1: exact copies are classified once and keep their own rows; every text and sentence
    is encoded once per batch, for the mapping, the precedent search and the retrieval together, even
    beyond the process cache's bound."""
    import pipeline.classify as classify

    seen = _counting_encoder(monkeypatch)
    model = load_model(tiny_model_dir)
    an = analysers(model)
    index = reference_index(corpus_refs.passages["R7-policy"], domain, an)
    dev = split(labeled, "dev")
    base = normalise(dev[dev["window"] == "R7-policy"].head(25).reset_index(drop=True))
    assert len(seen) == len(set(seen))  # the passages: once each
    seen.clear()
    single = classify_frame(model, base, domain, index, "policy-draft", an=an)
    once = list(seen)
    assert once and len(once) == len(set(once))  # no text or sentence encoded twice within the batch

    copies = base.iloc[[3, 3, 7, 0, 3]].copy()
    copies["opinion_id"] = [f"copy{i}" for i in range(len(copies))]
    copies["body"] = ["八戸市", "弘前市", "十和田市", "盛岡市", "宮古市"]
    frame = pd.concat([base, copies], ignore_index=True)
    classified = []
    part = classify._predict_part
    monkeypatch.setattr(classify, "_predict_part", lambda m, X, *a: classified.append(len(X)) or part(m, X, *a))
    seen.clear()
    out = classify_frame(model, frame, domain, index, "policy-draft", an=an)
    assert sum(classified) == len(base)  # the copies were not classified again
    assert sorted(seen) == sorted(once)  # ... nor encoded again: the same strings, each once
    assert len(out) == len(frame) and out["opinion_id"].tolist() == frame["opinion_id"].tolist()
    assert out["body"].tolist() == frame["body"].tolist()
    decided = [c for c in out.columns if c not in ("opinion_id", "body")]
    for k, src in enumerate([3, 3, 7, 0, 3]):
        row = out.iloc[len(base) + k]
        assert row[decided].equals(single.iloc[src][decided]), k
    pd.testing.assert_frame_equal(out.iloc[: len(base)].reset_index(drop=True), single)


def test_fast_char_vectoriser_gives_sklearns_matrix_bit_for_bit():
    """The loaded model's character blocks count n-grams with numpy (model.load_model): the matrix must be
    sklearn's own — same vocabulary columns, counts, order and TF-IDF values — on hard inputs too."""
    import copy

    from sklearn.feature_extraction.text import TfidfVectorizer

    from pipeline.features import FastCharTfidf, fast_char_vectorizers

    docs = ["入札参加資格の審査項目を統一してほしい。", "ＡＢＣ  abc\n\t ABC", "İstanbul 😀😀 x", "", "a", "本市では　令和10年まで契約がある。"] * 3
    for ngram in [(1, 3), (2, 3), (1, 1)]:
        vec = TfidfVectorizer(analyzer="char", ngram_range=ngram, min_df=1, sublinear_tf=True).fit(docs[:4])
        fast = copy.deepcopy(vec)
        fast.__class__ = FastCharTfidf
        a, b = vec.transform(docs), fast.transform(pd.Series(docs))
        assert type(a) is type(b) and a.dtype == b.dtype and a.indices.dtype == b.indices.dtype
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("features", ColumnTransformer([("c", TfidfVectorizer(analyzer="char"), "t"), ("w", TfidfVectorizer(), "t")]).fit(pd.DataFrame({"t": docs})))])
    assert fast_char_vectorizers(pipe) == 1  # the word block is left as it is


def test_a_candidate_that_fits_badly_on_its_own_is_flagged_unlisted_and_nothing_fitting_is_off_domain():
    p, y = _synthetic(n=50, seed=7)
    pol = ConformalPolicy(tuple(CLASSES), 1 - p[np.arange(len(y)), y], y, {"SHARE": 0.02, "*": 0.3}, 0.0, min_relevance=0.3, min_typical=0.5, min_candidate_fit=0.0)
    n = len(y)
    fit = np.where(np.arange(n) % 2 == 0, -1.0, 2.0)  # the chosen candidate's own pair logit
    rel = np.where(np.arange(n) % 3 == 0, 0.4, 0.9)  # atypical every third row, never below min_relevance
    codes = review_codes(p.argmax(1), pol.sets(p), CLASSES, np.ones(n), np.ones(n), rel, pol, np.zeros(n, bool), fit, fit)
    assert all(("candidate_unlisted" in c) == (i % 2 == 0) for i, c in enumerate(codes))
    # off the domain only when nothing on the list fits and the opinion is atypical as well
    assert all(("off_domain" in c) == (i % 2 == 0 and i % 3 == 0) for i, c in enumerate(codes))
    # 全般 (the cross-cutting id) has no one system to lack: +inf leaves it alone
    assert not any("candidate_unlisted" in c for c in review_codes(p.argmax(1), pol.sets(p), CLASSES, np.ones(n), np.ones(n), rel, pol, np.zeros(n, bool), np.full(n, np.inf), fit))


def test_a_window_mostly_unlike_the_domain_is_unrelated_as_a_whole():
    from pipeline.policy import WINDOW_MIN_ROWS, window_unrelated

    pol = ConformalPolicy(("SHARE",), np.zeros(1), np.zeros(1, int), {"SHARE": 0.02}, min_typical=0.5)
    assert window_unrelated(np.full(WINDOW_MIN_ROWS, 0.3), pol)
    assert not window_unrelated(np.full(WINDOW_MIN_ROWS - 1, 0.3), pol)  # too few to say
    assert not window_unrelated(np.r_[np.full(20, 0.3), np.full(20, 0.8)], pol)  # half is not most
