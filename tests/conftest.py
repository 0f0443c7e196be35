"""Shared fixtures: small frames and raw files written in every supported format."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pipeline.config import IngestConfig, load_domain, load_params  # noqa: E402

OPINIONS = [
    ("1", "青森県八戸市", "青森県", "①入札参加資格審査システム", "入札参加資格の審査項目が団体ごとに異なるため、共通化と併せて標準項目を示してほしい。", "事業者から毎年同じ書類を何度も求められるとの苦情が多いため。"),
    ("2", "青森県弘前市", "青森県", "入札", "入札参加資格の審査項目が団体ごとに異なるため、共通化と併せて標準項目を示してほしい。", "事業者から毎年同じ書類を何度も求められるとの苦情が多いため。"),
    ("3", "青森県十和田市", "青森県", "", "本市では令和10年3月まで現行システムの保守契約があるため、それまでは移行できない。", ""),
    ("4", "岩手県", "岩手県", "全般", "ガバメントクラウドへの移行経費について財政支援を拡充されたい。", "移行経費が見込みを大きく上回っているため。"),
]


@pytest.fixture(scope="session")
def domain():
    return load_domain()


@pytest.fixture(scope="session")
def params():
    return load_params()


@pytest.fixture(autouse=True)
def _queue_database_in_tmp(tmp_path, monkeypatch):
    """Guard: no test writes into the user's review.db, $OPINIONS_DATABASE_URL or configs/queue.yaml's
    database. A command run without --db gets a SQLite file of the test's own tmp_path."""
    from pipeline import paths

    monkeypatch.setattr(paths, "REVIEW_DB", tmp_path / "review-default.db")
    monkeypatch.setenv("OPINIONS_DATABASE_URL", f"sqlite:///{tmp_path / 'review-default.db'}")


@pytest.fixture()
def ingest_cfg():
    return IngestConfig()


def write_csv(path: Path, header: list[str], rows: list[tuple], encoding: str = "utf-8") -> Path:
    frame = pd.DataFrame(rows, columns=header)
    frame.to_csv(path, index=False, encoding=encoding)
    return path


def write_xlsx(path: Path, header: list[str], rows: list[tuple], title: str | None = None) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "回答"
    if title:
        ws.append([title])
    ws.append(header)
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


@pytest.fixture()
def raw_window(tmp_path) -> Path:
    """A window of three files: UTF-8 BOM CSV, CP932 CSV and .xlsx, each with other header aliases."""
    d = tmp_path / "raw" / "R9-test"
    d.mkdir(parents=True)
    write_csv(d / "aomori.csv", ["番号", "団体名", "都道府県", "対象", "意見", "理由"], OPINIONS[:2], encoding="utf-8-sig")
    write_csv(d / "towada.csv", ["No.", "回答団体", "都道府県名", "該当箇所", "ご意見", "意見の理由"], [("10",) + OPINIONS[2][1:]], encoding="cp932")
    write_xlsx(d / "iwate.xlsx", ["通番", "提出団体", "都道府県", "共通化候補", "意見内容", "理由・背景"], [("20",) + OPINIONS[3][1:]], title="共通化候補案に対する意見（岩手県取りまとめ）")
    return d


@pytest.fixture(scope="session")
def labeled(domain):
    from pipeline.labeled import load_labeled

    return load_labeled(domain=domain)


@pytest.fixture(scope="session")
def corpus_refs():
    from pipeline.labeled import load_corpus_references

    return load_corpus_references()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, labeled, domain, params, corpus_refs):
    """A quickly trained model (character n-grams + cues, a third of the train split, with the corpus
    windows' documents): for tests of the mechanics, not of quality. Quality is measured by
    `opinions evaluate` on the full model (and by the slow tests on the default model)."""
    from dataclasses import replace

    from pipeline.classify import save_model
    from pipeline.labeled import split
    from pipeline.train import fit_opinion_model

    train = split(labeled, "train")
    train = train[train.index % 3 == 0]
    cfg = replace(params.classify, features=("char", "cues"))
    model, _ = fit_opinion_model(train, domain, cfg, corpus_refs)
    d = tmp_path_factory.mktemp("model")
    save_model(model, d)
    return d


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh review-queue database: a SQLite file, or a new database on the test PostgreSQL server
    (OPINIONS_TEST_PG_URL, started by scripts/with_test_postgres.sh); skipped visibly without one."""
    import uuid

    import sqlalchemy as sa

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    url = os.environ.get("OPINIONS_TEST_PG_URL")
    if not url:
        pytest.skip("PostgreSQL: OPINIONS_TEST_PG_URL is not set (make test starts a server when it can)")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"q_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as e:
        pytest.skip(f"PostgreSQL server not reachable at {url}: {e.orig}")
    yield url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def fresh_sample_run(tmp_path_factory):
    """The README's main job once per session: no model yet → `opinions run` trains the default model
    from data/labeled (and its windows' documents), then runs the bundled sample window. Slow tests of
    quality and of the sample's outputs share it."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from pipeline import paths
    from pipeline.cli import app

    tmp = tmp_path_factory.mktemp("fresh")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    try:
        sample = paths.RAW / "R7-sample"
        db = f"sqlite:///{tmp / 'review.db'}"
        res = CliRunner().invoke(app, ["run", str(sample), "--out", str(tmp / "out"), "--model-dir", str(tmp / "model"), "--db", db])
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return SimpleNamespace(result=res, sample=sample, out=tmp / "out", model_dir=tmp / "model", db=db)
