<#
.SYNOPSIS
  Windows: gather every wheel an offline install needs into one folder (default: wheelhouse\), on a
  Windows PC WITH network access. The Windows counterpart of scripts/build_wheelhouse.sh (make wheelhouse).
  NOT TESTED: written and reviewed on Linux only (docs/INSTALL_OFFLINE.md says what was tested where).

.DESCRIPTION
  The wheels must be for the PC that installs them: CPython 3.11, Windows x64. A wheelhouse built on
  Linux does not install on Windows (and the reverse), so build it on Windows with the same Python 3.11.
  Windows differs from the Linux lock in two ways this script handles:
    - torch: requirements.lock pins the Linux CPU build "torch==2.13.0+cpu"; the Windows wheel of torch
      2.13.0 on PyPI is the CPU build and is named "2.13.0", so the pin is dropped from the constraints
      and "torch==2.13.0" asked for instead (-TorchIndex adds the PyTorch CPU index if wanted);
    - packages needed only on Windows (pywinpty for Jupyter's terminals, for instance) are not in the
      Linux lock: the project is resolved with the lock as constraints, not installed from the lock,
      so pip adds them.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File scripts\build_wheelhouse.ps1
  powershell -ExecutionPolicy Bypass -File scripts\build_wheelhouse.ps1 -Wheelhouse D:\wheelhouse -Python C:\Python311\python.exe
#>
param(
    [string]$Wheelhouse = "wheelhouse",
    [string]$Python = "",
    [string]$TorchIndex = ""
)
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

function Die($msg, [int]$code = 1) { Write-Host "build_wheelhouse: $msg" -ForegroundColor Red; exit $code }
function Run([string]$exe, [string[]]$argv) {
    & $exe @argv
    if ($LASTEXITCODE -ne 0) { Die "失敗しました: $exe $($argv -join ' ')" }
}

if (-not $Python) {
    # the Python launcher knows the installed versions; else the python on PATH
    try { $Python = (& py -3.11 -c "import sys; print(sys.executable)" 2>$null) } catch { $Python = "" }
    if (-not $Python) { $Python = "python" }
}
& $Python -c "import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) and sys.implementation.name == 'cpython' else 1)"
if ($LASTEXITCODE -ne 0) { Die "$Python は CPython 3.11 ではありません。python.org の Python 3.11 (64 bit) を入れ、-Python で指定してください" }

if (-not [System.IO.Path]::IsPathRooted($Wheelhouse)) { $Wheelhouse = Join-Path $Root $Wheelhouse }
if ((Test-Path $Wheelhouse) -and (Get-ChildItem $Wheelhouse | Select-Object -First 1) -and -not (Test-Path (Join-Path $Wheelhouse "BUILD_INFO.txt"))) {
    Die "$Wheelhouse は空でなく、このスクリプトが作ったものではありません。別のフォルダを指定してください"
}
$Start = Get-Date
$Part = "$Wheelhouse.partial"
if (Test-Path $Part) { Remove-Item -Recurse -Force $Part }
New-Item -ItemType Directory -Path $Part | Out-Null

# the lock without its Linux torch pin, as constraints
$Constraints = Join-Path $Part "constraints-windows.txt"
Get-Content requirements.lock | Where-Object { $_ -notmatch '^torch==' } | Set-Content -Encoding ASCII $Constraints
$extra = @()
if ($TorchIndex) { $extra = @("--extra-index-url", $TorchIndex) }

Write-Host "== 1/3 the project (its wheel), torch CPU and every dependency, dev extra included -> $Part"
Run $Python (@("-m", "pip", "wheel", "--wheel-dir", $Part, "-c", $Constraints, "torch==2.13.0", ".[dev]", "setuptools>=68") + $extra)
if (Test-Path (Join-Path $Root "build")) { Write-Host "(setuptools left build\ in the repository: it may be deleted)" }

Write-Host "== 2/3 check: everything resolves from the folder alone (no index, no pip config)"
$saved = @{}
Get-ChildItem env: | Where-Object { $_.Name -like "PIP_*" } | ForEach-Object { $saved[$_.Name] = $_.Value; Remove-Item "env:$($_.Name)" }
$env:PIP_CONFIG_FILE = "nul"
& $Python -m pip install -q --dry-run --ignore-installed --no-index --find-links $Part -c $Constraints "opinions[dev]" "setuptools>=68"
$ok = $LASTEXITCODE
Remove-Item env:PIP_CONFIG_FILE
foreach ($k in $saved.Keys) { Set-Item "env:$k" $saved[$k] }
if ($ok -ne 0) { Die "フォルダの中身だけでは依存関係を解決できません（上のエラーを参照）" 3 }

Write-Host "== 3/3 SHA256SUMS, BUILD_INFO.txt"
$wheels = Get-ChildItem (Join-Path $Part "*.whl") | Sort-Object Name
$wheels | ForEach-Object { "{0}  {1}" -f (Get-FileHash -Algorithm SHA256 $_.FullName).Hash.ToLower(), $_.Name } | Set-Content -Encoding ASCII (Join-Path $Part "SHA256SUMS")
$pyinfo = & $Python -c "import platform, sys; print(platform.python_implementation(), platform.python_version(), sys.platform, platform.machine())"
$sha = (& git rev-parse HEAD 2>$null); if (-not $sha) { $sha = "unknown" }
@(
    "built_at: $((Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ'))",
    "python: $pyinfo",
    "git_sha: $sha",
    "requirements.lock sha256: $((Get-FileHash -Algorithm SHA256 requirements.lock).Hash.ToLower())",
    "wheels: $($wheels.Count)"
) | Set-Content -Encoding UTF8 (Join-Path $Part "BUILD_INFO.txt")

if (Test-Path $Wheelhouse) { Remove-Item -Recurse -Force $Wheelhouse }
Move-Item $Part $Wheelhouse
$size = (Get-ChildItem $Wheelhouse -File | Measure-Object -Sum Length).Sum / 1MB
Write-Host ("{0}: {1} wheels, {2:N0} MB, {3:N0} s" -f $Wheelhouse, $wheels.Count, $size, ((Get-Date) - $Start).TotalSeconds)
