// @nibble-ml/nibble: quantized neural networks in the browser, from Go compiled to WebAssembly.
// The wasm runs in a dedicated Web Worker by default (env.worker, or {worker: false} per call
// for the page's own thread); this module proxies calls to it and hands results back as
// transferred typed arrays. Types: index.d.ts.
import { NibbleError, aborted, fromGo, info } from "./common.js";

export { NibbleError };

export const env = {
  // Run nibble in a dedicated Web Worker; false runs it on the page's thread.
  worker: typeof Worker !== "undefined",
  // Where nibble.wasm is served; by default beside this module (bundlers such as Vite see the
  // new URL(..., import.meta.url) below, and emit and rename the file).
  wasmURL: undefined,
};

function wasmURL() {
  return String(env.wasmURL ?? new URL("./nibble.wasm", import.meta.url));
}

const runtimes = new Map();

// runtime starts one Go instance per kind (worker or main thread), on first use.
function runtime(worker) {
  const kind = worker ? "worker" : "main";
  let rt = runtimes.get(kind);
  if (!rt) {
    rt = worker ? startWorker() : startMain();
    runtimes.set(kind, rt);
    rt.catch(() => runtimes.delete(kind)); // a failed start may be retried
  }
  return rt;
}

async function startMain() {
  const { startGo } = await import("./runtime.js");
  let api;
  try {
    api = await startGo(wasmURL());
  } catch (e) {
    throw fromGo(e);
  }
  return {
    api,
    version: api.version,
    async call(target, method, args) {
      try {
        return await target[method](...args);
      } catch (e) {
        throw fromGo(e);
      }
    },
    model(h) {
      return new Model(this, h, info(h));
    },
  };
}

function isOptions(a) {
  return a !== null && typeof a === "object" && Object.getPrototypeOf(a) === Object.prototype;
}

function startWorker() {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "nibble" });
    const pending = new Map();
    let nextID = 1;
    let nextSignal = 1;
    const rt = {
      api: 0,
      call(target, method, args) {
        return new Promise((res, rej) => {
          const id = nextID++;
          const callbacks = {};
          const signals = [];
          const cleanups = [];
          // Functions and AbortSignals cannot cross postMessage: they travel as ids.
          const sent = args.map((a) => {
            if (!isOptions(a)) return a;
            const value = {};
            const cbs = {};
            let signal;
            for (const [k, v] of Object.entries(a)) {
              if (typeof v === "function") {
                cbs[k] = k;
                callbacks[k] = v;
              } else if (k === "signal" && v instanceof AbortSignal) {
                if (v.aborted) throw aborted(method);
                signal = nextSignal++;
                signals.push(signal);
                const onAbort = () => w.postMessage({ type: "abort", signal });
                v.addEventListener("abort", onAbort, { once: true });
                cleanups.push(() => v.removeEventListener("abort", onAbort));
              } else if (v !== undefined) {
                value[k] = v;
              }
            }
            return { __nibble: true, value, callbacks: cbs, signal };
          });
          pending.set(id, { res, rej, callbacks, cleanup: () => cleanups.forEach((f) => f()) });
          w.postMessage({ type: "call", id, target, method, args: sent, signals });
        });
      },
      model(v) {
        return new Model(this, v.__handle, v.info);
      },
    };
    w.onmessage = (ev) => {
      const m = ev.data;
      if (m.type === "ready") {
        if (m.error) reject(fromGo(m.error));
        else resolve(Object.assign(rt, { version: m.version }));
        return;
      }
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === "callback") {
        try {
          p.callbacks[m.cb]?.(m.value);
        } catch (e) {
          console.error("nibble: callback threw:", e);
        }
        return;
      }
      pending.delete(m.id);
      p.cleanup();
      if (m.ok) p.res(m.value);
      else p.rej(fromGo(m.error));
    };
    w.onerror = (ev) => {
      const e = new NibbleError("INTERNAL", "nibble: the worker failed: " + (ev.message || "worker.js could not start (is it served beside index.js?)"));
      reject(e);
      for (const p of pending.values()) p.rej(e);
      pending.clear();
    };
    w.postMessage({ type: "init", wasmURL: wasmURL() });
  });
}

