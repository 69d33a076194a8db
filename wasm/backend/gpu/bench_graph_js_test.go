//go:build js && wasm

package gpu

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// -nibble.profile times every step of the benchmarked forwards alone.
var benchProfile = flag.Bool("nibble.profile", false, "time each dispatch step of a graph benchmark alone")

// -nibble.rowwg sets the row reductions' workgroup on software adapters.
var benchRowWG = flag.Int("nibble.rowwg", 0, "row-reduction workgroup on software adapters (0: the default)")

// buildEncoder is backendtest.Encoder of size s, its weights synthetic (syntheticTensor): the
// benchmark times the graph, not the values.
func buildEncoder(s backendtest.Encoder, f quant.Format, rng *rand.Rand) (*graph.Graph, map[string]*quant.Tensor, error) {
	g := graph.New(fmt.Sprintf("encoder B%d T%d D%d", s.B, s.T, s.D))
	emb, _, ws := s.Build(g, syntheticWeights{rng, f})
	return g, ws, g.Output(emb)
}

// syntheticWeights are syntheticTensor matrices in format f and float32 vectors.
type syntheticWeights struct {
	rng *rand.Rand
	f   quant.Format
}

func (w syntheticWeights) Matrix(name string, n, k int) *quant.Tensor {
	t := syntheticTensor(w.rng, n, k, w.f)
	t.Name = name
	return t
}

func (w syntheticWeights) Vector(name string, n int, _ float64) *quant.Tensor {
	t := syntheticTensor(w.rng, 1, n, quant.Format{Bits: 32})
	t.Name = name
	return t
}

// BenchmarkGraphEncoder times one forward of a 2-layer encoder at USE-lite's size (D 512, 4
// heads, FFN 1536, T 16) for 1 and 30 sequences, weights int4 g32 and f32: the whole Run
// (inputs written, one submit, one readback) and the same forward without the readback (the
// queue drained instead), whose difference is what the readback costs. Medians of b.N runs.
func BenchmarkGraphEncoder(bb *testing.B) {
	if *benchRowWG > 0 {
		defer func(wg int) { softwareRowWG = wg }(softwareRowWG)
		softwareRowWG = *benchRowWG
	}
	b := newBackend(bb, Options{})
	for _, f := range []quant.Format{quant.Q4, {Bits: 32}} {
		for _, batch := range []int{1, 30} {
			s := backendtest.Encoder{B: batch, T: 16, D: 512, H: 4, F: 1536, Layers: 2}
			bb.Run(fmt.Sprintf("%v/B=%d", f, batch), func(bb *testing.B) {
				benchEncoder(bb, b, s, f)
			})
		}
	}
}

