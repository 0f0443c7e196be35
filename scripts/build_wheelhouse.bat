@echo off
rem Windows, on a PC WITH network: build wheelhouse\ (see docs\INSTALL_OFFLINE.md). Runs scripts\build_wheelhouse.ps1
rem without changing the PowerShell execution policy. Arguments are passed on, e.g. -Wheelhouse D:\wheelhouse.
rem NOT TESTED on Windows (written on Linux).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0build_wheelhouse.ps1" %*
exit /b %ERRORLEVEL%
