"""Reference documents: window.yaml kinds, passages from .md/.txt/.docx/.pdf, the bundled base set, bad files.

Every document is written in the test (python-docx for .docx, LibreOffice for a .pdf with a Japanese text
layer, Pillow for a scanned PDF), so the expected headings and texts are known exactly.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.references import (
    MAX_PASSAGE_CHARS,
    heading_rank,
    join_lines,
    markdown_blocks,
    Passage,
    WindowMetaError,
    bundled_references_dir,
    load_references,
    load_window_meta,
    passages_from_blocks,
    read_document,
    split_long,
    split_passages,
)

# One policy draft, written here in the shape ministries use: title, 「1．」 sections, 「（1）」 subsections,
# a paragraph over 400 characters, a numbered item, Latin words and digits (PDF text layers space them).
TITLE = "入札参加資格審査システムの共通化推進方針（案）"
LONG = (
    "共通システムは、事業者が一度の申請で複数の地方公共団体に入札参加資格の審査を申請できるようにするものである。"
    "申請の情報は、申請先の各団体に提供され、各団体はそれぞれの資格要件に基づいて審査を行う。"
    "審査項目と添付書類については、団体ごとの違いを整理した上で、標準的な項目の案を令和8年3月までに示す。"
    "標準的な項目の採用は各団体の判断によるものとし、独自の項目を定める団体は、共通システム上で追加の項目として設定できるようにする。"
    "定期受付の時期は団体ごとに異なるため、共通システムは随時の申請を受け付け、団体ごとの受付期間に応じて審査を行えるようにする。"
    "システムの構築に当たっては、Government Cloud 上での運用を前提とし、既存の電子調達システムとの連携の方法を併せて検討する。"
    "事業者の本人確認には、GビズIDを用いることを基本とする。"
    "なお、建設工事に係る入札参加資格については、申請件数が多く共通化の効果も大きいと見込まれることから、稼働後の対象への追加を検討する。"
)
DOC: list[tuple[str, int, str]] = [  # (kind, heading level, text)
    ("h", 1, "1．背景・目的"),
    ("p", 0, "地方公共団体の競争入札に参加しようとする事業者は、団体ごとに定められた時期と様式により、入札参加資格の審査を申請している。"),
    ("p", 0, "複数の団体に申請する事業者は、内容の重複する書類を団体ごとに作成しており、その負担は大きい。"),
    ("h", 2, "（1）共通システムの機能"),
    ("p", 0, LONG),
    ("p", 0, "①事業者は、共通システムから申請の状況を確認できるものとする。"),
    ("h", 1, "2．スケジュール"),
    ("p", 0, "令和7年度に業務要件を整理し、令和9年4月の稼働を目指す。"),
    ("h", 2, "（1）移行の考え方"),
    ("p", 0, "既に独自の電子申請の仕組みを導入している団体は、その更新の時期に合わせて共通システムへ移行できるものとする。"),
]
# the passages every format must give: (heading path, text); the 400-character paragraph splits at 「。」
EXPECTED_PATHS = [
    (TITLE, "1．背景・目的"),
    (TITLE, "1．背景・目的"),
    (TITLE, "1．背景・目的", "（1）共通システムの機能"),
    (TITLE, "1．背景・目的", "（1）共通システムの機能"),
    (TITLE, "1．背景・目的", "（1）共通システムの機能"),
    (TITLE, "2．スケジュール"),
    (TITLE, "2．スケジュール", "（1）移行の考え方"),
]


def _expected_text(text: str) -> str:
    # the one normalisation passages apply: whitespace next to a Japanese character is layout, not content
    return text.replace("Government Cloud 上", "Government Cloud上")


def write_md(path: Path) -> Path:
    lines = [f"# {TITLE}", ""]
    for kind, level, text in DOC:
        lines += [("#" * (level + 1) + " " + text) if kind == "h" else text, ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_docx(path: Path, *, heading_style: str = "Heading", tight: bool = False) -> Path:
    """The same document as .docx: Title + heading styles (「Heading n」 or Japanese 「見出し n」)."""
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.shared import Pt

    d = docx.Document()
    if tight:  # no space between paragraphs, first-line indent: what most ministry Word files look like
        d.styles["Normal"].paragraph_format.space_after = Pt(0)
        d.styles["Normal"].paragraph_format.first_line_indent = Pt(10.5)
    if heading_style == "見出し":
        for n in (1, 2):
            st = d.styles.add_style(f"見出し {n}", WD_STYLE_TYPE.PARAGRAPH)
            st.font.size = Pt(16 - 2 * n)
            st.font.bold = True
    d.add_heading(TITLE, level=0)
    for kind, level, text in DOC:
        if kind == "h":
            if heading_style == "見出し":
                d.add_paragraph(text, style=f"見出し {level}")
            else:
                d.add_heading(text, level=level)
        else:
            d.add_paragraph(text)
    d.save(str(path))
    return path


def texts(passages: list[Passage]) -> list[tuple[tuple[str, ...], str]]:
    return [(p.headings, p.text) for p in passages]


def check_document(passages: list[Passage], file: str) -> None:
    assert [p.headings for p in passages] == EXPECTED_PATHS
    assert all(len(p.text) <= MAX_PASSAGE_CHARS for p in passages)
    assert "".join(p.text for p in passages[2:4]) == _expected_text(LONG)  # split in two, nothing lost
    assert passages[0].id == f"{file}#{TITLE} > 1．背景・目的#1"
    assert [p.n for p in passages] == [1, 2, 1, 2, 3, 1, 1]
    assert passages[4].text == "①事業者は、共通システムから申請の状況を確認できるものとする。"


# --------------------------------------------------------------------------- window.yaml and the kind option


def test_kind_defaults_to_candidate_list_and_never_comes_from_the_folder_name(tmp_path):
    raw = tmp_path / "R7-policy"  # a folder name that says "policy": it must not decide
    raw.mkdir()
    meta = load_window_meta(raw)
    assert (meta.kind, meta.kind_source, meta.title, meta.candidates) == ("candidate-list", "default", "R7-policy", None)


def test_kind_and_title_from_window_yaml_and_option_wins(tmp_path):
    raw = tmp_path / "W"
    raw.mkdir()
    (raw / "window.yaml").write_text("kind: policy-draft\ntitle: 共通化推進方針案に関する意見照会\n", encoding="utf-8")
    meta = load_window_meta(raw)
    assert (meta.kind, meta.kind_source, meta.title) == ("policy-draft", "window.yaml", "共通化推進方針案に関する意見照会")
    over = load_window_meta(raw, "candidate-list")
    assert (over.kind, over.kind_source, over.title) == ("candidate-list", "option", "共通化推進方針案に関する意見照会")
    assert load_window_meta(raw, "候補案").kind == "candidate-list"


def test_japanese_kind_names_in_window_yaml(tmp_path):
    raw = tmp_path / "W"
    raw.mkdir()
    (raw / "window.yaml").write_text("kind: 方針案\n", encoding="utf-8-sig")  # Notepad writes a BOM
    assert load_window_meta(raw).kind == "policy-draft"
    (raw / "window.yaml").write_bytes("kind: 候補案\ntitle: 第1回意見照会\n".encode("cp932"))  # an older editor's Shift_JIS
    assert (load_window_meta(raw).kind, load_window_meta(raw).title) == ("candidate-list", "第1回意見照会")


def test_unknown_kind_stops_with_the_file_and_the_allowed_values(tmp_path):
    raw = tmp_path / "W"
    raw.mkdir()
    (raw / "window.yaml").write_text("kind: draft\n", encoding="utf-8")
    for option in (None, "policy-draft"):  # both are validated, even when the option would win
        with pytest.raises(WindowMetaError) as e:
            load_window_meta(raw, option)
        msg = str(e.value)
        assert "W/window.yaml" in msg and "draft" in msg and "candidate-list" in msg and "policy-draft" in msg
    (raw / "window.yaml").write_text("kind: candidate-list\n", encoding="utf-8")
    with pytest.raises(WindowMetaError, match="--kind オプション.*candidate-list.*policy-draft"):
        load_window_meta(raw, "policy")


def test_window_yaml_candidates_and_broken_yaml(tmp_path):
    raw = tmp_path / "W"
    raw.mkdir()
    (raw / "window.yaml").write_text(
        "kind: candidate-list\ncandidates:\n  - {id: D01, name: 公営住宅管理システム, ministry: 国土交通省}\n  - {id: D02, name: 犬の登録システム}\n",
        encoding="utf-8",
    )
    meta = load_window_meta(raw)
    assert meta.candidates == (
        {"id": "D01", "name": "公営住宅管理システム", "ministry": "国土交通省"},
        {"id": "D02", "name": "犬の登録システム", "ministry": ""},
    )
    (raw / "window.yaml").write_text("candidates:\n  - {name: 名前だけ}\n", encoding="utf-8")
    with pytest.raises(WindowMetaError, match="1 件目に id と name"):
        load_window_meta(raw)
    (raw / "window.yaml").write_text("kind: [policy-draft\n", encoding="utf-8")
    with pytest.raises(WindowMetaError, match="W/window.yaml の書き方に誤り"):
        load_window_meta(raw)


# --------------------------------------------------------------------------- splitting (pure)


def test_markdown_passages_heading_paths_and_ids(tmp_path):
    path = write_md(tmp_path / "推進方針案_01_入札参加資格審査システム.md")
    passages = split_passages(path.read_text(encoding="utf-8"), path.name)
    check_document(passages, path.name)
    assert passages[0].file == path.name
    assert passages[0].text == DOC[1][2]


def test_ids_are_stable_and_unique_across_reads(tmp_path):
    path = write_md(tmp_path / "a.md")
    first = [p.id for p in read_passages(path)]
    second = [p.id for p in read_passages(path)]
    assert first == second and len(set(first)) == len(first)
    # a repeated heading path keeps counting instead of reusing ids
    dup = split_passages("# T\n\n## 1．概要\n\n一つ目。\n\n## 1．概要\n\n二つ目。\n", "d.md")
    assert [p.id for p in dup] == ["d.md#T > 1．概要#1", "d.md#T > 1．概要#2"]


def read_passages(path: Path) -> list[Passage]:
    return passages_from_blocks(read_document(path), path.name)


def test_long_paragraph_splits_at_sentence_ends_and_keeps_every_character():
    sentence = "共通化の対象となる事務の範囲は、制度所管府省庁が地方公共団体の意見を踏まえて定める。"
    text = sentence * 12
    chunks = split_long(text)
    assert len(text) > MAX_PASSAGE_CHARS and len(chunks) >= 2
    assert all(len(c) <= MAX_PASSAGE_CHARS and c.endswith("。") for c in chunks)
    assert "".join(chunks) == text
    no_stop = "あ" * 900  # a run-on text without 「。」 is still cut to the limit
    assert [len(c) for c in split_long(no_stop)] == [400, 400, 100]


def test_wrapped_lines_join_without_space_in_japanese_and_with_one_between_latin_words():
    assert join_lines(["共通システムは、事業者が一度の", "申請で複数の団体に申請できる。"]) == "共通システムは、事業者が一度の申請で複数の団体に申請できる。"
    assert join_lines(["共通システムはe-", "Govと連携させる。"]) == "共通システムはe-Govと連携させる。"
    assert join_lines(["Government", "Cloud を利用する。"]) == "Government Cloudを利用する。"
    assert join_lines(["令和9 年4 月の稼働を", "目指す。 次に"]) == "令和9年4月の稼働を目指す。次に"  # pypdf's spaces


def test_markdown_without_title_uses_the_file_name_tables_lists_page_numbers():
    md = "\n".join(
        [
            "## 1．候補一覧",
            "",
            "| 番号 | 名称 | 所管 |",
            "| --- | --- | --- |",
            "| C01 | 入札参加資格審査システム | 総務省 |",
            "",
            "- 事業者は一度の申請で済む。",
            "- 団体は共通の様式で受け付ける。",
            "",
            "- 3 -",
            "",
            "<!-- 作業メモ: 引用しない -->",
            "## 2．進め方",
            "",
            "**令和7年度**に要件を整理する。",
        ]
    )
    passages = split_passages(md, "一覧.md")
    assert texts(passages) == [
        (("一覧", "1．候補一覧"), "C01｜入札参加資格審査システム｜総務省"),
        (("一覧", "1．候補一覧"), "事業者は一度の申請で済む。"),
        (("一覧", "1．候補一覧"), "団体は共通の様式で受け付ける。"),
        (("一覧", "2．進め方"), "令和7年度に要件を整理する。"),
    ]


TXT = """令和7年4月
資料2
入札参加資格審査システムの共通化推進方針（案）

