<#
.SYNOPSIS
  Windows: the two commands of the README, "make sample" and "make test", without make or bash.
  NOT TESTED ON WINDOWS: written on Linux (no Windows or PowerShell on the development machine); only the
  Linux commands it mirrors (Makefile) were run. README.md "Windows" says the same.

.DESCRIPTION
  sample  creates .venv if it is missing (CPython 3.11: torch CPU first, then the pinned set), then runs
          the batch on the bundled window data\raw\R7-sample (the first run trains the default model).
  test    the same install, then the test suite (PostgreSQL tests are skipped: no server is started).
  On a PC with no network, install from a wheelhouse first (scripts\install_offline.bat); this script then
  finds .venv\.installed and does not install again.

.EXAMPLE
  scripts\sample.bat
  scripts\test.bat
  powershell -ExecutionPolicy Bypass -File scripts\windows_make.ps1 sample
#>
param(
    [Parameter(Mandatory = $true)][ValidateSet("sample", "test")][string]$Target,
    [string]$Sample = "data\raw\R7-sample"
)
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

function Die($msg) { Write-Host "windows_make: $msg" -ForegroundColor Red; exit 1 }
function Run($exe, [string[]]$arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { Die "失敗しました（終了コード $LASTEXITCODE）: $exe $($arguments -join ' ')" }
}

# the Makefile's environment: no network for models, no DVC analytics, MLflow in the project folder
$env:HF_HUB_OFFLINE = "1"; $env:TRANSFORMERS_OFFLINE = "1"; $env:DVC_NO_ANALYTICS = "1"
if (-not $env:MLFLOW_TRACKING_URI) { $env:MLFLOW_TRACKING_URI = "sqlite:///" + ($Root -replace '\\', '/') + "/mlflow.db" }

$Py = Join-Path $Root ".venv\Scripts\python.exe"
$Installed = Join-Path $Root ".venv\.installed"
if (-not (Test-Path $Installed)) {
    Write-Host "== インストール（.venv、初回のみ。数分かかります）"
    if (-not (Test-Path $Py)) {
        $base = ""
        try { $base = (& py -3.11 -c "import sys; print(sys.executable)" 2>$null) } catch { $base = "" }
        if (-not $base) { Die "CPython 3.11 が見つかりません（py -3.11）。python.org の 64 bit 版 3.11 を入れてください" }
        Run $base @("-m", "venv", ".venv")
    }
    # the lock pins the Linux CPU build torch==2.13.0+cpu; PyPI's Windows torch 2.13.0 is the CPU build
    $Constraints = Join-Path $Root ".venv\constraints-windows.txt"
    Get-Content requirements.lock | Where-Object { $_ -notmatch '^torch==' } | Set-Content -Encoding ASCII $Constraints
    Run $Py @("-m", "pip", "install", "-q", "torch==2.13.0")
    Run $Py @("-m", "pip", "install", "-q", "-c", $Constraints, "-e", ".[dev]")
    New-Item -ItemType File -Force $Installed | Out-Null
}

if ($Target -eq "sample") {
    Run (Join-Path $Root ".venv\Scripts\opinions.exe") @("run", $Sample)
} else {
    Run $Py @("-m", "pytest", "-q")
}
