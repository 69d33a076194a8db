#!/usr/bin/env bash
# The wrangler-backed test of the model-serving Worker (issue 6, item 3):
# builds the Worker to wasm, seeds a local R2 bucket, starts `wrangler dev` offline on a free
# port, checks full, ranged, conditional and hostile requests by status, headers and sha256,
# and stops wrangler (and workerd) by process group, on failure too.
#
#   bash tools/worker/test.sh        # from anywhere; exits non-zero on any failed check
#
# READY_TIMEOUT (seconds, default 180) bounds the wait for wrangler dev to come up.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nibble-worker-test.XXXXXX")"
dev_pid=""
source "$repo/tools/worker/lib.sh"

cleanup() {
	local rc=$?
	stop_group "$dev_pid" || rc=1
	if [ $rc -ne 0 ] && [ -f "$tmp/dev.log" ]; then
		echo "--- wrangler dev log (last 40 lines) ---" >&2
		tail -n 40 "$tmp/dev.log" >&2
	fi
	rm -rf "$tmp"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wrangler_env
ensure_runtime
bash "$repo/tools/worker/build.sh"

# --- fixture: a 3 MB random shard (odd size), a content-addressed file, an empty file, a
# model with a stored manifest, one without, and secrets outside the bucket prefix.
m="$tmp/models"
mkdir -p "$m/tiny" "$m/gen"
head -c 3000001 /dev/urandom >"$m/tiny/shard.bin"
head -c 4096 /dev/urandom >"$tmp/cas"
cas="weights-$(sha256sum <"$tmp/cas" | cut -c1-64).bin"
mv "$tmp/cas" "$m/tiny/$cas"
: >"$m/tiny/empty.bin"
printf 'abc' >"$m/gen/a.bin"
printf 'SECRET-OUTSIDE-PREFIX' >"$tmp/secret.txt"
(cd "$repo" && go run ./tools/worker -write-manifest "$m/tiny") >/dev/null
cat >"$tmp/entries.json" <<JSON
[
 {"key": "models/tiny/shard.bin", "file": "$m/tiny/shard.bin"},
 {"key": "models/tiny/$cas", "file": "$m/tiny/$cas"},
 {"key": "models/tiny/empty.bin", "file": "$m/tiny/empty.bin"},
 {"key": "models/tiny/manifest.json", "file": "$m/tiny/manifest.json"},
 {"key": "models/gen/a.bin", "file": "$m/gen/a.bin"},
 {"key": "secret.txt", "file": "$tmp/secret.txt"},
 {"key": "other/secret.txt", "file": "$tmp/secret.txt"},
 {"key": "models.txt", "file": "$tmp/secret.txt"}
]
JSON
seed_r2 "$tmp/entries.json"
echo "worker: seeded local R2 ($(wc -c <"$m/tiny/shard.bin") byte shard)"

READY_PATH=/models/tiny/manifest.json start_dev
B="$dev_url"

# --- checks
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*" >&2
}

