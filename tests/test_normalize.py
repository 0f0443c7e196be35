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


# --------------------------------------------------------------------------- contact blocks (issue 9, item 1)

import re  # noqa: E402

import pytest  # noqa: E402

from pipeline import paths  # noqa: E402
from pipeline.normalize import EMAIL, EXTENSION, PHONE, WS, mask_officer_details  # noqa: E402

ISSUE_EXAMPLE = "担当者の事務負担が増えるため、審査の記録を団体間で共有できる機能を設けていただきたい。"


def test_issue_example_opinion_about_officers_is_kept_whole():
    assert split_contact(ISSUE_EXAMPLE) == (ISSUE_EXAMPLE, "")
    assert match_text(ISSUE_EXAMPLE) == ISSUE_EXAMPLE


@pytest.mark.parametrize(
    "text",
    [
        "費用の考え方を示されたい。\n担当者間で協議した結果、県として取りまとめたものである。",
        "問い合わせ窓口を国が一元化し、電話・メールでの支援を用意していただきたい。",
        "経由する町の担当者が申請内容を見る機会がなくなる。担当課が閲覧できる機能を設けてほしい。",
        "本意見は、島しょ町村の担当者間で意見交換の上、提出するものです。",
        "4候補ごとに、自治体側の窓口となる部署(業務所管課か情報担当課か)の想定を示していただきたい。",
        "照会は年間数十件に上る。(候補10)と連携していただきたい。",
    ],
)
def test_sentences_mentioning_officers_or_enquiries_are_not_contacts(text):
    assert split_contact(nfkc(text)) == (nfkc(text), "")


# what the writers of data/labeled typed as contacts: labelled rows mask digits as 2xxx / 27xx
_ITEM_ORACLE = re.compile(rf"{EMAIL.pattern}|{EXTENSION.pattern}|{PHONE.pattern}|0\d{{1,4}}-\d{{2,4}}-\d{{0,3}}x+|内線\d+x")
_LABEL_ORACLE = re.compile(r"^[\s(（【<\[]*(?:担当(?:者)?|問い?合わ?せ先?|連絡先)\s*[:：】>)\s]")
# trailing blocks that name only the sending section (no phone, no label): checked by hand
_ORG_ONLY_CONTACTS = {("W1-0120", "text"), ("W6-0079", "text")}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=。)|\n", text) if s.strip()]


def _labelled_rows():
    frame = pd.read_csv(paths.LABELED_CSV, dtype=str, keep_default_na=False)
    return [(oid, col, v) for col in ("text", "reason") for oid, v in zip(frame["opinion_id"], frame[col]) if v.strip()]


def test_every_labelled_text_and_reason_keeps_all_of_the_opinion():
    lost = []
    for oid, col, value in _labelled_rows():
        n = nfkc(value)
        matched = match_text(value)
        for s in _sentences(n):
            if _ITEM_ORACLE.search(s) or _LABEL_ORACLE.search(s) or (oid, col) in _ORG_ONLY_CONTACTS and s == _sentences(n)[-1]:
                continue
            if WS.sub(" ", mask_contacts(s)).strip() not in matched:
                lost.append((oid, col, s[:40]))
    assert not lost, f"{len(lost)} sentences of opinions cut from the matching text: {lost[:10]}"


def test_every_labelled_contact_is_still_found():
    missed, with_contact = [], 0
    for oid, col, value in _labelled_rows():
        last = _sentences(nfkc(value))[-1]
        if not (_ITEM_ORACLE.search(last) or (oid, col) in _ORG_ONLY_CONTACTS):
            continue
        with_contact += 1
        body, contact = split_contact(nfkc(value))
        if not contact or _ITEM_ORACLE.search(body) or not body:
            missed.append(oid)
    assert with_contact >= 70 and not missed, missed


