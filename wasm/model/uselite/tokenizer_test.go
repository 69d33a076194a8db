package uselite

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shippedVocab reads the vocab.json that make deps installs beside the model.
func shippedVocab(t testing.TB) []byte {
	t.Helper()
	vocab, err := os.ReadFile(filepath.Join(modelDir(t), "vocab.json"))
	if err != nil {
		t.Fatal(err)
	}
	return vocab
}

type goldenCase struct {
	Name    string  `json:"name"`
	Text    string  `json:"text"`
	IDs     []int32 `json:"ids"`
	TFJSIDs []int32 `json:"tfjs_ids"`
}

type goldenFile struct {
	Reference   string       `json:"reference"`
	VocabSHA256 string       `json:"vocab_sha256"`
	Cases       []goldenCase `json:"cases"`
}

func readGolden(t *testing.T) goldenFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/tokenizer_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("testdata/tokenizer_cases.json: %v", err)
	}
	return g
}

// TestEncodeMatchesReference compares Encode with the ids that @energetic-ai/embeddings fed to
// the model for each case (testdata/gen/gen.mjs recorded them under node).
func TestEncodeMatchesReference(t *testing.T) {
	vocab := shippedVocab(t)
	golden := readGolden(t)
	sum := sha256.Sum256(vocab)
	if got := hex.EncodeToString(sum[:]); got != golden.VocabSHA256 {
		t.Fatalf("installed vocab.json has sha256 %s, the golden ids were made from %s: rerun testdata/gen/gen.mjs", got, golden.VocabSHA256)
	}
	if len(golden.Cases) < 30 {
		t.Fatalf("%d golden cases, want at least 30", len(golden.Cases))
	}
	tok, err := NewTokenizer(vocab)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range golden.Cases {
		t.Run(c.Name, func(t *testing.T) {
			got := tok.Encode(c.Text)
			if !slices.Equal(got, c.IDs) {
				t.Errorf("Encode(%q)\n got  %v\n want %v (%s)\n pieces %q", c.Text, got, c.IDs, golden.Reference, tok.Pieces(c.Text))
			}
			if c.TFJSIDs != nil {
				t.Logf("TF.js's tokenizer gives other ids here: %v", c.TFJSIDs)
			}
		})
	}
}

// TestLongTextIsNotClipped pins the documented behaviour: clipping is the graph's job.
func TestLongTextIsNotClipped(t *testing.T) {
	tok, err := NewTokenizer(shippedVocab(t))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimPrefix(strings.Repeat(" world", 300), " ")
	if n := len(tok.Encode(text)); n != 300 {
		t.Errorf("Encode of 300 × \"world\" gave %d ids, want 300 (unclipped)", n)
	}
}

// A toy vocabulary whose scores make each reference quirk decide the outcome. The wanted ids are
// what @energetic-ai/embeddings@0.2.0's tokenizer gives for it under node.
const quirkVocab = `[["<unk>",0],["<s>",0],["</s>",0],["x1",0],["x2",0],["x3",0],
	["▁",-1],["a",-2],["b",-2],["▁ab",null],["ab",-1],["c",-3],["c",-9],["▁a",-1.5]]`

func TestQuirks(t *testing.T) {
	tok, err := NewTokenizer([]byte(quirkVocab))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, text string
		want       []int32
	}{
		// "▁ab" (null score = 0) reaches 0 first, then "▁"+"ab" (-2) overwrites it, because the
		// reference treats a best score of 0 as unset.
		{"zero score is overwritten", "ab", []int32{6, 10}},
		{"duplicate piece keeps the last id", "c", []int32{6, 12}},
		// The back-trace steps over an unknown by the length of piece 0 ("<unk>" here, 5), as
		// the reference does; the shipped vocab's piece 0 is "�", one code unit.
		{"unknown steps by piece 0's length", "a??b", []int32{0, 8}},
		{"reserved pieces are not matched", "<s>", []int32{0}},
		{"empty text", "", nil},
		{"a space is a separator", " ", []int32{6, 6}},
		{"nfkc first", "ａ", []int32{13}},
	} {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.name, c.text, got, c.want)
		}
	}
}

func TestNewTokenizerRejectsMalformedVocab(t *testing.T) {
	reserved := `["<unk>",0],["<s>",0],["</s>",0],["x1",0],["x2",0],["x3",0]`
	for _, c := range []struct{ name, vocab, wantInError string }{
		{"not json", `[[`, "not a JSON array"},
		{"object", `{"a":1}`, "not a JSON array"},
		{"only reserved", `[` + reserved + `]`, "reserved"},
		{"entry not a pair", `[` + reserved + `,["a",-1,2]]`, "entry 6"},
		{"entry a string", `[` + reserved + `,"a"]`, "entry 6"},
		{"piece not a string", `[` + reserved + `,[1,-1]]`, "not a string"},
		{"piece null", `[` + reserved + `,[null,-1]]`, "not a string"},
		{"empty piece", `[` + reserved + `,["",-1]]`, "empty piece"},
		{"score a string", `[` + reserved + `,["a","-1"]]`, "not a number"},
	} {
		_, err := NewTokenizer([]byte(c.vocab))
		if err == nil || !strings.Contains(err.Error(), c.wantInError) {
			t.Errorf("%s: NewTokenizer(%s) error = %v, want one containing %q", c.name, c.vocab, err, c.wantInError)
		}
	}
}

func TestDecode(t *testing.T) {
	tok, err := NewTokenizer(shippedVocab(t))
	if err != nil {
		t.Fatal(err)
	}
	text := "Hello world. The quick brown fox, twice:  twice."
	got, err := tok.Decode(tok.Encode(text))
	if err != nil || got != text {
		t.Errorf("Decode(Encode(%q)) = %q, %v", text, got, err)
	}
	if _, err := tok.Decode([]int32{6, int32(tok.VocabSize())}); err == nil || !strings.Contains(err.Error(), "position 1") {
		t.Errorf("Decode of an id past the vocabulary: error %v, want one naming position 1", err)
	}
}

// BenchmarkEncode reports tokens/s on an English paragraph (the common case: mostly ASCII, so
// NFKC's quick check passes it through).
func BenchmarkEncode(b *testing.B) {
	tok, err := NewTokenizer(shippedVocab(b))
	if err != nil {
		b.Fatal(err)
	}
	paragraph := "The Universal Sentence Encoder encodes text into high-dimensional vectors that can be " +
		"used for text classification, semantic similarity, clustering and other natural language tasks. " +
		"The model is trained and optimized for greater-than-word length text, such as sentences, phrases " +
		"or short paragraphs. It is trained on a variety of data sources and a variety of tasks with the " +
		"aim of dynamically accommodating a wide variety of natural language understanding tasks."
	tokens := len(tok.Encode(paragraph))
	b.SetBytes(int64(len(paragraph)))
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(paragraph)
	}
	b.ReportMetric(float64(tokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
