#!/usr/bin/env bash
# Install the CJK font (WenQuanYi Micro Hei) that the OCR app's generated test videos render
# Chinese with, when it is missing and apt can install it (root, or passwordless sudo).
# Safe to run again: a no-op once the font is there. It never fails itself: without the font
# the OCR tests fail and name the missing font.
set -uo pipefail
font=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
[ -f "$font" ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "fonts: no apt-get; Chinese OCR cases need $font" >&2; exit 0; }
sudo=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "fonts: not root; run 'sudo apt-get install fonts-wqy-microhei' for the Chinese OCR cases" >&2
    exit 0
  fi
fi
echo "fonts: installing fonts-wqy-microhei with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 \
  || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1; } \
  || echo "fonts: apt-get could not install fonts-wqy-microhei" >&2
exit 0
