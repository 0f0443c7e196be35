@echo off
rem Windows: "make sample" (README). Runs scripts\windows_make.ps1 sample without changing the execution policy.
rem NOT TESTED on Windows (written on Linux).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0windows_make.ps1" sample %*
exit /b %ERRORLEVEL%
