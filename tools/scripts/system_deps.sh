#!/usr/bin/env bash
# Install the system packages the tests and the demo use, when missing and apt can install
# them (root, or passwordless sudo):
#   fonts-wqy-microhei  the CJK font the generated test videos render Chinese with
#   espeak-ng           speech for the generated videos (the ASR and video-search tests)
#   chromium            the headless browser of the video-search page test (Playwright
#                       drives Debian's build: browsers cannot be downloaded here)
# Safe to run again: a no-op once everything is there. It never fails itself: without a
# package, the tests that need it fail and name it.
set -uo pipefail
declare -A check=(
  [fonts-wqy-microhei]="test -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
  [espeak-ng]="command -v espeak-ng"
  [chromium]="command -v chromium"
)
missing=()
for package in fonts-wqy-microhei espeak-ng chromium; do
  eval "${check[$package]}" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "system deps: no apt-get; missing: ${missing[*]}" >&2; exit 0; }
sudo=""
if [ "$(id -u)" != 0 ]; then
  if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "system deps: not root; run 'sudo apt-get install ${missing[*]}'" >&2
    exit 0
  fi
fi
echo "system deps: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
  || { $sudo apt-get update -q >/dev/null 2>&1 \
       && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
  || echo "system deps: apt-get could not install ${missing[*]}" >&2
exit 0