# req NAME ARGS...: one curl; leaves status in $code, body bytes received in $size,
# headers in $tmp/h, body in $tmp/b.
req() {
	local name=$1
	shift
	rm -f "$tmp/h" "$tmp/b"
	local out
	out=$(curl -s --path-as-is --max-time 60 -D "$tmp/h" -o "$tmp/b" -w '%{http_code} %{size_download}' "$@" || echo "000 0")
	code=${out% *}
	size=${out#* }
	touch "$tmp/h" "$tmp/b"
	last="$name"
}
hdr() { grep -i "^$1:" "$tmp/h" | head -n1 | cut -d: -f2- | sed 's/^ //; s/\r$//'; }
want_status() { if [ "$code" = "$1" ]; then ok; else bad "$last: status $code, want $1 ($(head -c 200 "$tmp/b" | tr '\n' ' '))"; fi; }
want_4xx() { case "$code" in 4??) ok ;; *) bad "$last: status $code, want 4xx" ;; esac; }
want_hdr() {
	local got
	got=$(hdr "$1")
	if [ "$got" = "$2" ]; then ok; else bad "$last: $1 '$got', want '$2'"; fi
}
want_hdr_has() {
	local got
	got=$(hdr "$1")
	case "$got" in *"$2"*) ok ;; *) bad "$last: $1 '$got' lacks '$2'" ;; esac
}
want_body_sha() {
	local got
	got=$(sha256sum <"$tmp/b" | cut -c1-64)
	if [ "$got" = "$1" ]; then ok; else bad "$last: body sha256 $got ($(wc -c <"$tmp/b") bytes), want $1"; fi
}
want_no_secret() { if grep -q SECRET "$tmp/b"; then bad "$last: served an object outside the prefix"; else ok; fi; }
slice_sha() { tail -c +$(($2 + 1)) "$1" | head -c "$3" | sha256sum | cut -c1-64; }

S="$m/tiny/shard.bin"
N=$(wc -c <"$S")
full=$(sha256sum <"$S" | cut -c1-64)
U="$B/models/tiny/shard.bin"

req "GET full" "$U"
want_status 200
want_body_sha "$full"
want_hdr Content-Length "$N"
want_hdr Accept-Ranges bytes
want_hdr Cache-Control "public, no-cache"
want_hdr Access-Control-Allow-Origin "*"
want_hdr_has Access-Control-Expose-Headers Content-Range
etag=$(hdr ETag)
[ -n "$etag" ] && ok || bad "GET full: no ETag"

req "HEAD" -I "$U"
want_status 200
want_hdr Content-Length "$N"
want_hdr ETag "$etag"
[ "$size" = 0 ] && ok || bad "HEAD: $size body bytes"

