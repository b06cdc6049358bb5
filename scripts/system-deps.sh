#!/usr/bin/env bash
# Installs the Debian packages customs-vision needs at run time, if missing:
#   fonts-nanum (Hangul) and fonts-dejavu-core (Latin) for the synthetic document generator.
set -euo pipefail
need=()
fc-list 2>/dev/null | grep -qi nanum || need+=(fonts-nanum)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
command -v fc-list >/dev/null 2>&1 || need+=(fontconfig)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "customs-vision: please install the Debian packages: ${need[*]}" >&2
  exit 0
fi
echo "customs-vision: installing ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
