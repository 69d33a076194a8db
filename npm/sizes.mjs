// Prints a markdown table of wasm sizes, raw and as served compressed (gzip -9, brotli -q 11):
// node npm/sizes.mjs label=file.wasm ...
import { readFileSync } from "node:fs";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

const mb = (n) => (n / 1e6).toFixed(2) + " MB";
console.log("| wasm | raw | gzip -9 | brotli -q 11 |");
console.log("|---|---:|---:|---:|");
for (const arg of process.argv.slice(2)) {
  const [label, file] = arg.split("=");
  const b = readFileSync(file);
  const gz = gzipSync(b, { level: 9 }).length;
  const br = brotliCompressSync(b, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: b.length },
  }).length;
  console.log(`| ${label} | ${mb(b.length)} | ${mb(gz)} | ${mb(br)} |`);
}
