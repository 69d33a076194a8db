// Golden data from llama.cpp (npm node-llama-cpp 3.21.1, its prebuilt CPU binary) for the GGUF
// files tools/mkmodel writes: tokenizations, teacher-forced next-token probabilities at every
// position of a prompt, and a greedy continuation. Run through golden.sh, which writes the files
// and then this script; the Go tests regenerate the same files and compare.
//
//   node llamacpp.mjs out.json label=path.gguf ...
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {writeFileSync, readFileSync} from "node:fs";

const [out, ...models] = process.argv.slice(2);
const strings = JSON.parse(readFileSync(new URL("./strings.json", import.meta.url)));
const prompt = "The quick brown fox jumps over the lazy dog, and the model";
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const result = {llamaCpp: "node-llama-cpp 3.21.1", prompt, models: {}};
for (const arg of models) {
  const [label, path] = arg.split("=");
  const model = await llama.loadModel({modelPath: path});
  const r = {tokenize: [], bos: model.tokens.bos, eos: model.tokens.eos};
  for (const s of strings) {
    r.tokenize.push({text: s, plain: Array.from(model.tokenize(s, false)), special: Array.from(model.tokenize(s, true))});
  }
  // F32 KV cache: llama.cpp's default F16 cache would round every key and value.
  const ctx = await model.createContext({contextSize: 128, batchSize: 128, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
  const ids = [model.tokens.bos, ...model.tokenize(prompt, false)];
  r.ids = ids;
  const seq = ctx.getSequence();
  const res = await seq.controlledEvaluate(ids.map(t => [t, {generateNext: {probabilities: true}}]));
  // The 40 most likely next tokens after each position, as [id, log p].
  r.top = res.map(x => [...x.next.probabilities.entries()].slice(0, 40).map(([id, p]) => [id, Math.log(p)]));
  await seq.clearHistory();
  const greedy = [];
  for await (const t of seq.evaluate(ids, {temperature: 0})) {
    greedy.push(t);
    if (greedy.length === 32) break;
  }
  r.greedy = greedy;
  await ctx.dispose();
  await model.dispose();
  result.models[label] = r;
  console.error(`${label}: ${ids.length} prompt tokens, greedy ${greedy.slice(0, 8)}…`);
}
writeFileSync(out, JSON.stringify(result));
