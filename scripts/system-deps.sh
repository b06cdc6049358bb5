#!/usr/bin/env bash
# Installs the Debian packages customs-vision needs at run time, if missing:
#   fonts-nanum (Hangul), fonts-noto-cjk (Hanja on square seals), fonts-dejavu-core and
#   fonts-liberation2 (Latin) for the synthetic document generator.
#   With --test also chromium (the web-page test drives it headless).
set -euo pipefail
packages=(fonts-nanum fonts-noto-cjk fonts-dejavu-core fonts-liberation2 fontconfig)
[ "${1:-}" = "--test" ] && packages+=(chromium)
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
for pkg in "${packages[@]}"; do
  have "$pkg" || need+=("$pkg")
done
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
