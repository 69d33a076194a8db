package llama

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// Token types of llama.cpp (tokenizer.ggml.token_type).
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// Tokenizer turns text into token ids and back, as llama.cpp does for the file's
// tokenizer.ggml.model: "llama" (SentencePiece: pieces merged by score, bytes as <0xNN> when no
// piece fits) or "gpt2" (byte-level BPE: a pre-tokenizer regex, then merges by rank).
type Tokenizer struct {
	Model  string
	BOS    int32
	EOS    int32
	AddBOS bool

	tokens []string
	ids    map[string]int32
	scores []float32
	types  []int32
	ranks  map[string]int // gpt2: "left right" → merge rank
	bytes  [256]int32     // llama: <0xNN> tokens (-1 when absent)
	// special are the tokens a text can name literally (control, user-defined, unknown), longest
	// first.
	special []int32
	eog     map[int32]bool
	// llama: prefix a space to text at the start and after a special token (add_space_prefix).
	spacePrefix bool
	// gpt2: a word that is itself a token is not merged (Llama 3's ignore_merges).
	ignoreMerges bool
}

// NewTokenizer reads the tokenizer from the file's metadata.
func NewTokenizer(m Meta) (*Tokenizer, error) {
	model, _ := m.Meta("tokenizer.ggml.model")
	name, _ := model.(string)
	t := &Tokenizer{Model: name, ids: map[string]int32{}, eog: map[int32]bool{}}
	switch name {
	case "llama", "gpt2":
	case "":
		return nil, errs.Mark(fmt.Errorf("llama: metadata key tokenizer.ggml.model is missing: the file has no tokenizer"), errs.ErrFormat)
	default:
		return nil, errs.Mark(fmt.Errorf("llama: tokenizer.ggml.model %q is not supported (llama and gpt2 are)", name), errs.ErrUnsupported)
	}
	tokens, ok := meta[[]string](m, "tokenizer.ggml.tokens")
	if !ok || len(tokens) == 0 {
		return nil, errs.Mark(fmt.Errorf("llama: metadata key tokenizer.ggml.tokens is missing"), errs.ErrFormat)
	}
	t.tokens = tokens
	for i, s := range tokens {
		t.ids[s] = int32(i) // a repeated entry maps to its last id, as in llama.cpp
	}
	t.types, _ = meta[[]int32](m, "tokenizer.ggml.token_type")
	if t.types == nil {
		t.types = make([]int32, len(tokens))
		for i := range t.types {
			t.types[i] = typeNormal
		}
	}
	if len(t.types) != len(tokens) {
		return nil, errs.Mark(fmt.Errorf("llama: tokenizer.ggml.token_type has %d entries for %d tokens", len(t.types), len(tokens)), errs.ErrFormat)
	}
	r := metaReader{m: m}
	t.BOS = int32(r.int("tokenizer.ggml.bos_token_id", true))
	t.EOS = int32(r.int("tokenizer.ggml.eos_token_id", true))
	if r.err != nil {
		return nil, r.err
	}
	for _, id := range []int32{t.BOS, t.EOS} {
		if id < 0 || int(id) >= len(tokens) {
			return nil, errs.Mark(fmt.Errorf("llama: special token id %d outside the vocabulary of %d", id, len(tokens)), errs.ErrFormat)
		}
	}
	t.eog[t.EOS] = true
	// llama.cpp also ends generation on these when the vocabulary has them as control tokens.
	for _, s := range []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>"} {
		if id, ok := t.ids[s]; ok && t.types[id] == typeControl {
			t.eog[id] = true
		}
	}
	if v, ok := meta[int](m, "tokenizer.ggml.eot_token_id"); ok {
		t.eog[int32(v)] = true
	}
	addBOS, ok := meta[bool](m, "tokenizer.ggml.add_bos_token")
	t.AddBOS = addBOS || (!ok && name == "llama")
	for i, typ := range t.types {
		if typ == typeControl || typ == typeUserDefined || typ == typeUnknown {
			t.special = append(t.special, int32(i))
		}
	}
	sort.SliceStable(t.special, func(a, b int) bool { return len(tokens[t.special[a]]) > len(tokens[t.special[b]]) })
	switch name {
	case "llama":
		t.scores, _ = meta[[]float32](m, "tokenizer.ggml.scores")
		if len(t.scores) != len(tokens) {
			return nil, errs.Mark(fmt.Errorf("llama: tokenizer.ggml.scores has %d entries for %d tokens", len(t.scores), len(tokens)), errs.ErrFormat)
		}
		for b := range t.bytes {
			t.bytes[b] = -1
			if id, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.bytes[b] = id
			}
		}
		sp, ok := meta[bool](m, "tokenizer.ggml.add_space_prefix")
		t.spacePrefix = sp || !ok
	case "gpt2":
		merges, ok := meta[[]string](m, "tokenizer.ggml.merges")
		if !ok {
			return nil, errs.Mark(fmt.Errorf("llama: metadata key tokenizer.ggml.merges is missing (a gpt2 tokenizer needs its merges)"), errs.ErrFormat)
		}
		t.ranks = make(map[string]int, len(merges))
		for i, mg := range merges {
			if _, dup := t.ranks[mg]; !dup {
				t.ranks[mg] = i
			}
		}
		pre, _ := meta[string](m, "tokenizer.ggml.pre")
		switch pre {
		case "llama3", "llama-v3", "llama-bpe", "falcon3":
			t.ignoreMerges = true
		default:
			return nil, errs.Mark(fmt.Errorf("llama: tokenizer.ggml.pre %q is not supported (Llama 3's llama-bpe is)", pre), errs.ErrUnsupported)
		}
	}
	return t, nil
}