第1　総則
1．目的
　本方針は、地方公共団体が共同で利用する入札参加資格審査の
共通システムについて、整備の考え方を示すものである。

（１）対象
①　対象は物品・役務の入札参加資格とする。
②　建設工事は稼働後に追加を検討する。
ア　費用負担
　利用料は利用団体が負担する。
アクセスの方法は別に定める。

- 2 -

(2) 時期
１．稼働は令和9年4月を目指すものであり、これに向けて令和8年度に参加団体を募集する。

第2　推進体制
総務省が主体となって検討を進める。
"""


@pytest.mark.parametrize(
    "line, rank",
    [
        ("第1　総則", 1.0), ("第２章 推進体制", 1.0), ("Ⅱ．取組の方向性", 1.5),
        ("1．目的", 2.0), ("１.目的", 2.0), ("1. 目的", 2.0), ("１　目的", 2.0), ("2-1 対象業務", 2.5),
        ("（1）対象", 3.0), ("(１)対象", 3.0), ("（１）　対象", 3.0),
        ("①費用負担", 4.0), ("ⅱ）ヨコの改革", 4.5), ("ア　費用負担", 5.0), ("イ．移行", 5.0), ("（ウ）支援", 6.0), ("(a)対象", 7.0),
        # not headings: a word starting with a kana, a date after a PDF's stray space, a decimal, a sentence, too long
        ("アクセスの方法", None), ("6 月21日に閣議決定された", None), ("1.5倍に増加", None),
        ("（1）対象は物品・役務の入札参加資格とする。", None), ("（1）" + "共通化" * 20, None), ("本方針の目的", None),
    ],
)
def test_heading_rank_by_numbering(line, rank):
    assert heading_rank(line) == rank


def test_plain_text_headings_by_numbering_conventions():
    passages = split_passages(TXT, "方針.txt")
    t = "入札参加資格審査システムの共通化推進方針（案）"
    assert texts(passages) == [
        ((t, "第1総則", "1．目的"), "本方針は、地方公共団体が共同で利用する入札参加資格審査の共通システムについて、整備の考え方を示すものである。"),
        ((t, "第1総則", "1．目的", "（１）対象"), "①対象は物品・役務の入札参加資格とする。"),
        ((t, "第1総則", "1．目的", "（１）対象"), "②建設工事は稼働後に追加を検討する。"),
        ((t, "第1総則", "1．目的", "（１）対象", "ア費用負担"), "利用料は利用団体が負担する。アクセスの方法は別に定める。"),
        # a numbered line that is a whole sentence (ends in 「。」) is an item, not a heading
        ((t, "第1総則", "1．目的", "(2)時期"), "１．稼働は令和9年4月を目指すものであり、これに向けて令和8年度に参加団体を募集する。"),
        ((t, "第2推進体制"), "総務省が主体となって検討を進める。"),
    ]


def test_text_encodings_utf8_bom_and_cp932(tmp_path):
    d = tmp_path / "raw" / "references"
    d.mkdir(parents=True)
    (d / "a_sjis.txt").write_bytes(TXT.encode("cp932"))
    (d / "b_bom.txt").write_bytes(TXT.encode("utf-8-sig"))
    (d / "c.md").write_bytes(write_md(tmp_path / "c.md").read_bytes().decode("utf-8").encode("cp932"))
    refs = load_references(tmp_path / "raw")
    assert refs.problems == () and refs.files == ("a_sjis.txt", "b_bom.txt", "c.md")
    by_file = {f: [p.text for p in refs.passages if p.file == f] for f in refs.files}
    assert by_file["a_sjis.txt"] == by_file["b_bom.txt"] and len(by_file["a_sjis.txt"]) == 6
    check_document([p for p in refs.passages if p.file == "c.md"], "c.md")


# --------------------------------------------------------------------------- .docx


@pytest.mark.parametrize("style", ["Heading", "見出し"])
def test_docx_heading_styles_give_the_same_passages_as_markdown(tmp_path, style):
    md = read_passages(write_md(tmp_path / "x.md"))
    doc = read_passages(write_docx(tmp_path / "x.docx", heading_style=style))
    check_document(doc, "x.docx")
    assert texts(doc) == texts(md)


def test_docx_tables_and_numbered_paragraphs_without_styles(tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("令和6年9月")
    d.add_paragraph("共通化候補一覧（案）")
    d.add_paragraph("1．候補")
    t = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("番号", "名称", "所管"), ("C01", "入札参加資格審査システム", "総務省"), ("C03", "建築確認電子申請システム等", "国土交通省")]):
        for c, v in enumerate(row):
            t.cell(r, c).text = v
    d.add_paragraph("2．今後の進め方")
    d.add_paragraph("各候補の推進方針案は、令和7年3月までに作成する。")
    d.add_paragraph("")
    d.add_paragraph("3")  # a page number typed as a paragraph
    d.save(str(tmp_path / "一覧.docx"))
    passages = read_passages(tmp_path / "一覧.docx")
    assert texts(passages) == [
        (("共通化候補一覧（案）", "1．候補"), "C01｜入札参加資格審査システム｜総務省"),
        (("共通化候補一覧（案）", "1．候補"), "C03｜建築確認電子申請システム等｜国土交通省"),
        (("共通化候補一覧（案）", "2．今後の進め方"), "各候補の推進方針案は、令和7年3月までに作成する。"),
    ]


def test_docx_tracked_changes_content_controls_and_text_boxes(tmp_path):
    """Text python-docx's Paragraph.text does not see: tracked insertions, content controls, text boxes."""
    import docx
    from docx.oxml import parse_xml

    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    d = docx.Document()
    d.add_heading("推進方針案（見え消し）", level=0)
    d.add_heading("1．スケジュール", level=1)
    body = d.element.body
    sect = body[-1]  # keep w:sectPr last
    sect.addprevious(parse_xml(
        f"<w:p {w}><w:r><w:t>稼働は令和</w:t></w:r>"
        f"<w:del w:id=\"1\" w:author=\"a\"><w:r><w:delText>8</w:delText></w:r></w:del>"
        f"<w:ins w:id=\"2\" w:author=\"a\"><w:r><w:t>9</w:t></w:r></w:ins>"
        f"<w:r><w:t>年度を目指す。</w:t></w:r></w:p>"
    ))
    sect.addprevious(parse_xml(
        f"<w:sdt {w}><w:sdtPr/><w:sdtContent><w:p><w:r><w:t>移行は更新時期に合わせて行う。</w:t></w:r></w:p></w:sdtContent></w:sdt>"
    ))
    sect.addprevious(parse_xml(
        f"<w:p {w}><w:r><w:t>詳細は別に定める。</w:t></w:r><w:r><w:pict><v:shape xmlns:v=\"urn:schemas-microsoft-com:vml\"><v:textbox>"
        f"<w:txbxContent><w:p><w:r><w:t>※費用は利用団体が負担する。</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>"
    ))
    d.save(str(tmp_path / "見え消し.docx"))
    passages = read_passages(tmp_path / "見え消し.docx")
    assert [p.text for p in passages] == ["稼働は令和9年度を目指す。", "移行は更新時期に合わせて行う。", "詳細は別に定める。", "※費用は利用団体が負担する。"]
    assert all(p.headings == ("推進方針案（見え消し）", "1．スケジュール") for p in passages)


