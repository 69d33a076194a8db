import { load, NibbleError } from "@nibble-ml/nibble";

// Universal Sentence Encoder Lite, served as a directory with manifest.json (see the README's
// "Use it in your page"); ?model= points elsewhere.
const modelURL = new URLSearchParams(location.search).get("model") ?? "/models/use-lite/";
const $ = (id) => document.getElementById(id);

// Embeddings are unit length: their dot product is the cosine similarity.
function cosine(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

const model = load(modelURL, {
  onProgress: (p) => {
    $("status").textContent = `Loading… ${(p.bytesReceived / 1e6).toFixed(1)} of ${(p.bytesTotal / 1e6).toFixed(1)} MB`;
  },
});

async function compare() {
  try {
    const m = await model;
    const [a, b] = await m.embed([$("a").value, $("b").value]);
    $("similarity").textContent = cosine(a, b).toFixed(4);
    $("status").textContent = `Ready: ${m.arch} on ${m.backend}, ${m.format}, loaded in ${Math.round(m.loadMs)} ms`;
  } catch (e) {
    $("status").textContent = e instanceof NibbleError ? `${e.code}: ${e.message}` : String(e);
  }
}

$("compare").addEventListener("click", compare);
compare();