@pytest.mark.parametrize(
    "contact",
    [
        "（担当：情報政策課　佐藤　ＴＥＬ　０９８－８６６－２２００）",
        "担当：総務課 比嘉 098.866.2200",
        "問合せ先：企画課 TEL +81-98-866-2200",
        "（企画課 山田 TEL (098)866-2200）",
        "連絡先 総務課行政係 内線２２１４",
        "【担当】那覇市 情報政策課 ｄｘ－ｔａｎｔｏ＠ｃｉｔｙ．ｅｘａｍｐｌｅ．ｌｇ．ｊｐ",
        "担当：総務課　山田\nTEL 098-866-2200\nE-mail yamada@city.example.lg.jp",
        "(那覇市選挙管理委員会事務局 宮城 内線 3105)",
        "＋８１ ９８ ８６６ ２２００（総務課）",
    ],
)
def test_contacts_in_every_form_are_found(contact):
    opinion = "申請の様式を全国で統一していただきたい。"
    for sep in ("\n", ""):
        body, found = split_contact(nfkc(opinion + sep + contact))
        assert body == opinion and found, (sep, contact)
    assert not re.search(r"\d{3}", match_text(opinion + "\n" + contact))


def test_contact_line_in_the_middle_does_not_cut_what_follows():
    t = "意見です。担当：総務課 山田。追記：費用の負担についても示されたい。"
    assert "追記:費用の負担についても示されたい。" in match_text(t)


# --------------------------------------------------------------------------- officer details (issue 9, item 10)

OFFICER_CASES = [
    # (as typed, as shown to people); the last ones hold no name that may be masked
    ("担当：情報政策課 佐藤花子", "担当：情報政策課 ［氏名省略］"),
    ("意見です。（企画課 山田 TEL 03-1234-5678）", "意見です。（企画課 ［氏名省略］ TEL ［電話省略］）"),
    ("意見です。\n（担当：情報政策課 佐藤　TEL 0178-43-1234）", "意見です。\n（担当：情報政策課 ［氏名省略］　TEL ［電話省略］）"),
    ("意見です。問合せ先 総務課行政係 佐々木 sasaki-t@city.example.lg.jp 内線318", "意見です。問合せ先 総務課行政係 ［氏名省略］ ［メール省略］ 内線［省略］"),
    ("意見です。\n（環境局環境保全課 担当：村上 044-200-2345）", "意見です。\n（環境局環境保全課 担当：［氏名省略］ ［電話省略］）"),
    ("意見です。\n【担当】伊丹市 納税課 山本 内線3342", "意見です。\n【担当】伊丹市 納税課 ［氏名省略］ 内線［省略］"),
    ("意見です。\n（西都市総合政策課 情報化推進係 壱岐/内線 315）", "意見です。\n（西都市総合政策課 情報化推進係 ［氏名省略］/内線［省略］）"),
    ("意見です。\n担当：総務課　佐藤　花子", "意見です。\n担当：総務課　［氏名省略］"),
    ("意見です。\n（那覇市選挙管理委員会事務局 宮城 内線 3105）", "意見です。\n（那覇市選挙管理委員会事務局 ［氏名省略］ 内線［省略］）"),
    ("意見です。\n担当：情報政策課佐藤（ＴＥＬ０９８－８６６－２２００）", "意見です。\n担当：情報政策課［氏名省略］（ＴＥＬ［電話省略］）"),
    ("意見です。\n担当：総務課 主査 田中 098.866.2200", "意見です。\n担当：総務課 主査 ［氏名省略］ ［電話省略］"),
    ("意見です。\n（担当：デジタル・スマートシティ推進課 杉山 053-457-2099）", "意見です。\n（担当：デジタル・スマートシティ推進課 ［氏名省略］ ［電話省略］）"),
    ("意見です。\n担当：財政課 阿部\nTEL +81-98-866-2200\nE-mail abe@city.example.lg.jp", "意見です。\n担当：財政課 ［氏名省略］\nTEL ［電話省略］\nE-mail ［メール省略］"),
    ("意見です。\n（健康福祉局 指導監査課 TEL 022-214-1234）", "意見です。\n（健康福祉局 指導監査課 TEL ［電話省略］）"),
    ("意見です。\n担当：企画調整部総合政策課 統計担当（内線2345）", "意見です。\n担当：企画調整部総合政策課 統計担当（内線［省略］）"),
    ("意見です。\n問合せ先 鳥取市ふるさと納税推進室 furusato@city.tottori.example.lg.jp", "意見です。\n問合せ先 鳥取市ふるさと納税推進室 ［メール省略］"),
    ("意見です。\n（中札内村総務課 情報担当）", "意見です。\n（中札内村総務課 情報担当）"),
    (ISSUE_EXAMPLE, ISSUE_EXAMPLE),
    ("情報政策課では担当職員が一人しかいない。山田市長も同じ考えである。", "情報政策課では担当職員が一人しかいない。山田市長も同じ考えである。"),
    ("本市の情報政策課 佐藤課長が説明した内容を踏まえ、手順を示されたい。", "本市の情報政策課 佐藤課長が説明した内容を踏まえ、手順を示されたい。"),
]