# --------------------------------------------------------------------------- .pdf (LibreOffice for a Japanese text layer)


def _japanese_font_dir() -> Path | None:
    try:
        import matplotlib_fontja
    except ImportError:
        return None
    d = Path(matplotlib_fontja.__file__).parent / "fonts"
    return d if d.is_dir() else None


def convert_to_pdf(sources: list[Path], outdir: Path, *extra: str) -> None:
    """LibreOffice → PDF (one call for many files); skipped visibly where LibreOffice is not installed."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice:
        pytest.skip("LibreOffice (soffice) がないため、テキスト付き PDF のテストを飛ばします（apt-get install libreoffice-writer-nogui）")
    if any(s.suffix in (".docx", ".md", ".txt") for s in sources) and not list(Path(os.path.realpath(soffice)).parent.glob("libswlo*")):
        pytest.skip("LibreOffice Writer がないため（calc だけでは文書を PDF にできない）、テキスト付き PDF のテストを飛ばします（apt-get install libreoffice-writer-nogui）")
    env = dict(os.environ)
    fonts = _japanese_font_dir()
    if fonts is not None:  # LibreOffice needs a Japanese font to write a Japanese text layer
        conf = outdir / "fonts.conf"
        conf.write_text(
            '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
            f'<include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>{fonts}</dir>'
            f"<cachedir>{outdir / 'fc'}</cachedir></fontconfig>",
            encoding="utf-8",
        )
        env["FONTCONFIG_FILE"] = str(conf)
    profile = f"-env:UserInstallation={(outdir / 'lo_profile').as_uri()}"  # own profile: no clash with a running LibreOffice
    cmd = [soffice, profile, "--headless", *extra, "--convert-to", "pdf", "--outdir", str(outdir), *map(str, sources)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    missing = [p.name for p in sources if not p.with_suffix(".pdf").is_file()]
    assert not missing, f"LibreOffice wrote no PDF for {missing}"


@pytest.fixture(scope="module")
def soffice_pdfs(tmp_path_factory):
    """The test document as .docx (two layouts) and .txt, converted to PDF by LibreOffice."""
    d = tmp_path_factory.mktemp("pdf")
    docs = [write_docx(d / "loose.docx"), write_docx(d / "tight.docx", tight=True)]
    txt = d / "plain.txt"
    txt.write_text(TXT, encoding="utf-8")
    convert_to_pdf(docs, d)
    convert_to_pdf([txt], d, "--infilter=Text (encoded):UTF8,LF,,,")
    return {p.stem: p.with_suffix(".pdf") for p in [*docs, txt]}


@pytest.mark.parametrize("layout", ["loose", "tight"])
def test_pdf_text_layer_gives_the_same_passages_as_markdown_and_docx(tmp_path, soffice_pdfs, layout):
    pdf = read_passages(soffice_pdfs[layout])
    md = read_passages(write_md(tmp_path / f"{layout}.md"))
    docx_ = read_passages(write_docx(tmp_path / f"{layout}.docx", tight=layout == "tight"))
    # identical heading paths and texts: lines broken mid-sentence are joined, pypdf's stray spaces
    # (「令和9 年4 月」, 「。 」) dropped, paragraphs found from the geometry (gaps, indents, short last lines)
    check_document(pdf, soffice_pdfs[layout].name)
    assert texts(pdf) == texts(md) == texts(docx_)


def test_pdf_from_plain_text_finds_numbered_headings(soffice_pdfs):
    pdf = read_passages(soffice_pdfs["plain"])
    txt = split_passages(TXT, "plain.pdf")
    assert [p.headings for p in pdf if p.n == 1] == [p.headings for p in txt if p.n == 1]  # the same heading paths

    def by_path(passages):
        out: dict[tuple[str, ...], str] = {}
        for p in passages:
            out[p.headings] = out.get(p.headings, "") + p.text
        return out

    assert by_path(pdf) == by_path(txt)  # the same text under every heading, page number 「- 2 -」 dropped
    # What differs: the .txt keeps 「利用料は…負担する。」 and the unindented line after it in one paragraph
    # (a paragraph ends at a blank line); the PDF cannot see the text's line ends, and its short line
    # ending in 「。」 ends a paragraph there.
    assert len(pdf) == len(txt) + 1
    assert [p.text for p in pdf if p.headings[-1] == "ア費用負担"] == ["利用料は利用団体が負担する。", "アクセスの方法は別に定める。"]


def test_pdf_with_a_scanned_page_names_the_page(tmp_path, soffice_pdfs):
    from PIL import Image
    from pypdf import PdfReader, PdfWriter

    Image.new("RGB", (600, 800), "white").save(tmp_path / "scan.pdf")
    w = PdfWriter()
    for src in (soffice_pdfs["loose"], tmp_path / "scan.pdf"):
        for page in PdfReader(str(src)).pages:
            w.add_page(page)
    raw = tmp_path / "raw"
    (raw / "references").mkdir(parents=True)
    with open(raw / "references" / "mixed.pdf", "wb") as f:
        w.write(f)
    refs = load_references(raw)
    n_pages = len(PdfReader(str(soffice_pdfs["loose"])).pages)
    assert len(refs.passages) == len(EXPECTED_PATHS)
    assert refs.problems == (f"mixed.pdf: {n_pages + 1} ページにはテキストがありません（スキャン画像の可能性）。そのページの内容は照合に使われません。",)


# --------------------------------------------------------------------------- a window's folder: problems


def test_scanned_pdf_and_unsupported_files_are_reported_and_the_rest_used(tmp_path):
    from PIL import Image

    raw = tmp_path / "raw"
    refs_dir = raw / "references"
    (refs_dir / "別添").mkdir(parents=True)
    Image.new("L", (400, 560), 255).save(refs_dir / "scan.pdf")  # an image-only PDF, no text layer
    write_md(refs_dir / "別添" / "方針.md")
    (refs_dir / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0 not a docx")
    (refs_dir / "memo").write_text("メモ", encoding="utf-8")
    (refs_dir / "~$方針.docx").write_bytes(b"lock")
    (refs_dir / "broken.docx").write_bytes(b"PK\x03\x04 truncated")
    (refs_dir / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    refs = load_references(raw)
    assert refs.source == "window"
    assert refs.files == ("別添/方針.md",)
    check_document(list(refs.passages), "別添/方針.md")
    problems = "\n".join(refs.problems)
    assert len(refs.problems) == 6, problems
    assert "scan.pdf: この PDF にはテキストがありません（スキャン画像の PDF の可能性）。テキスト付きの PDF か .docx を置いてください。" in refs.problems
    assert "old.doc: 参考文書として読めない形式です（.doc）。古い Word 形式" in problems
    assert "memo: 参考文書として読めない形式です（拡張子なし）" in problems
    assert "~$方針.docx: Word などが開いている間に作る一時ファイル" in problems
    assert "broken.docx: Word 文書（.docx）として読めません" in problems
    assert "broken.pdf: PDF として読めません" in problems
    with pytest.raises(Exception, match="scan.pdf: この PDF にはテキストがありません"):
        read_document(refs_dir / "scan.pdf")


def test_empty_references_folder_is_a_problem_not_the_bundled_set(tmp_path):
    raw = tmp_path / "R9-x"
    (raw / "references").mkdir(parents=True)
    refs = load_references(raw)
    assert (refs.source, refs.passages, refs.files) == ("window", (), ())
    assert len(refs.problems) == 1 and refs.problems[0].startswith("R9-x/references: 参考文書がありません")


# --------------------------------------------------------------------------- the bundled base set


def test_no_references_folder_uses_the_bundled_base_set(tmp_path):
    refs = load_references(tmp_path)
    assert refs.source == "bundled" and refs.problems == ()
    assert refs.files == ("01_基本方針.md", "02_共通化候補一覧.md")
    by_file = {f: [p for p in refs.passages if p.file == f] for f in refs.files}
    assert by_file["01_基本方針.md"][0].headings[0] == "国・地方デジタル共通基盤の整備・運用に関する基本方針"
    assert by_file["02_共通化候補一覧.md"][0].headings[0] == "共通化候補（令和6年度選定分）一覧"
    assert len(by_file["01_基本方針.md"]) >= 20 and len(by_file["02_共通化候補一覧.md"]) >= 30
    assert all(0 < len(p.text) <= MAX_PASSAGE_CHARS for p in refs.passages)
    assert len({p.id for p in refs.passages}) == len(refs.passages)
    # every candidate C01–C12 has its own section in the candidate list
    sections = {p.headings[1][0] for p in by_file["02_共通化候補一覧.md"] if len(p.headings) > 1}
    assert set("①②③④⑤⑥⑦⑧⑨⑩⑪⑫") <= sections


def test_bundled_set_is_package_data():
    folder = bundled_references_dir()
    assert folder.is_dir() and folder.resolve().is_relative_to((paths.PROJECT_ROOT / "pipeline").resolve())
    config = tomllib.loads((paths.PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["pipeline"]
    shipped = {p.name for pattern in patterns for p in (paths.PROJECT_ROOT / "pipeline").glob(pattern)}
    assert {p.name for p in folder.iterdir() if p.is_file()} <= shipped


LABELED_R6 = paths.LABELED / "references" / "R6-candidates"


def test_bundled_set_is_the_labelled_r6_documents():
    if not LABELED_R6.is_dir():
        pytest.skip(f"{LABELED_R6} がありません")
    for name in ("01_基本方針.md", "02_共通化候補一覧.md"):
        assert (bundled_references_dir() / name).read_bytes() == (LABELED_R6 / name).read_bytes(), (
            f"{name}: 同梱版が data/labeled/references/R6-candidates と違います（コピーし直してください）"
        )


@pytest.mark.parametrize("window", ["R6-candidates", "R7-policy", "R7-progress"])
def test_labelled_quotes_fall_in_exactly_one_passage(window):
    """The quotes the labels cite (settles.csv, near_misses.csv) each lie inside one passage of their file."""
    folder = paths.LABELED / "references" / window
    if not folder.is_dir():
        pytest.skip(f"{folder} がありません")
    docs = [p for p in sorted(folder.iterdir()) if p.suffix in (".md", ".txt", ".docx", ".pdf") and p.name not in ("CARD.md", "README.md")]
    passages = [p for doc in docs for p in read_passages(doc)]
    rows = []
    for name in ("settles.csv", "near_misses.csv"):
        if (folder / name).is_file():
            with open(folder / name, encoding="utf-8-sig", newline="") as f:
                rows += list(csv.DictReader(f))
    if not rows:
        pytest.skip(f"{window}: settles.csv / near_misses.csv がまだありません")
    hits = [sum(r["quote"] in p.text for p in passages if p.file == r["file"]) for r in rows]
    missing = [(r["opinion_id"], r["file"], r["quote"][:40], n) for r, n in zip(rows, hits) if n != 1]
    assert missing == []


def _docx_from_markdown(md: Path, out: Path, tight: bool) -> Path:
    """A Word version of a Markdown document: 「#」 → Title, 「##」 → Heading 1, … (what a secretariat's draft looks like)."""
    import docx
    from docx.shared import Pt

    d = docx.Document()
    if tight:
        d.styles["Normal"].paragraph_format.space_after = Pt(0)
        d.styles["Normal"].paragraph_format.first_line_indent = Pt(10.5)
    for i, block in enumerate(markdown_blocks(md.read_text(encoding="utf-8"))):
        if block.is_heading:
            d.add_heading(block.text, level=0 if i == 0 else min(int(block.rank) - 1, 9))
        else:
            d.add_paragraph(block.text)
    d.save(str(out))
    return out


@pytest.mark.slow
def test_bundled_set_reads_the_same_as_docx_and_pdf(tmp_path):
    """The base set converted to .docx and to PDF (LibreOffice) gives the same heading paths and texts."""
    mds = sorted(bundled_references_dir().glob("*.md"))
    docs = [_docx_from_markdown(md, tmp_path / f"{md.stem}.docx", tight=True) for md in mds]
    convert_to_pdf(docs, tmp_path)
    for md, doc in zip(mds, docs):
        want = texts(read_passages(md))
        assert texts(read_passages(doc)) == want
        assert texts(read_passages(doc.with_suffix(".pdf"))) == want, md.name
