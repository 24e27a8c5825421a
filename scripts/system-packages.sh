#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the build and the tests need, only those missing.
# Usage: scripts/system-packages.sh [extra-package...]
set -euo pipefail

# pkg-config + fontconfig + fonts: Slint's software renderer (fonts-wqy-microhei: the kiosk
# UI's Chinese, which is silently blank without a CJK font); the X11 client libraries winit
# loads for the kiosk UI's window, and xvfb to run it without a screen; libclang: nokhwa's
# bindgen; python3-pip/npm: the model set-up's downloaders (normally already there);
# chromium + chromium-driver: the web pages' browser tests (backend/server/tests/browser.rs),
# whose Chinese needs the CJK font above; libssl-dev: fantoccini's native-tls (those tests).
wanted=(pkg-config libfontconfig1-dev libclang-dev fonts-dejavu-core fonts-wqy-microhei
  libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 xvfb ca-certificates
  chromium chromium-driver libssl-dev "$@")
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || wanted+=(python3-pip)
command -v npm >/dev/null || wanted+=(npm)

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system-packages: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
