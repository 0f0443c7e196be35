"""The window's own candidate list: window.yaml, else the candidate-list document, else the bundled list."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.candidates import CandidateListError, candidate_from_input, derived_aliases, resolve_candidates
from pipeline.cli import app
from pipeline.config import Candidate
from pipeline.features import parse_stated_candidate
from pipeline.references import WindowMetaError, load_references, load_window_meta

LIST_DOC = """# 共通化候補（令和8年度選定分）一覧

## 候補の選定について

本一覧は、令和8年度に共通化を検討する候補を示すものである。

## K01　公営住宅管理システム＜国土交通省＞

公営住宅の入居者募集、抽選、家賃の算定及び収入申告の受付を共通のシステムで行うものである。

## K02　道路占用許可等の電子申請システム＜国土交通省＞

道路占用許可の申請をオンラインで受け付け、占用料の算定を行うものである。

### 検討の背景

占用許可の申請は紙の書面が中心である。

## K03　犬の登録・狂犬病予防注射済票交付の管理システム＜厚生労働省＞

犬の登録及び注射済票の交付の記録を共通のシステムで管理するものである。
"""


def write_window(root: Path, yaml_text: str | None = None, doc: str | None = LIST_DOC, name: str = "02_共通化候補一覧.md") -> Path:
    w = root / "R8-test"
    (w / "references").mkdir(parents=True)
    if doc is not None:
        (w / "references" / name).write_text(doc, encoding="utf-8")
    (w / "references" / "01_基本方針.md").write_text("# 基本方針\n\n## 基本的な考え方\n\n共通化は地方公共団体の主体的な判断による。\n", encoding="utf-8")
    if yaml_text is not None:
        (w / "window.yaml").write_text(yaml_text, encoding="utf-8")
    return w


def resolve(w: Path, domain):
    return resolve_candidates(load_window_meta(w), load_references(w), domain, w / "references")


def test_window_yaml_candidates_come_first_and_are_described_by_the_document(tmp_path, domain):
    w = write_window(
        tmp_path,
        "kind: candidate-list\ncandidates:\n  - {id: K01, name: 公営住宅管理システム, ministry: 国土交通省}\n  - {id: K02, name: 道路占用許可等の電子申請システム, ministry: 国土交通省}\n",
    )
    cl = resolve(w, domain)
    assert cl.source == "window.yaml"
    assert [c.id for c in cl.candidates] == ["K01", "K02", "C00"]  # the cross-cutting entry is added
    assert cl.general_id == "C00" and cl.candidates[-1].general
    assert "家賃の算定" in cl.candidates[0].description  # from the document's K01 section
    assert "占用許可の申請は紙" in cl.candidates[1].description  # sub-headings belong to their candidate
    assert cl.candidates[1].number == 2  # the list position when none is given


def test_document_only_list_with_codes(tmp_path, domain):
    cl = resolve(write_window(tmp_path, "kind: candidate-list\n"), domain)
    assert cl.source == "references/02_共通化候補一覧.md"
    assert [(c.id, c.ministry) for c in cl.candidates[:3]] == [("K01", "国土交通省"), ("K02", "国土交通省"), ("K03", "厚生労働省")]
    assert cl.candidates[0].name == "公営住宅管理システム"
    assert "公営住宅" in cl.candidates[0].aliases


def test_circled_numbers_give_c_ids_and_the_survey_item_follows(tmp_path, domain):
    doc = (
        "# 候補一覧\n\n## ① 食品衛生法に基づく営業許可・届出システム＜厚生労働省＞\n\n飲食店の営業許可の申請を受け付ける。\n\n"
        "## ② 狩猟免許・鳥獣捕獲等許可の申請システム＜環境省＞\n\n狩猟免許の申請を受け付ける。\n\n"
        "## 【調査・検討】議会の会議録・議案管理システムの状況調査＜総務省＞\n\n状況を調査する。\n"
    )
    cl = resolve(write_window(tmp_path, None, doc), domain)
    assert [c.id for c in cl.candidates] == ["C01", "C02", "C03", "C00"]
    assert cl.candidates[0].name == "食品衛生法に基づく営業許可・届出システム"  # a new system under an old code
    assert cl.candidates[2].name.startswith("【調査・検討】")


def test_numbered_sub_headings_are_not_candidates(tmp_path, domain):
    doc = (
        "# 進捗状況の報告\n\n## 候補ごとの進捗\n\n### （1）入札参加資格審査システム（総務省）\n\n進んでいる。\n\n"
        "### （2）事業所台帳管理システム（厚生労働省）\n\n#### ①電子申請・届出\n\n受付を始めた。\n\n#### ②事業所台帳\n\n設計中である。\n"
    )
    cl = resolve(write_window(tmp_path, None, doc, name="進捗報告.md"), domain)
    assert [c.id for c in cl.candidates] == ["C01", "C02", "C00"]
    assert "設計中" in cl.candidates[1].description


def test_neither_gives_the_bundled_list(tmp_path, domain):
    cl = resolve(write_window(tmp_path, "kind: candidate-list\n", doc=None), domain)
    assert cl.source == "bundled"
    assert [c.id for c in cl.candidates] == list(domain.candidate_ids)
    assert all(c.description for c in cl.candidates)  # described by the bundled 共通化候補一覧


def test_no_references_folder_gives_the_bundled_list(tmp_path, domain):
    w = tmp_path / "W"
    w.mkdir()
    assert resolve(w, domain).source == "bundled"


def test_a_duplicate_id_stops_with_file_and_line(tmp_path, domain):
    doc = LIST_DOC + "\n## K02　農地転用許可システム＜農林水産省＞\n\n農地転用の許可を行う。\n"
    with pytest.raises(CandidateListError) as e:
        resolve(write_window(tmp_path, None, doc), domain)
    msg = str(e.value)
    assert "02_共通化候補一覧.md" in msg and "行目" in msg and "K02" in msg and "重複" in msg


def test_a_heading_without_a_name_stops_with_file_and_line(tmp_path, domain):
    doc = LIST_DOC + "\n## K04＜農林水産省＞\n\n説明。\n"
    with pytest.raises(CandidateListError) as e:
        resolve(write_window(tmp_path, None, doc), domain)
    line = len(LIST_DOC.splitlines()) + 2  # the blank line, then the heading
    assert f"02_共通化候補一覧.md の {line} 行目" in str(e.value) and "名称がありません" in str(e.value)


def test_window_yaml_with_duplicate_ids_is_refused(tmp_path):
    w = write_window(tmp_path, "candidates:\n  - {id: K01, name: 甲}\n  - {id: K01, name: 乙}\n")
    with pytest.raises(WindowMetaError, match="重複"):
        load_window_meta(w)


def test_what_people_type_for_a_candidate(tmp_path, domain):
    cl = resolve(write_window(tmp_path, None), domain)
    d = domain.with_candidates(cl.candidates)
    assert candidate_from_input("K02", d) == "K02"
    assert candidate_from_input("k03", d) == "K03"
    assert candidate_from_input("2", d) == "K02"
    assert candidate_from_input("公営住宅管理システム", d) == "K01"
    assert candidate_from_input("道路占用", d) == "K02"
    assert candidate_from_input("全般", d) == "C00"
    with pytest.raises(ValueError, match="候補一覧にありません"):
        candidate_from_input("入札参加資格審査システム", d)
    assert candidate_from_input("①", domain) == "C01"
    assert candidate_from_input("預貯金", domain) == "C04"


def test_a_candidate_typed_as_the_lists_show_it(domain):
    """「ID 名称」 (the spreadsheet drop-down, 対象 cells) and 「ID（名称）」 (the error message's list)."""
    d = domain.with_candidates([Candidate("R10-01", 1, "埋火葬許可証の電子交付・管理システム", ()), Candidate("R10-02", 2, "浄化槽台帳の管理システム", ())])
    assert candidate_from_input("R10-01 埋火葬許可証の電子交付・管理システム", d) == "R10-01"
    assert candidate_from_input("R10-02（浄化槽台帳の管理システム）", d) == "R10-02"
    assert candidate_from_input("r10-02：浄化槽台帳", d) == "R10-02"
    with pytest.raises(ValueError, match="名称が合いません"):
        candidate_from_input("R10-01 浄化槽台帳", d)


def test_stated_column_is_read_against_the_window_list(tmp_path, domain):
    cl = resolve(write_window(tmp_path, None), domain)
    d = domain.with_candidates(cl.candidates)
    assert parse_stated_candidate("K03 犬の登録", d) == "K03"
    assert parse_stated_candidate("2", d) == "K02"
    assert parse_stated_candidate("公営住宅", d) == "K01"
    assert parse_stated_candidate("①入札参加資格審査システム", d) == "K01"  # the number, as the window's list numbers it


def test_derived_short_names():
    assert "公営住宅" in derived_aliases("公営住宅管理システム")
    assert "営業許可" in derived_aliases("食品衛生法に基づく営業許可・届出システム")
    assert "自動車臨時運行許可" in derived_aliases("自動車臨時運行許可（仮ナンバー）の申請・管理システム")


# --------------------------------------------------------------------------- the whole batch with a new list


def test_run_decide_export_with_a_new_candidate_list(tmp_path, tiny_model_dir):
    from pipeline.queue import open_queue, window_table

    w = write_window(tmp_path, "kind: candidate-list\ntitle: 令和8年度候補の意見照会\n")
    pd.DataFrame(
        {
            "番号": [1, 2, 3],
            "団体名": ["宮城県仙台市", "熊本県合志市", "長野県小布施町"],
            "対象": ["K01", "", "3"],
            "意見": [
                "公営住宅の入居者募集と抽選を共通のシステムで行う場合、収入申告の様式を全国で統一していただきたい。団体ごとに様式が異なり、入居者の負担になっているため。",
                "道路占用の許可申請をオンラインで受け付ける際は、占用料の減免の扱いを団体ごとに設定できるようにしてほしい。",
                "犬の登録の記録を共通化するなら、転入・転出時の登録情報の引継ぎを自動で行えるようにしていただきたい。",
            ],
        }
    ).to_csv(w / "意見.csv", index=False, encoding="utf-8-sig")
    db = f"sqlite:///{tmp_path / 'q.db'}"
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(w), "--out", str(out), "--model-dir", str(tiny_model_dir), "--db", db])
    assert r.exit_code == 0, r.output
    ops = pd.read_csv(out / "opinions.csv", dtype=str, keep_default_na=False)
    assert len(ops) == 3
    assert set(ops["candidate_id"]) <= {"K01", "K02", "K03", "C00"}
    names = dict(zip(ops["candidate_id"], ops["candidate_name"]))
    assert all(names[k] for k in names)
    manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["candidate_list"]["source"] == "references/02_共通化候補一覧.md"
    assert [c["id"] for c in manifest["candidate_list"]["candidates"]] == ["K01", "K02", "K03", "C00"]
    # a reviewer names the candidate by number, name or id of the window's list
    table = window_table(open_queue(db), "R8-test")
    first = table.iloc[0]
    r = CliRunner().invoke(
        app, ["queue", "decide", first["opinion_id"], "--window", "R8-test", "--reviewer", "佐藤", "--category", "共有すべきもの", "--candidate", "②", "--seen", first["read_code"], "--only-this", "--db", db]
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    table = window_table(open_queue(db), "R8-test")
    assert table.iloc[0]["final_candidate"] == "K02" and table.iloc[0]["final_category"] == "SHARE"
    r = CliRunner().invoke(app, ["queue", "decide", first["opinion_id"], "--window", "R8-test", "--reviewer", "佐藤", "--candidate", "C05", "--seen", first["read_code"], "--only-this", "--overwrite", "--db", db])
    assert r.exit_code != 0 and "候補一覧にありません" in r.output
    r = CliRunner().invoke(app, ["export", "--window", "R8-test", "--out", str(out), "--db", db])
    assert r.exit_code == 0, r.output
    wt = pd.read_csv(out / "wt_export.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert "道路占用許可等の電子申請システム" in set(wt["対象候補"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "この照会回の対象候補" in html and "公営住宅管理システム" in html and "02_共通化候補一覧.md" in html


def test_a_malformed_list_stops_the_run_in_japanese(tmp_path, tiny_model_dir):
    w = write_window(tmp_path, None, LIST_DOC + "\n## K01　重複した候補＜総務省＞\n\n説明。\n")
    (w / "意見.csv").write_text("意見\n公営住宅の家賃算定を共通化してほしい。\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["run", str(w), "--out", str(tmp_path / "out"), "--model-dir", str(tiny_model_dir), "--db", f"sqlite:///{tmp_path / 'q.db'}"])
    assert r.exit_code != 0
    assert "候補一覧を読めません" in r.output and "行目" in r.output and "K01" in r.output
    assert not (tmp_path / "out" / "opinions.csv").exists()
