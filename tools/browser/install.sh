#!/usr/bin/env bash
# Idempotent set-up for everything nibble's tests need on a fresh Debian machine: apt packages,
# pinned npm packages (package-lock.json), the unpacked headless_shell, pinned Go tools.
# Each step checks first, so a second run takes about a second.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
log() { echo "deps: $*"; }

# apt: libnss3 for the headless_shell; curl, procps (pgrep) and util-linux (setsid) for the
# wrangler test; firefox-esr (further down) for the shader-f16 tests (see DESIGN.md).
apt_pkgs=(libnss3 ca-certificates curl procps util-linux ${NIBBLE_APT_EXTRA:-})
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm: exact versions from package-lock.json; reinstalled only when the lock changed.
stamp=node_modules/.nibble-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# The headless_shell from npm @sparticuz/chromium, unpacked with node's zlib.
if [[ ! -x .cache/chromium/chromium || ! -f .cache/chromium/libvk_swiftshader.so ]]; then
  log "unpacking @sparticuz/chromium"
  node tools/browser/unpack.mjs node_modules/@sparticuz/chromium/bin .cache/chromium
fi

# Pinned Go tools into .cache/bin; wasmbrowsertest doubles as go_js_wasm_exec.
mkdir -p .cache/bin
if [[ ! -x .cache/bin/wasmbrowsertest ]]; then
  log "go install wasmbrowsertest"
  GOBIN="$root/.cache/bin" go install github.com/agnivade/wasmbrowsertest@v0.11.0
fi
ln -sf wasmbrowsertest .cache/bin/go_js_wasm_exec

# Firefox ESR from Debian: WebGPU over lavapipe (Mesa's software Vulkan) with shader-f16, driven by
# our own WebDriver BiDi runner (tools/browser/firefox) for the f16 kernels. mesa-vulkan-drivers
# brings lavapipe, which firefox-esr does not pull in: without it requestAdapter() returns null.
# A fresh install (17 packages, ~80 MB download, ~400 MB on disk) took ~22 s here.
ff_missing=()
for p in firefox-esr mesa-vulkan-drivers; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || ff_missing+=("$p")
done
if ((${#ff_missing[@]})); then
  log "apt-get install ${ff_missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${ff_missing[@]}" >/dev/null
fi

# The Firefox runner for `go test -exec`, rebuilt only when a source file is newer than the binary.
ff_exec=.cache/bin/firefox_wasm_exec
if [[ ! -x $ff_exec ]] || [[ -n $(find tools/browser/firefox go.mod go.sum -newer "$ff_exec" -print -quit) ]]; then
  log "go build $ff_exec"
  go build -o "$ff_exec" ./tools/browser/firefox
fi

# WebKitGTK (the Safari engine) for tools/browser/test-webkit.sh: Debian's webkit2gtk-driver
# (WebKitWebDriver, which pulls in libwebkit2gtk-4.1-0 and its MiniBrowser) and Xvfb, since
# Debian's WebKitGTK has no headless mode. The runner is the Firefox one under another name.
wk_missing=()
for p in webkit2gtk-driver xvfb; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || wk_missing+=("$p")
done
if ((${#wk_missing[@]})); then
  log "apt-get install ${wk_missing[*]}"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${wk_missing[@]}" >/dev/null
fi
ln -sf firefox_wasm_exec .cache/bin/webkit_wasm_exec
