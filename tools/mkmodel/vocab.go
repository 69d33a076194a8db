package main

import (
	"fmt"
	"github.com/nibble-ml/nibble/wasm/format"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// corpus trains the synthetic tokenizers: English prose with code, digits and a few scripts
// beyond Latin, so the merges look like a real vocabulary's (frequent words whole, rare ones in
// pieces, unseen characters through byte fallback).
const corpus = `The quick brown fox jumps over the lazy dog. A model runs in the browser: the weights
stream in, the layers run as soon as they arrive, and the tokens come back one by one. Nibble
quantizes each tensor on arrival, so the whole model never sits in memory at full precision.
It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of
foolishness. We hold these truths to be self-evident, that all men are created equal. There is
nothing either good or bad, but thinking makes it so. In the beginning there was the word, and
the word was with the model. The attention of every head reads the keys and values of the tokens
before it; the cache keeps them so that each new token costs one row, not the whole prompt again.
func main() { fmt.Println("hello, world") } for i := 0; i < 10; i++ { x += i * 2 }
The numbers 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 2048 4096 32000 128256 3.14159 2.71828.
I'm sure you'll see they're here, we've done it, she'd say, it's fine, don't worry, you'd know.
Café, naïve, résumé, façade, jalapeño, Ångström, Zürich, São Paulo, München, Kraków.
Ελληνικά γράμματα, русский язык и литература, 日本語のテキストです、中文文本。 한국어 문장.
emoji 🙂 🚀 ✨ and symbols © ® ™ € £ ¥ § ¶ • … — – « » “quotes” ‘single’.
`

// vocab is a tokenizer vocabulary in GGUF's terms.
type vocab struct {
	model  string // tokenizer.ggml.model
	tokens []string
	scores []float32
	types  []int32 // llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte
	merges []string
	bos    uint32
	eos    uint32
	unk    int // -1: none
}

// Token types of llama.cpp's llama_token_type.
const (
	tokNormal  = 1
	tokUnknown = 2
	tokControl = 3
	tokByte    = 6
)

func (v *vocab) meta() []format.GGUFKV {
	m := []format.GGUFKV{
		{Key: "tokenizer.ggml.model", Value: v.model},
		{Key: "tokenizer.ggml.tokens", Value: v.tokens},
		{Key: "tokenizer.ggml.token_type", Value: v.types},
		{Key: "tokenizer.ggml.bos_token_id", Value: v.bos},
		{Key: "tokenizer.ggml.eos_token_id", Value: v.eos},
		{Key: "tokenizer.ggml.add_bos_token", Value: true},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
	}
	if v.model == "llama" {
		m = append(m,
			format.GGUFKV{Key: "tokenizer.ggml.scores", Value: v.scores},
			format.GGUFKV{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(v.unk)},
			format.GGUFKV{Key: "tokenizer.ggml.add_space_prefix", Value: true},
		)
	} else {
		m = append(m,
			format.GGUFKV{Key: "tokenizer.ggml.pre", Value: "llama-bpe"},
			format.GGUFKV{Key: "tokenizer.ggml.merges", Value: v.merges},
		)
	}
	return m
}

// buildVocab makes a vocabulary of exactly size tokens of the given type.
func buildVocab(model string, size int) (*vocab, error) {
	switch model {
	case "llama":
		return spmVocab(size)
	case "gpt2":
		return bpeVocab(size)
	}
	return nil, fmt.Errorf("-tokenizer %q: want llama or gpt2", model)
}

// spmVocab is a SentencePiece-style vocabulary as Llama 1/2 ship it: <unk>, <s>, </s>, the 256
// byte tokens <0x00>…<0xFF>, then pieces (▁ marks a word start) with scores, best first. The
// pieces are the characters of the corpus and the merges BPE training finds on it; the rest up
// to size are filler pieces that no text reaches.
func spmVocab(size int) (*vocab, error) {
	v := &vocab{model: "llama", bos: 1, eos: 2, unk: 0}
	add := func(t string, score float32, typ int32) {
		v.tokens, v.scores, v.types = append(v.tokens, t), append(v.scores, score), append(v.types, typ)
	}
	add("<unk>", 0, tokUnknown)
	add("<s>", 0, tokControl)
	add("</s>", 0, tokControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokByte)
	}
	var words [][]string
	for _, w := range strings.Fields(corpus) {
		words = append(words, splitChars("▁"+w))
	}
	chars := map[string]bool{"▁": true}
	for _, w := range words {
		for _, c := range w {
			chars[c] = true
		}
	}
	merged := trainBPE(words, size-len(v.tokens)-len(chars))
	for i, m := range merged {
		add(m[0]+m[1], -float32(i), tokNormal)
	}
	// Single characters score below every merge, as SentencePiece ranks them.
	for _, c := range sortedKeys(chars) {
		add(c, -1e4-float32(len(v.tokens)), tokNormal)
	}
	if err := fill(&v.tokens, size, func(i int) { v.scores = append(v.scores, -2e4-float32(i)); v.types = append(v.types, tokNormal) }, "▁"); err != nil {
		return nil, err
	}
	return v, nil
}