function mode(options) {
  return options?.worker ?? env.worker;
}

/** The WebGPU, WebNN and CPU facts of the thread nibble runs on. */
export async function devices(options) {
  const rt = await runtime(mode(options));
  return rt.call(rt.api, "devices", []);
}

/** nibble's version and the Go version that built it. */
export async function version(options) {
  const rt = await runtime(mode(options));
  return rt.version;
}

export async function load(url, options = {}) {
  const what = `load(${JSON.stringify(url)})`;
  if (options.signal?.aborted) throw aborted(what);
  const { worker, ...rest } = options;
  const rt = await runtime(worker ?? env.worker);
  if (options.signal?.aborted) throw aborted(what);
  return rt.model(await rt.call(rt.api, "load", [url, rest]));
}

export class Model {
  #rt;
  #target;
  #methods;
  #disposed = false;

  constructor(rt, target, facts) {
    this.#rt = rt;
    this.#target = target;
    const { methods, ...rest } = facts;
    this.#methods = new Set(methods);
    Object.assign(this, rest);
  }

  #call(method, args = []) {
    if (this.#disposed) {
      return Promise.reject(new NibbleError("BAD_ARGUMENT", `${method}: the model was disposed; load it again`));
    }
    if (!this.#methods.has(method)) {
      return Promise.reject(new NibbleError("UNSUPPORTED_MODEL", `${method}: this build of nibble has no ${method}`));
    }
    return this.#rt.call(this.#target, method, args);
  }

  embed(texts, options) {
    return this.#call("embed", options ? [texts, options] : [texts]);
  }

  /**
   * The promise resolves to the whole Generation and is also async-iterable over the tokens:
   * for await (const t of m.generate(prompt)). The tokens come through onToken (a worker can
   * send no iterator back); leaving the loop early aborts the generation.
   */
  generate(prompt, options = {}) {
    const { onToken, signal, ...rest } = options;
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal.reason);
    if (signal?.aborted) stop.abort(signal.reason);
    else signal?.addEventListener("abort", onAbort, { once: true });
    const queue = [];
    const waiting = [];
    let done = false;
    let failure;
    const push = (t) => {
      if (onToken) onToken(t);
      if (done) return;
      const w = waiting.shift();
      if (w) w.resolve({ value: t, done: false });
      else queue.push(t);
    };
    const finish = (err) => {
      if (done) return;
      done = true;
      failure = err;
      signal?.removeEventListener("abort", onAbort);
      for (const w of waiting.splice(0)) {
        if (err) w.reject(err);
        else w.resolve({ value: undefined, done: true });
      }
    };
    const p = this.#call("generate", [prompt, { ...rest, signal: stop.signal, onToken: push }]);
    p.then(() => finish(), finish);
    p[Symbol.asyncIterator] = () => ({
      next() {
        if (queue.length) return Promise.resolve({ value: queue.shift(), done: false });
        if (done) return failure ? Promise.reject(failure) : Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
      },
      return() {
        if (!done) stop.abort();
        queue.length = 0;
        finish();
        return Promise.resolve({ value: undefined, done: true });
      },
    });
    return p;
  }

  stats() {
    return this.#call("stats");
  }

  plan() {
    return this.#call("plan");
  }

  tensors() {
    return this.#call("tensors");
  }

  matmul(name, x, rows) {
    return this.#call("matmul", [name, x, rows]);
  }

  measure(options) {
    return this.#call("measure", options ? [options] : []);
  }

  async dispose() {
    if (this.#disposed) return;
    await this.#call("dispose");
    this.#disposed = true;
  }
}

if (typeof Symbol.asyncDispose === "symbol") {
  Model.prototype[Symbol.asyncDispose] = Model.prototype.dispose;
}
