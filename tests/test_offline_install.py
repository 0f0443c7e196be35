"""Install on an isolated PC (docs/INSTALL_OFFLINE.md): the wheelhouse alone, with no network at all,
installs the project into a fresh venv that runs the bundled sample window.

Slow: builds the wheelhouse (~3 min, ~0.8 GB; or give one with OPINIONS_WHEELHOUSE=DIR), installs it
under `unshare -n` (~4 min), runs `opinions run data/raw/R7-sample` under `unshare -n`. The model: by
default the one this session already trained (models/default if there is one, else the fresh-install
fixture's, which test_cli's slow test shares); with OPINIONS_OFFLINE_TRAIN=1 the offline venv trains it
itself, as `make sample` does on a fresh install (~5–10 min more on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [
    pytest.mark.slow,
    # ~15 min and ~4 GB (wheelhouse, fresh venv, sample run): run by `make test-offline`, not by `make test`
    pytest.mark.skipif(os.environ.get("OPINIONS_TEST_OFFLINE") != "1", reason="offline install test: run `make test-offline` (OPINIONS_TEST_OFFLINE=1)"),
]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = Path("data") / "raw" / "R7-sample"
# what the test process has set for itself (conftest, the Makefile) must not help the offline run
_DROP = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "MLFLOW_TRACKING_URI", "OPINIONS_DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH")


def _netless_prefix() -> list[str] | None:
    """`unshare -n` (root) or `unshare -rn` (an unprivileged user namespace): a network namespace with
    only a loopback that is down, so nothing can reach any address."""
    if not shutil.which("unshare"):
        return None
    for cmd in (["unshare", "-n"], ["unshare", "-rn"]):
        if subprocess.run([*cmd, "true"], capture_output=True).returncode == 0:
            return cmd
    return None


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in _DROP}
    return {**env, **extra}


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.fixture(scope="module")
def netless() -> list[str]:
    cmd = _netless_prefix()
    if cmd is None:
        pytest.skip("unshare -n / unshare -rn is not usable here (no util-linux unshare, or neither root nor user namespaces): cannot cut the network")
    return cmd


@pytest.fixture(scope="module")
def wheelhouse(netless):
    given = os.environ.get("OPINIONS_WHEELHOUSE")
    if given:
        wh = Path(given).resolve()
        assert (wh / "BUILD_INFO.txt").exists(), f"OPINIONS_WHEELHOUSE={given}: not a wheelhouse built by scripts/build_wheelhouse.sh"
        yield wh
        return
    tmp = Path(tempfile.mkdtemp(prefix="opinions-wheelhouse-"))
    try:
        res = subprocess.run(["bash", str(ROOT / "scripts" / "build_wheelhouse.sh"), str(tmp / "wheelhouse")], cwd=ROOT, capture_output=True, text=True)
        if res.returncode == 3:  # gathered, but the folder alone does not resolve the project: a packaging bug
            pytest.fail("the wheelhouse does not resolve the project on its own:\n" + _tail(res.stdout + res.stderr))
        if res.returncode != 0:
            pytest.skip("the wheelhouse could not be built here (no package index reachable?):\n" + _tail(res.stderr, 15))
        yield tmp / "wheelhouse"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _copy_repository(dest: Path) -> None:
    """The repository as it would be carried to the PC: the files git knows of (tracked and not
    ignored), without .venv, outputs, models or databases."""
    res = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True)
    if res.returncode == 0:
        for rel in filter(None, res.stdout.decode().split("\0")):
            src = ROOT / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    else:  # not a git checkout
        junk = shutil.ignore_patterns(".git", ".venv", "wheelhouse*", "outputs", "mlruns", "mlartifacts", "*.db", "__pycache__", "*.egg-info", ".pytest_cache")
        shutil.copytree(ROOT, dest, ignore=junk, dirs_exist_ok=True)
        shutil.rmtree(dest / "models" / "default", ignore_errors=True)


def _model_for_the_run(request) -> tuple[Path | None, str]:
    """(a trained model to copy, where it came from), or (None, why) for the offline venv to train one."""
    if os.environ.get("OPINIONS_OFFLINE_TRAIN") == "1":
        return None, "OPINIONS_OFFLINE_TRAIN=1"
    if (ROOT / "models" / "default" / "meta.json").exists():
        return ROOT / "models" / "default", "copied from models/default"
    run = request.getfixturevalue("fresh_sample_run")  # already trained in a full run (test_cli)
    if (run.model_dir / "meta.json").exists():
        return run.model_dir, "copied from the fresh-install fixture's model"
    return None, "no trained model at hand"


def _input_rows(folder: Path) -> int:
    """Data rows of the sample's files, counted without the project's ingest code: CSV through pandas
    (UTF-8 with BOM or CP932), the .xlsx's non-blank rows below its header (a title row stands above it)."""
    n = 0
    for p in sorted(folder.iterdir()):
        if p.suffix == ".csv":
            for enc in ("utf-8-sig", "cp932"):
                try:
                    n += len(pd.read_csv(p, encoding=enc, dtype=str, keep_default_na=False))
                    break
                except UnicodeDecodeError:
                    continue
            else:
                raise AssertionError(f"{p}: neither UTF-8 nor CP932")
        elif p.suffix == ".xlsx":
            from openpyxl import load_workbook

            rows = [r for r in load_workbook(p, read_only=True).worksheets[0].iter_rows(values_only=True) if any(c not in (None, "") for c in r)]
            header = next(i for i, r in enumerate(rows) if sum(c not in (None, "") for c in r) >= 3)
            n += len(rows) - header - 1
    return n