// bpeVocab is a byte-level BPE vocabulary as Llama 3 ships it: the 256 byte symbols of GPT-2's
// byte↔unicode map, merged tokens with their merge list, filler, and control tokens at the end.
func bpeVocab(size int) (*vocab, error) {
	v := &vocab{model: "gpt2"}
	specials := []string{"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|reserved_special_token_0|>"}
	enc := byteUnicode()
	for b := 0; b < 256; b++ {
		v.tokens = append(v.tokens, string(enc[b]))
	}
	var words [][]string
	for _, w := range preTokenizeLlama3(corpus) {
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, string(enc[b]))
		}
		words = append(words, syms)
	}
	for _, m := range trainBPE(words, size-256-len(specials)) {
		v.tokens = append(v.tokens, m[0]+m[1])
		v.merges = append(v.merges, m[0]+" "+m[1])
	}
	if err := fill(&v.tokens, size-len(specials), func(int) {}, string(enc[' '])); err != nil {
		return nil, err
	}
	v.bos = uint32(len(v.tokens))
	v.eos = v.bos + 1
	v.tokens = append(v.tokens, specials...)
	v.unk = -1
	for i := range v.tokens {
		t := int32(tokNormal)
		if i >= int(v.bos) {
			t = tokControl
		}
		v.types = append(v.types, t)
	}
	return v, nil
}

// fill appends unreachable filler tokens (prefix + letters no corpus word has) up to size.
func fill(tokens *[]string, size int, each func(i int), prefix string) error {
	if len(*tokens) > size {
		return fmt.Errorf("vocabulary of %d tokens is too small for its base symbols (%d)", size, len(*tokens))
	}
	for i := 0; len(*tokens) < size; i++ {
		*tokens = append(*tokens, fmt.Sprintf("%sqx%dzj", prefix, i))
		each(i)
	}
	return nil
}

// trainBPE merges the most frequent adjacent pair (ties: the first seen) up to n times.
func trainBPE(words [][]string, n int) [][2]string {
	var merges [][2]string
	for len(merges) < n {
		count := map[[2]string]int{}
		var order [][2]string
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				p := [2]string{w[i], w[i+1]}
				if count[p] == 0 {
					order = append(order, p)
				}
				count[p]++
			}
		}
		best, bc := [2]string{}, 0
		for _, p := range order {
			if count[p] > bc {
				best, bc = p, count[p]
			}
		}
		if bc < 2 {
			break
		}
		merges = append(merges, best)
		for wi, w := range words {
			var out []string
			for i := 0; i < len(w); i++ {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out = append(out, best[0]+best[1])
					i++
				} else {
					out = append(out, w[i])
				}
			}
			words[wi] = out
		}
	}
	return merges
}

func splitChars(s string) []string {
	var out []string
	for len(s) > 0 {
		_, n := utf8.DecodeRuneInString(s)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// byteUnicode is GPT-2's map from bytes to printable runes (bytes_to_unicode).
func byteUnicode() [256]rune {
	var enc [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			enc[b] = rune(b)
		} else {
			enc[b] = rune(256 + n)
			n++
		}
	}
	return enc
}

// preTokenizeLlama3 splits text as Llama 3's pre-tokenizer regex does (only for training here;
// wasm/model/llama has the one that must match llama.cpp).
func preTokenizeLlama3(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range s {
		if unicode.IsSpace(r) || (len(cur) > 0 && unicode.IsLetter(r) != unicode.IsLetter(cur[len(cur)-1]) && !(len(cur) == 1 && cur[0] == ' ')) {
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return out
}
