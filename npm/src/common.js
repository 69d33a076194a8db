// NibbleError: every rejection of the package. code is stable (switch on it); message is one
// line a person can act on; cause is an Error whose message is the whole Go error chain.

export class NibbleError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "NibbleError";
    this.code = code;
  }
}

// fromGo turns what the Go side rejected with (an Error carrying code and summary, or its
// plain-object form after crossing from the worker) into a NibbleError.
export function fromGo(e) {
  if (e instanceof NibbleError) return e;
  if (e && typeof e === "object" && typeof e.code === "string" && typeof e.summary === "string") {
    const cause = new Error(String(e.chain ?? e.message));
    cause.name = "GoError";
    return new NibbleError(e.code, e.summary, { cause });
  }
  const cause = e instanceof Error ? e : new Error(String(e));
  return new NibbleError("INTERNAL", "nibble: internal error: " + String(cause.message ?? e), { cause });
}

// plain is e in the form that crosses postMessage (structured clone keeps no own fields of an
// Error but its message).
export function plain(e) {
  if (e && typeof e === "object" && typeof e.code === "string" && typeof e.summary === "string") {
    return { code: e.code, summary: e.summary, chain: String(e.message) };
  }
  if (e instanceof NibbleError) {
    return { code: e.code, summary: e.message, chain: String(e.cause?.message ?? e.message) };
  }
  return { code: "INTERNAL", summary: "nibble: internal error: " + String(e?.message ?? e), chain: String(e?.stack ?? e) };
}

export function aborted(what) {
  return new NibbleError("ABORTED", what + ": aborted");
}

// info is a loaded model's plain fields (url, backend, format, loadMs...) and the names of its
// methods: what a Model is built from on the page's side.
export function info(h) {
  const out = {};
  for (const [k, v] of Object.entries(h)) if (typeof v !== "function") out[k] = v;
  out.methods = Object.keys(h).filter((k) => typeof h[k] === "function");
  return out;
}
