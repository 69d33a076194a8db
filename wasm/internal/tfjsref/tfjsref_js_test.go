//go:build js && wasm

package tfjsref

import (
	"context"
	_ "embed"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// The test needs TF.js and the model from a local server: tools/streamserve serves both and
// sets NIBBLE_TFJS_URL and NIBBLE_STREAM_URL, which wasmbrowsertest passes into the page.
const serverHint = "run through the wrapper: go run ./tools/streamserve -big 0 -- bash tools/browser/test-js.sh ./wasm/internal/tfjsref -v"

//go:embed testdata/sentences.json
var sentencesJSON []byte

type sentence struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func sentences(t *testing.T) []sentence {
	var f struct{ Sentences []sentence }
	if err := json.Unmarshal(sentencesJSON, &f); err != nil {
		t.Fatal(err)
	}
	return f.Sentences
}

func setup(t *testing.T) (context.Context, string) {
	tfjs, models := os.Getenv("NIBBLE_TFJS_URL"), os.Getenv("NIBBLE_STREAM_URL")
	if tfjs == "" || models == "" {
		t.Skip("NIBBLE_TFJS_URL or NIBBLE_STREAM_URL is not set: " + serverHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	start := time.Now()
	if err := Load(ctx, tfjs); err != nil {
		t.Fatal(err)
	}
	t.Logf("TF.js %s loaded from %s in %v", Version, tfjs, time.Since(start).Round(time.Millisecond))
	return ctx, models + "/use-lite/model.json"
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// maxBackendDistance is the bound on the cosine distance between two TF.js backends' fp32
// embeddings of one sentence: nibble is held to 1e-5 against TF.js, so TF.js's own backends
// must agree well inside that for it to be a reference at all.
const maxBackendDistance = 1e-5

// TestBackends runs USE-lite on TF.js's cpu, wasm and webgpu backends over the sentence set:
// unit-norm 512-d outputs, distinct sentences distinct, related sentences nearer than
// unrelated ones, and the three backends in agreement.
func TestBackends(t *testing.T) {
	ctx, modelURL := setup(t)
	// The empty sentence first: a row of no tokens is where backends are likeliest to part.
	set := append([]sentence{{Text: ""}}, sentences(t)...)
	ids := make([][]int32, len(set))
	for i, s := range set {
		ids[i] = s.IDs
	}

	got := map[string][][]float32{}
	for _, b := range Backends {
		if err := SetBackend(ctx, b); err != nil {
			t.Fatal(err)
		}
		facts, err := Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v", facts)
		start := time.Now()
		e, err := Embed(ctx, modelURL, ids)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		first := time.Since(start)
		start = time.Now()
		if _, err := Embed(ctx, modelURL, ids); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		t.Logf("%s: %d sentences: first call (model load, compile) %v, second %v", b, len(ids),
			first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		for i, v := range e {
			if len(v) != 512 {
				t.Fatalf("%s: sentence %d: %d-d, want 512", b, i, len(v))
			}
			if n := norm(v); math.IsNaN(n) || math.Abs(n-1) > 1e-5 {
				t.Errorf("%s: sentence %d: norm %v, want 1 within 1e-5", b, i, n)
			}
		}
		for i := range e {
			for j := i + 1; j < len(e); j++ {
				if d := 1 - quanteval.Cosine(e[i], e[j]); d < 1e-3 {
					t.Errorf("%s: sentences %d and %d: cosine distance %.2g: different inputs, (nearly) the same output", b, i, j, d)
				}
			}
		}
		// A model that ran the wrong graph still gives distinct unit vectors; meaning does not
		// survive that. Sentences 2 (guitar) and 3 (instrument) against 4 (stock market).
		if near, far := 1-quanteval.Cosine(e[2], e[3]), 1-quanteval.Cosine(e[2], e[4]); near >= far {
			t.Errorf("%s: %q is %.3f from %q but %.3f from %q: related sentences should be nearer", b,
				set[2].Text, near, set[3].Text, far, set[4].Text)
		}
		got[b] = e
	}

	ref := got[Backends[0]]
	for _, b := range Backends[1:] {
		worst, at := 0.0, 0
		for i := range ref {
			if d := 1 - quanteval.Cosine(ref[i], got[b][i]); d > worst {
				worst, at = d, i
			}
		}
		t.Logf("%s vs %s: max cosine distance %.3g (sentence %d, %q)", b, Backends[0], worst, at, set[at].Text)
		if worst > maxBackendDistance {
			t.Errorf("%s vs %s: cosine distance %.3g on sentence %d > %g", b, Backends[0], worst, at, maxBackendDistance)
		}
	}
}

// TestInputEdges pins down how the model treats inputs a nibble encoder must treat the same
// way (the package doc lists them): batching, empty sentences, sentences past the length limit,
// id 0, bad ids. On the wasm backend: it matches cpu (TestBackends) and runs 20× faster.
func TestInputEdges(t *testing.T) {
	ctx, modelURL := setup(t)
	if err := SetBackend(ctx, "wasm"); err != nil {
		t.Fatal(err)
	}
	set := sentences(t)
	embed := func(ids ...[]int32) [][]float32 {
		t.Helper()
		e, err := Embed(ctx, modelURL, ids)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := set[0].IDs, set[4].IDs

	// Padding is masked: a sentence's embedding does not depend on its batch.
	batch, alone := embed(a, b), embed(b)
	t.Logf("batched vs alone: cosine distance %.3g", 1-quanteval.Cosine(batch[1], alone[0]))
	if d := 1 - quanteval.Cosine(batch[1], alone[0]); d > 1e-6 {
		t.Errorf("sentence batched with a longer one vs alone: cosine distance %.3g", d)
	}

	// An empty sentence before a non-empty one gets a row: the model's embedding of no tokens.
	empty := embed(a, nil, b)
	if d := 1 - quanteval.Cosine(empty[2], alone[0]); d > 1e-6 {
		t.Errorf("sentence after an empty one vs alone: cosine distance %.3g", d)
	}
	emptyFirst := embed(nil, b)
	if d := 1 - quanteval.Cosine(empty[1], emptyFirst[0]); d > 1e-6 {
		t.Errorf("the empty sentence's embedding depends on its batch: cosine distance %.3g", d)
	}
	t.Logf("empty sentence: norm %.6f, first values %v, cosine distance to %q: %.3f",
		norm(empty[1]), empty[1][:4], set[0].Text, 1-quanteval.Cosine(empty[1], empty[0]))

	// Trailing empty sentences get no row from the model: Embed says so.
	if _, err := Embed(ctx, modelURL, [][]int32{a, nil}); err == nil || !strings.Contains(err.Error(), "no row") {
		t.Errorf("a trailing empty sentence: err %v, want one that says the model makes no row", err)
	}
	if _, err := Embed(ctx, modelURL, [][]int32{nil}); err == nil {
		t.Error("only empty sentences: no error")
	}

	// The model drops positions from 128 on.
	long := make([]int32, 0, 140)
	for len(long) < 140 {
		long = append(long, a...)
	}
	long = long[:140]
	clipped := embed(long[:128], long[:129], long)
	for i, n := range []int{129, 140} {
		d := 1 - quanteval.Cosine(clipped[0], clipped[i+1])
		t.Logf("%d ids vs their first 128: cosine distance %.3g", n, d)
		if d > 1e-6 {
			t.Errorf("%d ids vs their first 128: cosine distance %.3g: the model no longer clips at 128?", n, d)
		}
	}
	if d := 1 - quanteval.Cosine(embed(long[:127])[0], clipped[0]); d < 1e-6 {
		t.Errorf("127 vs 128 ids: cosine distance %.3g: position 127 should still count", d)
	}

	// Id 0 (<unk>) is a token like any other, not padding.
	unk := embed(append([]int32{0}, b...), b)
	t.Logf("<unk> + %q vs %q: cosine distance %.3f", set[4].Text, set[4].Text, 1-quanteval.Cosine(unk[0], unk[1]))
	if d := 1 - quanteval.Cosine(unk[0], unk[1]); d < 1e-4 {
		t.Errorf("a leading id 0 changed the embedding by only %.3g: is 0 treated as padding?", d)
	}

	for _, bad := range []int32{-1, 8002} {
		if _, err := Embed(ctx, modelURL, [][]int32{{5, bad}}); err == nil || !strings.Contains(err.Error(), "token table") {
			t.Errorf("id %d: err %v, want one naming the token table", bad, err)
		}
	}
	if _, err := Embed(ctx, modelURL, [][]int32{{8001}}); err != nil {
		t.Errorf("id 8001, the table's last row: %v", err)
	}
}
