// Starts nibble's Go WebAssembly in this realm (the worker's by default, the page's in
// main-thread mode) and resolves to its API object (wasm/internal/jsapi).
import "./wasm_exec.js"; // Go's own glue, of the Go version that built nibble.wasm: defines globalThis.Go
import { NibbleError } from "./common.js";

export async function startGo(wasmURL) {
  const resp = await fetch(wasmURL);
  if (!resp.ok) {
    throw new NibbleError(resp.status === 404 ? "NOT_FOUND" : "NETWORK",
      `nibble.wasm: HTTP ${resp.status} at ${wasmURL}: serve it beside the module, or set env.wasmURL`);
  }
  const go = new globalThis.Go();
  // The Go side hands its API to a one-off global named here, deleted once called: no nibble
  // global stays behind.
  const boot = "__nibbleBoot_" + Math.random().toString(36).slice(2);
  go.env = { NIBBLE_BOOT: boot };
  const api = new Promise((resolve) => { globalThis[boot] = resolve; });
  let module;
  if ((resp.headers.get("content-type") || "").startsWith("application/wasm")) {
    module = await WebAssembly.instantiateStreaming(resp, go.importObject);
  } else {
    // instantiateStreaming insists on the wasm MIME type; a server that does not send it
    // still works, at the cost of compiling after the whole download.
    module = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject);
  }
  const exited = go.run(module.instance).then(() => {
    throw new NibbleError("INTERNAL", "nibble: the Go runtime exited before it started");
  });
  try {
    return await Promise.race([api, exited]);
  } finally {
    delete globalThis[boot];
  }
}
