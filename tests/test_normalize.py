import pandas as pd

from pipeline.normalize import body_names, dedupe_key, mask_contacts, match_text, nfkc, normalise, split_contact


def test_nfkc_folds_width_and_circled_numbers():
    assert nfkc("ＤＸ①ｶﾅ") == "DX1カナ"


def test_trailing_contact_blocks_are_split_off():
    cases = [
        ("意見です。\n（担当：情報政策課 佐藤　TEL 0178-43-1234）", "意見です。"),
        ("意見です。問合せ先 企画課DX推進係 tanaka-k@city.example.lg.jp 内線2214", "意見です。"),
        ("意見です。\n連絡先：総務課 山田（電話 011-222-3333）", "意見です。"),
        ("本市では契約がある。担当：総務課　山田", "本市では契約がある。"),
    ]
    for text, body in cases:
        got, contact = split_contact(nfkc(text))
        assert got == body and contact


def test_text_without_contact_is_unchanged():
    t = "費用負担の考え方を示されたい。担当課の負担が大きいため。"
    assert split_contact(t) == (t, "")


def test_contacts_inside_text_are_masked():
    assert "@" not in mask_contacts("詳しくは a.b@city.example.lg.jp まで")
    assert "0120" not in mask_contacts("電話0120-123-456まで")
    assert "URL" in match_text("https://www.digital.go.jp/ 参照")


def test_dedupe_key_masks_body_and_self_references():
    a = dedupe_key("青森県八戸市としては、本市の事業者の負担を考慮されたい。", "青森県八戸市")
    b = dedupe_key("弘前市としては、当市の事業者の負担を考慮されたい！", "青森県弘前市")
    assert a == b


def test_body_names():
    names = body_names("青森県八戸市")
    assert names[0] == "青森県八戸市" and set(names) == {"青森県八戸市", "八戸市", "青森県"}
    assert body_names("") == []


def test_normalise_keeps_rows_and_original_text():
    f = pd.DataFrame({"text": ["Ａ案。（担当 TEL 03-1234-5678）", ""], "reason": ["", "理由"], "body": ["A市", ""]})
    out = normalise(f)
    assert len(out) == 2 and out["text"].tolist() == f["text"].tolist()
    assert out["match_text"].iloc[0] == "A案。" and out["contact"].iloc[0]


def test_one_contact_pattern_set_covers_every_form():
    for raw in ["03(1234)5678", "(03)1234-5678", "０３－１２３４－５６７８", "0120-123456", "0312345678", "tanaka＠city.example.lg.jp", "内線２２１４"]:
        assert raw not in mask_contacts(f"連絡 {raw} まで"), raw
    assert mask_contacts("令和9年3月まで2025件、第1234号") == "令和9年3月まで2025件、第1234号"
