#!/usr/bin/env bash
# Regenerate the shell completion scripts from the installed `ipsms` (tests check they match).
set -euo pipefail
cd "$(dirname "$0")"
_IPSMS_COMPLETE=source_bash ipsms > ipsms.bash
_IPSMS_COMPLETE=source_zsh ipsms > _ipsms
_IPSMS_COMPLETE=source_fish ipsms > ipsms.fish
_IPSMS_COMPLETE=source_powershell ipsms > ipsms.ps1