func meta[T any](m Meta, key string) (T, bool) {
	var zero T
	v, ok := m.Meta(key)
	if !ok {
		return zero, false
	}
	if x, ok := v.(T); ok {
		return x, true
	}
	if _, want := any(zero).(int); want {
		var r metaReader
		r.m = m
		n := r.int(key, false)
		return any(n).(T), r.err == nil
	}
	return zero, false
}

// Len is the vocabulary size.
func (t *Tokenizer) Len() int { return len(t.tokens) }

// Token is the vocabulary entry of id ("" outside the vocabulary).
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// EndOfGeneration reports whether id ends a generation (EOS, and end-of-turn tokens).
func (t *Tokenizer) EndOfGeneration(id int32) bool { return t.eog[id] }

// Encode tokenizes text without adding BOS (llama_tokenize with add_special false). With special,
// control tokens written in the text ("<|eot_id|>") become their ids, as parse_special does.
func (t *Tokenizer) Encode(text string, special bool) []int32 {
	var out []int32
	if text == "" {
		return nil
	}
	prevSpecial := true
	for _, f := range t.partition(text, special) {
		if f.id >= 0 {
			out = append(out, f.id)
			prevSpecial = true
			continue
		}
		if t.Model == "llama" {
			s := f.text
			if t.spacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.spm(strings.ReplaceAll(s, " ", "▁"), out)
		} else {
			for _, w := range preTokenizeLlama3(f.text) {
				out = t.bpe(w, out)
			}
		}
		prevSpecial = false
	}
	return out
}

// fragment is raw text (id −1) or a special token.
type fragment struct {
	text string
	id   int32
}

// partition splits text at the special tokens it names, each special in turn, longest first, as
// llama.cpp's tokenizer_st_partition does. User-defined tokens split always; control tokens
// only when special.
func (t *Tokenizer) partition(text string, special bool) []fragment {
	frags := []fragment{{text, -1}}
	for _, id := range t.special {
		if !special && (t.types[id] == typeControl || t.types[id] == typeUnknown) {
			continue
		}
		tok := t.tokens[id]
		if tok == "" {
			continue
		}
		var next []fragment
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			s := f.text
			for {
				i := strings.Index(s, tok)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{s[:i], -1})
				}
				next = append(next, fragment{"", id})
				s = s[i+len(tok):]
			}
			if s != "" {
				next = append(next, fragment{s, -1})
			}
		}
		frags = next
	}
	return frags
}

