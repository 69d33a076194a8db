// Runs a Go js/wasm test binary in Node with navigator.gpu from Dawn (npm webgpu), as
// wasmbrowsertest runs one in Chromium. Usage (cwd .gpu): node ../tools/gpu/run.cjs gpu.test.wasm [flags]
"use strict";
const path = require("path");
const fs = require("fs");
const gpuDir = process.cwd();
const { create, globals } = require(path.join(process.env.NIBBLE_WEBGPU_DIR || path.join(gpuDir, "webgpu"), "index.js"));
Object.assign(globalThis, globals);
// Dawn quantizes timestamps (to 2^16 ns) unless told not to: a kernel of a few microseconds
// would read as 0 or 65 µs. NIBBLE_DAWN_FLAGS adds more (comma-separated).
const flags = ["disable-dawn-features=timestamp_quantization"];
if (process.env.NIBBLE_DAWN_FLAGS) flags.push(...process.env.NIBBLE_DAWN_FLAGS.split(","));
globalThis.navigator = { gpu: create(flags), userAgent: "node-dawn" };
globalThis.require = require;
globalThis.fs = fs;
globalThis.path = path;
globalThis.performance ??= require("perf_hooks").performance;
globalThis.crypto ??= require("crypto");
require(path.join(gpuDir, "wasm_exec.js"));
const go = new Go();
go.argv = process.argv.slice(2);
go.env = Object.assign({ TMPDIR: require("os").tmpdir() }, process.env);
go.exit = process.exit;
WebAssembly.instantiate(fs.readFileSync(process.argv[2]), go.importObject).then(r => {
  // Dawn keeps the event loop alive after the Go program returns: exit with its status.
  process.on("exit", code => { if (code === 0 && !go.exited) { go._pendingEvent = { id: 0 }; go._resume(); } });
  return go.run(r.instance);
}).catch(e => { console.error(e); process.exit(1); });
