@echo off
rem Windows: offline install from wheelhouse\ (see docs\INSTALL_OFFLINE.md). Runs scripts\install_offline.ps1
rem without changing the PowerShell execution policy. Arguments are passed on, e.g. -Clear.
rem NOT TESTED on Windows (written on Linux).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0install_offline.ps1" %*
exit /b %ERRORLEVEL%
