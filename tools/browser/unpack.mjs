// Unpacks the headless_shell that npm @sparticuz/chromium ships (brotli-compressed binary and
// tarballs) into a directory, with node's own zlib: no other download, no network.
import { createReadStream, createWriteStream, mkdirSync, chmodSync, existsSync, renameSync } from "node:fs";
import { createBrotliDecompress } from "node:zlib";
import { pipeline } from "node:stream/promises";
import { execFileSync } from "node:child_process";
import { join } from "node:path";

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  console.error("usage: node unpack.mjs <@sparticuz/chromium/bin> <out dir>");
  process.exit(2);
}
mkdirSync(dst, { recursive: true });
const exe = join(dst, "chromium");
if (!existsSync(exe)) {
  await pipeline(createReadStream(join(src, "chromium.br")), createBrotliDecompress(), createWriteStream(exe + ".tmp"));
  chmodSync(exe + ".tmp", 0o755);
  renameSync(exe + ".tmp", exe);
}
for (const name of ["swiftshader", "fonts"]) {
  const tar = join(dst, name + ".tar");
  await pipeline(createReadStream(join(src, name + ".tar.br")), createBrotliDecompress(), createWriteStream(tar));
  execFileSync("tar", ["-xf", tar, "-C", dst]);
}
console.log("unpacked headless_shell into " + dst);
