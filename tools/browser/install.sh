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
# apt_ensure installs those of its packages that are not installed yet (one apt-get update first).
apt_ensure() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
apt_pkgs=(libnss3 ca-certificates curl procps util-linux ${NIBBLE_APT_EXTRA:-})
apt_ensure "${apt_pkgs[@]}"

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
apt_ensure firefox-esr mesa-vulkan-drivers

# The Firefox runner for `go test -exec`, rebuilt only when a source file is newer than the binary.
ff_exec=.cache/bin/firefox_wasm_exec
if [[ ! -x $ff_exec ]] || [[ -n $(find tools/browser/firefox go.mod go.sum -newer "$ff_exec" -print -quit) ]]; then
  log "go build $ff_exec"
  go build -o "$ff_exec" ./tools/browser/firefox
fi

# WebKitGTK (the Safari engine) for tools/browser/test-webkit.sh: Debian's webkit2gtk-driver
# (WebKitWebDriver, which pulls in libwebkit2gtk-4.1-0 and its MiniBrowser) and Xvfb, since
# Debian's WebKitGTK has no headless mode. The runner is the Firefox one under another name.
apt_ensure webkit2gtk-driver xvfb
ln -sf firefox_wasm_exec .cache/bin/webkit_wasm_exec