@pytest.mark.parametrize("typed, shown", OFFICER_CASES)
def test_mask_officer_details(typed, shown):
    assert mask_officer_details(typed) == shown


def test_mask_officer_details_masks_a_contact_line_inside_the_text_too():
    t = "意見です。\n担当：総務課 山田 TEL 03-1234-5678\n追記：費用も示されたい。"
    assert mask_officer_details(t) == "意見です。\n担当：総務課 ［氏名省略］ TEL ［電話省略］\n追記：費用も示されたい。"


def test_mask_officer_details_over_the_labelled_contacts():
    """Every contact block of the corpus keeps its sections and loses its names; bodies never change."""
    named = 0
    for oid, col, value in _labelled_rows():
        body, contact = split_contact(value)
        masked = mask_officer_details(value)
        assert masked.startswith(mask_officer_details(body).rstrip()) if body else True, oid
        if not contact:
            assert masked == mask_contacts_for_people(value), oid
            continue
        named += "［氏名省略］" in masked
        for section in re.findall(r"[^\s（）()：:／/【】<>＜＞]+?(?:課|係|室|班|事務局)(?![^\s（）()：:／/])", contact):
            assert section in masked, (oid, section)
    assert named >= 50  # the corpus' contact blocks name 53 officers (checked by hand)


def mask_contacts_for_people(text: str) -> str:
    return PHONE.sub("［電話省略］", EXTENSION.sub("内線［省略］", EMAIL.sub("［メール省略］", text)))


# --------------------------------------------------------------------------- masking twice = masking once

TWICE_CASES = [
    "意見です。\n（担当：情報政策課 佐藤　TEL 0178-43-1234）",
    "意見です。\n担当：財政課 阿部\nTEL +81-98-866-2200\nE-mail abe@city.example.lg.jp",
    "意見です。問合せ先 総務課行政係 佐々木 sasaki-t@city.example.lg.jp 内線318",
    "意見です。\n担当：総務課　佐藤　花子",
    "意見です。\n担当：情報政策課佐藤（ＴＥＬ０９８－８６６－２２００）",
    "意見です。\n（西都市総合政策課 情報化推進係 壱岐/内線 315）",
    "意見です。\n担当：総務課 山田 TEL 03-1234-5678\n追記：費用も示されたい。",
    # a name on a line of its own above the labelled block: masking must not reach it on a second pass
    "意見です。\n山田\n担当：情報政策課 佐藤 花子",
    "詳しくは a.b@city.example.lg.jp まで。費用を示されたい。",
    ISSUE_EXAMPLE,
]


@pytest.mark.parametrize("typed", list(dict.fromkeys(TWICE_CASES + [t for t, _ in OFFICER_CASES])))
def test_masking_twice_is_masking_once(typed):
    once = mask_officer_details(typed)
    assert mask_officer_details(once) == once
    assert "［［" not in once and "省略］］" not in once


def test_masking_twice_is_masking_once_over_the_labelled_contacts():
    """The export masks text that the queue already masked (strip_contacts): no placeholder may be taken
    for a name (「TEL ［電話省略］」 became 「TEL ［［氏名省略］］」)."""
    changed, blocks = [], 0
    for oid, col, value in _labelled_rows():
        once = mask_officer_details(value)
        blocks += bool(split_contact(value)[1])
        if mask_officer_details(once) != once:
            changed.append((oid, col, once[-40:]))
    assert blocks >= 70 and not changed, changed[:5]
