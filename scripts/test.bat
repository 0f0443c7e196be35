@echo off
rem Windows: "make test" (README). Runs scripts\windows_make.ps1 test without changing the execution policy.
rem NOT TESTED on Windows (written on Linux).
powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0windows_make.ps1" test %*
exit /b %ERRORLEVEL%