// spm is SentencePiece's BPE over the characters of s (llm_tokenizer_spm): repeatedly merge the
// adjacent pair whose concatenation is a piece with the highest score (the leftmost on ties);
// a final symbol that is no piece becomes its bytes' <0xNN> tokens.
func (t *Tokenizer) spm(s string, out []int32) []int32 {
	syms := splitRunes(s)
	for len(syms) > 1 {
		best, bestScore := -1, float32(0)
		for i := 0; i+1 < len(syms); i++ {
			id, ok := t.ids[syms[i]+syms[i+1]]
			if !ok {
				continue
			}
			if sc := t.scores[id]; best < 0 || sc > bestScore {
				best, bestScore = i, sc
			}
		}
		if best < 0 {
			break
		}
		syms[best] += syms[best+1]
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	for _, s := range syms {
		if id, ok := t.ids[s]; ok {
			out = append(out, id)
			continue
		}
		for _, b := range []byte(s) {
			if id := t.bytes[b]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}

// bpe encodes one pre-tokenized word: its bytes as GPT-2's printable symbols, then repeatedly
// the adjacent pair of lowest merge rank (leftmost on ties) merged.
func (t *Tokenizer) bpe(word string, out []int32) []int32 {
	var b strings.Builder
	for _, c := range []byte(word) {
		b.WriteRune(byteRune[c])
	}
	w := b.String()
	if id, ok := t.ids[w]; ok && t.ignoreMerges {
		return append(out, id)
	}
	syms := splitRunes(w)
	for len(syms) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(syms); i++ {
			r, ok := t.ranks[syms[i]+" "+syms[i+1]]
			if ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		syms[best] += syms[best+1]
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	for _, s := range syms {
		if id, ok := t.ids[s]; ok {
			out = append(out, id)
		}
	}
	return out
}

// Decode turns ids into text: pieces with ▁ as spaces and byte tokens as bytes ("llama"), or
// GPT-2 symbols back to bytes ("gpt2"). Control tokens give nothing.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	for _, id := range ids {
		b = append(b, t.Piece(id)...)
	}
	return string(b)
}

// Piece is the bytes one token stands for (possibly part of a UTF-8 character).
func (t *Tokenizer) Piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	s := t.tokens[id]
	switch t.types[id] {
	case typeControl, typeUnknown, typeUnused:
		return nil
	case typeByte:
		var v byte
		if _, err := fmt.Sscanf(s, "<0x%02X>", &v); err == nil {
			return []byte{v}
		}
	case typeUserDefined:
		return []byte(s)
	}
	if t.Model == "llama" {
		return []byte(strings.ReplaceAll(s, "▁", " "))
	}
	var out []byte
	for _, r := range s {
		if c, ok := runeByte[r]; ok {
			out = append(out, c)
		}
	}
	return out
}

func splitRunes(s string) []string {
	out := make([]string, 0, len(s))
	for len(s) > 0 {
		_, n := utf8.DecodeRuneInString(s)
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// byteRune is GPT-2's bytes_to_unicode: every byte as a printable rune; runeByte inverts it.
var byteRune, runeByte = func() ([256]rune, map[rune]byte) {
	var enc [256]rune
	dec := map[rune]byte{}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			enc[b] = rune(b)
		} else {
			enc[b] = rune(256 + n)
			n++
		}
		dec[enc[b]] = byte(b)
	}
	return enc, dec
}()

// preTokenizeLlama3 splits text as Llama 3's regex does,
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// written out as llama.cpp's unicode_regex_split_custom_llama3 is (Go's regexp has no
// look-ahead).
func preTokenizeLlama3(s string) []string {
	rs := []rune(s)
	n := len(rs)
	const none = rune(-1)
	at := func(i int) rune {
		if i < 0 || i >= n {
			return none
		}
		return rs[i]
	}
	letter := func(i int) bool { return at(i) != none && unicode.IsLetter(rs[i]) }
	number := func(i int) bool { return at(i) != none && unicode.IsNumber(rs[i]) }
	space := func(i int) bool { return at(i) != none && unicode.IsSpace(rs[i]) }
	var out []string
	start := 0
	emit := func(end int) {
		if end > start {
			out = append(out, string(rs[start:end]))
		}
		start = end
	}
	for pos := 0; pos < n; {
		c := rs[pos]
		if c == '\'' && pos+1 < n {
			c1 := unicode.ToLower(rs[pos+1])
			if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
				pos += 2
				emit(pos)
				continue
			}
			if pos+2 < n {
				c2 := unicode.ToLower(rs[pos+2])
				if (c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l') {
					pos += 3
					emit(pos)
					continue
				}
			}
		}
		if !(c == '\r' || c == '\n' || number(pos)) {
			if letter(pos) || letter(pos+1) {
				pos++
				for letter(pos) {
					pos++
				}
				emit(pos)
				continue
			}
		}
		if number(pos) {
			ini := pos
			for number(pos) && pos-ini < 3 {
				pos++
			}
			emit(pos)
			continue
		}
		p2 := pos
		if c == ' ' {
			p2 = pos + 1
		}
		other := func(i int) bool { return at(i) != none && !space(i) && !letter(i) && !number(i) }
		if other(p2) {
			pos = p2
			for other(pos) {
				pos++
			}
			for at(pos) == '\r' || at(pos) == '\n' {
				pos++
			}
			emit(pos)
			continue
		}
		ws, lastRN := 0, 0
		for space(pos + ws) {
			if r := rs[pos+ws]; r == '\r' || r == '\n' {
				lastRN = pos + ws + 1
			}
			ws++
		}
		if lastRN > 0 {
			pos = lastRN
			emit(pos)
			continue
		}
		if ws > 1 && at(pos+ws) != none {
			pos += ws - 1
			emit(pos)
			continue
		}
		if ws > 0 {
			pos += ws
			emit(pos)
			continue
		}
		pos++
		emit(pos)
	}
	return out
}