# Ranges: [first, length] → 206 with exactly those bytes.
for r in "0-0:0:1" "0-65535:0:65536" "1000000-1999999:1000000:1000000" \
	"$((N - 1))-$((N - 1)):$((N - 1)):1" "$((N - 1))-:$((N - 1)):1" "2000000-:2000000:$((N - 2000000))" \
	"-1:$((N - 1)):1" "-100000:$((N - 100000)):100000" "-$((N + 5)):0:$N" "5-$((N + 999)):5:$((N - 5))"; do
	spec=${r%%:*}
	rest=${r#*:}
	first=${rest%%:*}
	len=${rest#*:}
	req "Range bytes=$spec" -H "Range: bytes=$spec" "$U"
	want_status 206
	want_hdr Content-Range "bytes $first-$((first + len - 1))/$N"
	want_hdr Content-Length "$len"
	want_body_sha "$(slice_sha "$S" "$first" "$len")"
done

# Resume, as the loader will after a cut: first part, then the rest with If-Range.
req "resume part 1" -H "Range: bytes=0-1048575" "$U"
cp "$tmp/b" "$tmp/part1"
req "resume part 2" -H "Range: bytes=1048576-" -H "If-Range: $etag" "$U"
want_status 206
cat "$tmp/part1" "$tmp/b" >"$tmp/joined"
[ "$(sha256sum <"$tmp/joined" | cut -c1-64)" = "$full" ] && ok || bad "resume: joined parts differ from the shard"
req "If-Range stale" -H "Range: bytes=10-" -H 'If-Range: "stale"' "$U"
want_status 200
want_body_sha "$full"

req "If-None-Match" -H "If-None-Match: $etag" "$U"
want_status 304
[ "$size" = 0 ] && ok || bad "304: $size body bytes"
req "If-None-Match weak, in a list" -H "If-None-Match: \"x\", W/$etag" "$U"
want_status 304
req "If-None-Match other" -H 'If-None-Match: "other"' -H "Range: bytes=0-9" "$U"
want_status 206

for spec in "bytes=$N-" "bytes=$((N + 10))-$((N + 20))" "bytes=5-1" "bytes=-0" "bytes=0-1,5-6" "bytes=abc" \
	"bytes=99999999999999999999-" "bytes=--5" "bytes=0-1,$(printf '2-3,%.0s' $(seq 1 500))4-5"; do
	req "416 Range ${spec:0:40}" -H "Range: $spec" "$U"
	want_status 416
	want_hdr Content-Range "bytes */$N"
done

req "empty GET" "$B/models/tiny/empty.bin"
want_status 200
want_hdr Content-Length 0
req "empty Range" -H "Range: bytes=0-" "$B/models/tiny/empty.bin"
want_status 416
want_hdr Content-Range "bytes */0"

req "content-addressed" "$B/models/tiny/$cas"
want_status 200
want_hdr Cache-Control "public, max-age=31536000, immutable"
want_body_sha "$(sha256sum <"$m/tiny/$cas" | cut -c1-64)"

req "stored manifest" "$B/models/tiny/manifest.json"
want_status 200
want_hdr Content-Type application/json
want_body_sha "$(sha256sum <"$m/tiny/manifest.json" | cut -c1-64)"
grep -q "\"sha256\": \"$full\"" "$tmp/b" && ok || bad "stored manifest lacks the shard's sha256"
req "generated manifest" "$B/models/gen/manifest.json"
want_status 200
grep -q '"name": "a.bin"' "$tmp/b" && grep -q '"size": 3' "$tmp/b" && ok || bad "generated manifest: $(cat "$tmp/b")"

req "preflight" -X OPTIONS -H "Origin: https://example.org" -H "Access-Control-Request-Method: GET" \
	-H "Access-Control-Request-Headers: range" "$U"
want_status 204
want_hdr Access-Control-Allow-Origin "*"
want_hdr_has Access-Control-Allow-Methods HEAD
want_hdr_has Access-Control-Allow-Headers Range

# Hostile: every spelling of a way out answers 4xx and never the secret.
for p in "/models/../secret.txt" "/models/tiny/../../secret.txt" "/models/%2e%2e/secret.txt" \
	"/models/tiny/%2e%2e/%2e%2e/secret.txt" "/models/tiny/..%2f..%2fsecret.txt" "/models/..%2fother/secret.txt" \
	"/models/tiny/%2e%2e%2f%2e%2e%2fsecret.txt" "/models/tiny/..%5c..%5csecret.txt" '/models/tiny/..\..\secret.txt' \
	"/models/tiny/shard.bin%00" "/models/tiny/%00" "/models/%252e%252e/secret.txt" "/models/other/secret.txt" \
	"/models/.%2e/secret.txt" "/secret.txt" "/other/secret.txt" "/models.txt" "/models" "/models/" \
	"/models/tiny" "/models/tiny/" "/models/tiny/.hidden" "/models/tiny/shard.bin/x" "//secret.txt" \
	"/models/tiny/$(printf 'a%.0s' $(seq 1 300))"; do
	req "hostile GET $p" "$B$p"
	want_4xx
	want_no_secret
done
for meth in POST PUT DELETE PATCH PROPFIND; do
	req "method $meth" -X "$meth" "$U"
	want_status 405
	want_hdr Allow "GET, HEAD, OPTIONS"
done
head -c 20000 /dev/zero | tr '\0' x | sed 's/^/X-Big: /' >"$tmp/bighdr"
req "20 KB header" -H "@$tmp/bighdr" "$U"
want_4xx
head -c 200000 /dev/zero | tr '\0' x | sed 's/^/X-Big: /' >"$tmp/bighdr"
req "200 KB header" -H "@$tmp/bighdr" "$U"
want_4xx
# Still serving after all that.
req "GET after hostile" -H "Range: bytes=0-0" "$U"
want_status 206

echo "worker: $pass checks passed, $fail failed"
[ "$fail" -eq 0 ]
