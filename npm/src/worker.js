// The dedicated worker nibble runs in by default: it starts the Go wasm and answers the
// module's calls (index.js). Handles of loaded models stay here; the page gets their ids.
import { startGo } from "./runtime.js";
import { info, plain } from "./common.js";

let api;
const handles = new Map();
let nextHandle = 1;
const controllers = new Map();

function post(msg, transfer) {
  self.postMessage(msg, transfer || []);
}

// Float32Arrays the Go side made each own their buffer: hand them over instead of copying.
function transferables(v) {
  const list = Array.isArray(v) ? v : [v];
  const out = new Set();
  for (const x of list) {
    if (ArrayBuffer.isView(x) && x.byteOffset === 0 && x.byteLength === x.buffer.byteLength) out.add(x.buffer);
  }
  return [...out];
}

// Options cross without their functions and AbortSignal (neither can be cloned): the page sent
// ids, and these stand-ins call back or abort.
function revive(args, id) {
  return args.map((a) => {
    if (!a || typeof a !== "object" || !a.__nibble) return a;
    const o = { ...a.value };
    for (const [key, cb] of Object.entries(a.callbacks)) {
      o[key] = (value) => post({ type: "callback", id, cb, value });
    }
    if (a.signal !== undefined) {
      const c = new AbortController();
      controllers.set(a.signal, c);
      o.signal = c.signal;
    }
    return o;
  });
}

function isHandle(v) {
  return v && typeof v === "object" && typeof v.dispose === "function";
}

self.onmessage = async (ev) => {
  const msg = ev.data;
  switch (msg.type) {
    case "init":
      api = startGo(msg.wasmURL);
      try {
        post({ type: "ready", version: (await api).version });
      } catch (e) {
        post({ type: "ready", error: plain(e) });
      }
      return;
    case "abort":
      controllers.get(msg.signal)?.abort();
      return;
    case "call": {
      const { id, target, method, args, signals } = msg;
      // Revived before any await: an abort message right behind this one must find its
      // controller.
      const revived = revive(args, id);
      try {
        const obj = target === 0 ? await api : handles.get(target);
        if (!obj || typeof obj[method] !== "function") {
          throw { code: "BAD_ARGUMENT", summary: `${method}: the model was disposed; load it again`, message: `no ${method} on handle ${target}` };
        }
        let v = await obj[method](...revived);
        if (isHandle(v)) {
          const h = nextHandle++;
          handles.set(h, v);
          v = { __handle: h, info: info(v) };
        }
        if (method === "dispose" || method === "release") handles.delete(target);
        post({ type: "result", id, ok: true, value: v }, transferables(v));
      } catch (e) {
        post({ type: "result", id, ok: false, error: plain(e) });
      } finally {
        for (const s of signals || []) controllers.delete(s);
      }
      return;
    }
  }
};
