// Compiled (never run) by TestPackage with tsc --strict against the installed tarball: every
// call and option of index.d.ts used as a page would, so a wrong or missing type fails CI.
import { load, devices, env, NibbleError, type Stats, type Plan, type Generation } from "@nibble-ml/nibble";

env.worker = true;
const ac = new AbortController();
const m = await load("/models/use-lite/", { backend: "auto", policy: "quality", memoryBudget: 64e6, int8Activations: true, cache: true, signal: ac.signal, onProgress: (p) => console.log(p.bytesReceived) });
const v: Float32Array[] = await m.embed(["a", "b"], { signal: ac.signal });
const s: Stats = await m.stats();
const p: Plan = await m.plan();
const g: Generation = await m.generate("hi", { maxTokens: 4, onToken: (t) => console.log(t.text), cache: "int8" });
const d = await devices();
console.log(v, s.residentBytes, p.precision?.policy, g.text, d.webgpu.available);
try { await m.dispose(); } catch (e) { if (e instanceof NibbleError && e.code === "ABORTED") console.log(e.message, e.cause); }
await using m2 = await load("/x/", { format: "q4-sym-g32" });
