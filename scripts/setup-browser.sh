#!/usr/bin/env bash
# Installs what the browser tests need (crates/palier-server/tests/browser.rs):
# Debian's headless Chromium and its WebDriver, chromedriver, with fonts for the
# hub's Korean and Cyrillic text in screenshots. Idempotent: does nothing when they
# are already there. Quiet; exits non-zero on failure.
#
#   bash scripts/setup-browser.sh
set -euo pipefail

CJK_FONT=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver && -f "$CJK_FONT" ]]; then
  exit 0
fi

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! {
  $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-noto-cjk fonts-dejavu-core
} >"$log" 2>&1; then
  echo "setup-browser: apt-get failed:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi

for binary in /usr/bin/chromium /usr/bin/chromedriver; do
  if [[ ! -x "$binary" ]]; then
    echo "setup-browser: $binary is still missing after apt-get install" >&2
    exit 1
  fi
done
echo "setup-browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