func benchEncoder(bb *testing.B, b *Backend, s backendtest.Encoder, f quant.Format) {
	rng := rand.New(rand.NewPCG(1, 2))
	g, qs, err := buildEncoder(s, f, rng)
	if err != nil {
		bb.Fatal(err)
	}
	ws := backend.WeightMap{}
	for name, q := range qs {
		w, err := b.Upload(q)
		if err != nil {
			bb.Fatal(err)
		}
		defer w.Release()
		ws[name] = w
	}
	start := time.Now()
	prog, err := b.Compile(g, ws)
	if err != nil {
		bb.Fatal(err)
	}
	defer prog.Release()
	compile := time.Since(start)
	p := prog.(*program)
	x := make([]float32, s.B*s.T*s.D)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	mask := make([]float32, s.B*s.T)
	for i := range mask {
		mask[i] = 1
	}
	in := []graph.Tensor{graph.F32Tensor(x, s.B, s.T, s.D), graph.F32Tensor(mask, s.B, s.T)}
	ctx := context.Background()
	// The first forward builds nothing more, but SwiftShader compiles pipelines lazily.
	if _, err := p.Run(ctx, in); err != nil {
		bb.Fatal(err)
	}
	var full, bare, read, enc []time.Duration
	bb.ResetTimer()
	for range bb.N {
		t0 := time.Now()
		if _, err := p.Run(ctx, in); err != nil {
			bb.Fatal(err)
		}
		full = append(full, time.Since(t0))
		t0 = time.Now()
		if _, err := p.run(ctx, in, false); err != nil {
			bb.Fatal(err)
		}
		bare = append(bare, time.Since(t0))
		d, err := p.readbackAlone()
		if err != nil {
			bb.Fatal(err)
		}
		read = append(read, d)
		if d, err = p.encodeAlone(); err != nil {
			bb.Fatal(err)
		}
		enc = append(enc, d)
	}
	bb.StopTimer()
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	mf, mb, mr, me := med(full), med(bare), med(read), med(enc)
	if *benchProfile {
		times, err := p.profile()
		if err != nil {
			bb.Fatal(err)
		}
		for i, d := range times {
			name := "matmul"
			if st := p.steps[i]; st.mm == nil {
				name = st.pl.Label()
			} else {
				name = st.mm.key.Name()
			}
			fmt.Printf("step %2d %-40s %8.2f ms\n", i, name, float64(d.Microseconds())/1000)
		}
	}
	var arena int64
	for _, sz := range p.plan.slabs {
		arena += sz
	}
	bb.ReportMetric(mf, "ms/forward")
	bb.ReportMetric(mb, "ms/forward-no-readback")
	bb.ReportMetric(mr, "ms/readback")
	bb.ReportMetric(me, "ms/encode")
	bb.ReportMetric(0, "ns/op")
	bb.Logf("%s, %v weights: %.1f ms per forward, %.1f without the readback; the readback alone (%d bytes: copy, submit, map, copy out) %.1f ms; recording the %d steps %.2f ms (medians of %d); arena %d KiB in %d buffers; compile %v; adapter %v",
		g.Name, f, mf, mb, len(p.host), mr, len(p.steps), me, len(full), arena>>10, len(p.slabs), compile.Round(time.Millisecond), b.AdapterInfo())
}

// profile runs each step of p alone (its own submit, the queue drained) and returns the wall
// time of each, for finding the op that dominates a forward. The arena holds the last Run's
// values, which the steps read again.
func (p *program) profile() ([]time.Duration, error) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	out := make([]time.Duration, len(p.steps))
	for i := range p.steps {
		enc, err := p.b.dev.CreateCommandEncoder("profile")
		if err != nil {
			return nil, err
		}
		if err := p.record(enc, p.steps[i:i+1], "profile"); err != nil {
			return nil, err
		}
		cb, err := enc.Finish()
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := p.b.dev.Queue().Submit(cb); err != nil {
			return nil, err
		}
		if err := p.b.dev.Queue().OnSubmittedWorkDone(); err != nil {
			return nil, err
		}
		out[i] = time.Since(t0)
	}
	return out, nil
}

// readbackAlone times the readback of a forward on its own, the GPU otherwise idle: the copies
// of the outputs into the staging buffer, a submit, mapAsync and the copy into Go memory.
func (p *program) readbackAlone() (time.Duration, error) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	t0 := time.Now()
	enc, err := p.b.dev.CreateCommandEncoder("readback alone")
	if err != nil {
		return 0, err
	}
	for _, r := range p.outputs {
		if err := enc.CopyBufferToBuffer(r.buf, r.off, p.readback, r.at, r.size); err != nil {
			return 0, err
		}
	}
	cb, err := enc.Finish()
	if err != nil {
		return 0, err
	}
	if err := p.b.dev.Queue().Submit(cb); err != nil {
		return 0, err
	}
	err = p.read()
	return time.Since(t0), err
}

// encodeAlone times recording a forward's steps into a command encoder (host work; nothing is
// submitted).
func (p *program) encodeAlone() (time.Duration, error) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	t0 := time.Now()
	enc, err := p.b.dev.CreateCommandEncoder("encode alone")
	if err != nil {
		return 0, err
	}
	if err := p.recordList(enc, p.forward, "encode alone", nil); err != nil {
		return 0, err
	}
	_, err = enc.Finish()
	return time.Since(t0), err
}