def test_offline_install_from_the_wheelhouse_runs_the_sample(netless, wheelhouse, request, tmp_path):
    work = Path(tempfile.mkdtemp(prefix="opinions-offline-"))
    try:
        repo = work / "opinions"
        _copy_repository(repo)
        assert not (repo / ".venv").exists() and not (repo / "models" / "default").exists()

        # 1. a fresh venv from the wheelhouse only, with no network and no pip configuration
        report = work / "pip-report.json"
        env = _clean_env(OFFLINE_INSTALL_REPORT=str(report))
        res = subprocess.run([*netless, "bash", "scripts/install_offline.sh", "--wheelhouse", str(wheelhouse)], cwd=repo, env=env, capture_output=True, text=True)
        assert res.returncode == 0, _tail(res.stdout + res.stderr)
        installed = json.loads(report.read_text())["install"]
        names = {i["metadata"]["name"].lower(): i for i in installed}
        assert names["torch"]["metadata"]["version"] == "2.13.0+cpu"
        assert {"opinions", "jupyterlab", "ipywidgets", "pytest"} <= set(names)
        sources = {i["metadata"]["name"]: i["download_info"]["url"] for i in installed}
        outside = {n: u for n, u in sources.items() if not u.startswith(wheelhouse.as_uri() + "/") and n != "opinions"}
        assert not outside, f"installed from outside the wheelhouse: {outside}"
        assert sources["opinions"] == repo.as_uri()  # the carried repository, editable (see docs/INSTALL_OFFLINE.md)
        bin_ = repo / ".venv" / "bin"
        assert (bin_ / ".installed").exists() and (bin_ / "opinions").exists()

        # 2. the namespace really has no network: only a loopback, and nothing answers
        probe = subprocess.run([*netless, str(bin_ / "python"), "-c", "import socket; print(','.join(n for _, n in socket.if_nameindex()))"], capture_output=True, text=True)
        assert probe.stdout.strip() == "lo", probe.stdout + probe.stderr

        # 3. the sample batch, from the repository folder, as `make sample` runs it (but into a folder of ours)
        model, origin = _model_for_the_run(request)
        if model is not None:
            shutil.copytree(model, repo / "models" / "default")
        print(f"model: {origin}")
        out = work / "out"
        res = subprocess.run([*netless, str(bin_ / "opinions"), "run", str(SAMPLE), "--out", str(out)], cwd=repo, env=_clean_env(), capture_output=True, text=True)
        assert res.returncode == 0, _tail(res.stdout + res.stderr)
        if model is None:
            assert "学習します" in res.stderr and (repo / "models" / "default" / "meta.json").exists()

        rows_in = _input_rows(repo / SAMPLE)
        ops = pd.read_csv(out / "opinions.csv", dtype=str, keep_default_na=False)
        manifest = json.loads((out / "run_manifest.json").read_text(encoding="utf-8"))
        assert rows_in > 100
        assert len(ops) == rows_in == manifest["rows_in"] == manifest["rows_out"], (len(ops), rows_in, manifest["rows_in"], manifest["rows_out"])
        assert ops["opinion_id"].is_unique
        assert not ops.duplicated(["source_file", "source_sheet", "source_row"]).any()
        assert (ops["category"] != "").all() and (ops["candidate_id"] != "").all()
        assert manifest["kind"] == "policy-draft" and manifest["references"]  # the window's own documents were read
        assert (repo / "review.db").exists()  # the queue went into the carried repository, not elsewhere
    finally:
        shutil.rmtree(work, ignore_errors=True)
