<#
.SYNOPSIS
  Windows: install the project on a PC with no network (LGWAN) from a wheelhouse built on a networked
  Windows PC by scripts\build_wheelhouse.ps1. The counterpart of scripts/install_offline.sh.
  NOT TESTED: written and reviewed on Linux only (docs/INSTALL_OFFLINE.md says what was tested where).

.DESCRIPTION
  Creates a fresh venv (default .venv) and installs from the wheelhouse only: no index, and none of the
  PC's pip configuration (a pip.ini or PIP_* variable naming a proxy index is ignored). The repository
  is installed in editable mode, so that the batch finds configs\, params.yaml, data\labeled\ and
  models\ in the repository folder (a plain wheel install does not find them: docs/INSTALL_OFFLINE.md).

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File scripts\install_offline.ps1
  powershell -ExecutionPolicy Bypass -File scripts\install_offline.ps1 -Wheelhouse E:\wheelhouse -Clear
#>
param(
    [string]$Wheelhouse = "wheelhouse",
    [string]$Venv = ".venv",
    [string]$Python = "",
    [switch]$Clear,
    [switch]$NoDev
)
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

function Die($msg) { Write-Host "install_offline: $msg" -ForegroundColor Red; exit 1 }

if (-not $Python) {
    try { $Python = (& py -3.11 -c "import sys; print(sys.executable)" 2>$null) } catch { $Python = "" }
    if (-not $Python) { $Python = "python" }
}
& $Python -c "import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) and sys.implementation.name == 'cpython' else 1)"
if ($LASTEXITCODE -ne 0) { Die "$Python は CPython 3.11 ではありません。wheelhouse の wheel は CPython 3.11 用です。-Python で指定してください" }
if (-not [System.IO.Path]::IsPathRooted($Wheelhouse)) { $Wheelhouse = Join-Path $Root $Wheelhouse }
if (-not (Test-Path (Join-Path $Wheelhouse "*.whl"))) { Die "$Wheelhouse に wheel がありません。ネットワークのある Windows PC で scripts\build_wheelhouse.ps1 を実行して作り、持ち込んでください" }
if (-not (Get-ChildItem (Join-Path $Wheelhouse "*.whl") | Where-Object { $_.Name -like "*win_amd64*" } | Select-Object -First 1)) {
    Die "$Wheelhouse に Windows 用の wheel（win_amd64）がありません。Linux で作った wheelhouse は Windows では使えません"
}
$Start = Get-Date

$sums = Join-Path $Wheelhouse "SHA256SUMS"
if (Test-Path $sums) {
    Write-Host "== wheelhouse の検査（SHA256SUMS）"
    foreach ($line in Get-Content $sums) {
        $hash, $name = $line -split "\s+", 2
        $file = Join-Path $Wheelhouse $name
        if (-not (Test-Path $file)) { Die "$name がありません（持ち込み時のコピーを確かめてください）" }
        if ((Get-FileHash -Algorithm SHA256 $file).Hash.ToLower() -ne $hash) { Die "$name が壊れています（持ち込み時のコピーを確かめてください）" }
    }
}

# only the wheelhouse: no pip.ini, no PIP_* variable (a command-line --find-links does not replace them)
Get-ChildItem env: | Where-Object { $_.Name -like "PIP_*" } | ForEach-Object { Remove-Item "env:$($_.Name)" }
$env:PIP_CONFIG_FILE = "nul"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"

if (Test-Path $Venv) {
    if (-not $Clear) { Die "$Venv は既にあります。作り直すなら -Clear を付けてください（別の場所なら -Venv DIR）" }
    Write-Host "== $Venv を空にして作り直します"
    & $Python -m venv --clear $Venv
} else {
    Write-Host "== venv を作成: $Venv"
    & $Python -m venv $Venv
}
if ($LASTEXITCODE -ne 0) { Die "venv を作れませんでした" }
$Py = Join-Path $Venv "Scripts\python.exe"
$target = if ($NoDev) { "." } else { ".[dev]" }
$constraints = Join-Path $Wheelhouse "constraints-windows.txt"  # written by build_wheelhouse.ps1
$c = @()
if (Test-Path $constraints) { $c = @("-c", $constraints) }

Write-Host "== インストール（リポジトリを編集可能モードで、依存は $Wheelhouse から）"
& $Py -m pip install --no-index --find-links $Wheelhouse @c -e $target
if ($LASTEXITCODE -ne 0) { Die "pip install が失敗しました（上のエラーを参照）。パスが長すぎる場合は C:\opinions のような短いフォルダに置いてください" }
& $Py -m pip check
if ($LASTEXITCODE -ne 0) { Die "pip check が依存関係の不整合を報告しました" }
& $Py -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; import pipeline.cli"
if ($LASTEXITCODE -ne 0) { Die "インストールした環境で torch / pipeline を読み込めません" }
Write-Host ("インストール完了（{0:N0} 秒）: .venv\Scripts\opinions.exe run data\raw\R7-sample で見本の照会回を処理できます" -f ((Get-Date) - $Start).TotalSeconds)
