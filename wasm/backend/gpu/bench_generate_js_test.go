//go:build js && wasm

package gpu

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/llama"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

var (
	// -nibble.chaindepth is how many greedy steps BenchmarkDecode's chained row keeps queued.
	benchChainDepth = flag.Int("nibble.chaindepth", llama.ChainDepth, "greedy decode steps BenchmarkDecode's chained row keeps in flight")
	// -nibble.chaintokens is how many tokens that row times (after 300 ms of warm-up).
	benchChainTokens = flag.Int("nibble.chaintokens", 64, "tokens BenchmarkDecode's chained row times")
	// -nibble.chainstamps writes timestamps at each timed step's pass: the pass's GPU time in
	// the chain, and the time from one pass's start to the next's.
	benchChainStamps = flag.Bool("nibble.chainstamps", false, "BenchmarkDecode's chained row: time each step's pass on the GPU (timestamp queries)")
)

// chainedResult is BenchmarkDecode's chained row, NIBBLE_DECODE_CHAINED in the log.
type chainedResult struct {
	Model       string  `json:"model"`
	Pos         int     `json:"pos"`
	Keep        int     `json:"keep"`
	Tokens      int     `json:"tokens"`
	Depth       int     `json:"depth"`
	MSToken     float64 `json:"ms_token"`
	TokPerS     float64 `json:"tok_per_s"`
	PctLimit    float64 `json:"pct_limit"`
	MSTokenSync float64 `json:"ms_token_sync"`  // the synchronous Forward row's
	MSGPU       float64 `json:"ms_gpu_forward"` // timestamp queries, the Forward row's
	MSHostBusy  float64 `json:"ms_host_busy"`   // per token: Queue, reading an id back, the loop
	MSEncode    float64 `json:"ms_encode"`      // the Forward row's recording of one forward, part of the busy time
	// Per token, where Queue's time went: input writes, the feed's and readback's copies, the
	// submit, recording the next forward, the rest of Queue; and the busy time outside Queue.
	MSQueueWrites float64 `json:"ms_queue_writes"`
	MSQueueCopies float64 `json:"ms_queue_copies"`
	MSQueueSubmit float64 `json:"ms_queue_submit"`
	MSQueueRecord float64 `json:"ms_queue_record"`
	MSQueueRest   float64 `json:"ms_queue_rest"`
	MSOutside     float64 `json:"ms_outside_queue"`
	MSHostHidden  float64 `json:"ms_host_hidden"` // per token: sync − chained
	IDsChecked    string  `json:"ids"`
	// With -nibble.chainstamps, medians over the timed steps: a step's pass on the GPU, and
	// from its start to the next step's.
	MSPassGPU    float64 `json:"ms_pass_gpu,omitempty"`
	MSPassPeriod float64 `json:"ms_pass_period,omitempty"`
}

// decodeChained is BenchmarkDecode's chained greedy row at keep cached rows: the decode graph
// ending in ArgMax (as llama's greedy Generate runs it), compiled on states of its own, run as
// a chain of steps at position keep−1, each step's id fed to the next on the device, depth
// steps in flight. Its time per token is the steady state of the chain: from the wait that
// ends the warm-up to the wait of the last timed token. Beside it, the host's busy time per
// token (all of it but the waits, split into Queue's parts), which the GPU no longer waits for
// when it is below the GPU's time; and a check of the chain: the last fed step run alone on the
// id it was fed gives the id the chain read back.
func decodeChained(b *testing.B, be *Backend, s decodeShape, ws backend.WeightMap, sync decodeResult) {
	c := s.c
	keep := sync.Keep
	g, err := c.Build(1, keep, s.cache, s.context, false)
	if err != nil {
		b.Fatal(err)
	}
	next := g.ArgMax("next", g.Outputs[0])
	g.Outputs = g.Outputs[:0]
	if err := g.Output(next); err != nil {
		b.Fatal(err)
	}
	prog, release := compileWithStates(b, be, g, ws)
	defer release()
	p := prog.(*program)
	in := decodeInputs(c, keep)
	ctx := context.Background()
	depth, n := max(*benchChainDepth, 1), *benchChainTokens
	var flight []backend.Queued
	var ids []int32
	var last backend.Queued
	var waiting time.Duration
	step := func() {
		q, err := p.Queue(ctx, in, backend.Feed{From: last})
		if err != nil {
			b.Fatal(err)
		}
		last, flight = q, append(flight, q)
		if len(flight) < depth {
			return
		}
		t0 := time.Now()
		out, err := flight[0].Wait(ctx)
		waiting += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		flight = flight[1:]
		ids = append(ids, out[0].I32[0])
	}
	for t0 := time.Now(); time.Since(t0) < 300*time.Millisecond || len(ids) == 0; {
		step()
	}
	warm := len(ids)
	waiting = 0
	stamps := startStamps(b, be, 2*(n+depth+2))
	spent := p.chain.spent
	t0 := time.Now()
	for len(ids) < warm+n {
		step()
	}
	total := time.Since(t0)
	be.mu.Lock()
	be.passStamps = nil
	be.mu.Unlock()
	now := p.chain.spent
	spent = queueTimes{now.writes - spent.writes, now.copies - spent.copies, now.submit - spent.submit,
		now.record - spent.record, now.all - spent.all}
	for _, q := range flight {
		if _, err := q.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	r := chainedResult{Model: s.name, Pos: keep - 1, Keep: keep, Tokens: n, Depth: depth,
		MSToken: total.Seconds() * 1e3 / float64(n), MSTokenSync: sync.MSToken, MSGPU: sync.MSGPU, MSEncode: sync.MSEncode}
	r.TokPerS = 1e3 / r.MSToken
	if sync.LimitTokPerS > 0 {
		r.PctLimit = 100 * r.TokPerS / sync.LimitTokPerS
	}
	r.MSHostBusy = (total - waiting).Seconds() * 1e3 / float64(n)
	r.MSHostHidden = r.MSTokenSync - r.MSToken
	perToken := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(n) }
	r.MSQueueWrites, r.MSQueueCopies = perToken(spent.writes), perToken(spent.copies)
	r.MSQueueSubmit, r.MSQueueRecord = perToken(spent.submit), perToken(spent.record)
	r.MSQueueRest = perToken(spent.all - spent.writes - spent.copies - spent.submit - spent.record)
	r.MSOutside = r.MSHostBusy - perToken(spent.all)
	if stamps != nil {
		r.MSPassGPU, r.MSPassPeriod = stamps.medians(b, be)
	}
	// The chain's last two ids read back: the step fed the first made the second.
	in[0] = graph.I32Tensor([]int32{ids[len(ids)-2]}, 1)
	out, err := p.Run(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	r.IDsChecked = "equal"
	if got, want := out[0].I32[0], ids[len(ids)-1]; got != want {
		r.IDsChecked = fmt.Sprintf("step on id %d alone gives %d, the chain read %d", ids[len(ids)-2], got, want)
		b.Errorf("%s pos %d chained: %s", s.name, r.Pos, r.IDsChecked)
	}
	line, _ := json.Marshal(r)
	fmt.Printf("NIBBLE_DECODE_CHAINED %s\n", line)
	b.Logf("%s pos %d (keep %d) chained greedy, %d in flight: %.2f ms a token, %.1f tok/s, %.1f%% of the limit (synchronous Forward %.2f ms, GPU %.2f ms); host busy %.2f ms a token (Queue's writes %.3f, copies %.3f, submit %.3f, recording %.3f, rest %.3f; outside Queue %.3f), %.2f ms a token off the critical path; ids %s",
		s.name, r.Pos, keep, depth, r.MSToken, r.TokPerS, r.PctLimit, r.MSTokenSync, r.MSGPU, r.MSHostBusy, r.MSQueueWrites, r.MSQueueCopies, r.MSQueueSubmit, r.MSQueueRecord, r.MSQueueRest, r.MSOutside, r.MSHostHidden, r.IDsChecked)
	if stamps != nil {
		b.Logf("%s pos %d chained, on the GPU: a step's pass %.3f ms, from one pass's start to the next %.3f ms (median)", s.name, r.Pos, r.MSPassGPU, r.MSPassPeriod)
	}
}

// chainStamps are the timestamp queries -nibble.chainstamps hands to the chain's passes.
type chainStamps struct {
	qs    *webgpu.QuerySet
	count int
}

// startStamps hands count queries to the forwards be records from now on, or returns nil
// without -nibble.chainstamps or timestamp queries.
func startStamps(b *testing.B, be *Backend, count int) *chainStamps {
	if !*benchChainStamps || !be.Caps().TimestampQuery {
		return nil
	}
	count = min(count, 4096)
	qs, err := be.dev.CreateQuerySet("chain stamps", count)
	if err != nil {
		b.Fatal(err)
	}
	be.mu.Lock()
	be.passStamps = &passStamps{qs: qs, size: count}
	be.mu.Unlock()
	return &chainStamps{qs: qs, count: count}
}

// medians resolves the queries (after every stamped pass ran) and returns the median pass time
// and the median time between consecutive passes' starts, in ms; pairs never written (the
// forward recorded ahead that did not run) read 0 and are left out.
func (c *chainStamps) medians(b *testing.B, be *Backend) (pass, period float64) {
	size := int64(8 * c.count)
	res, err := be.dev.CreateBuffer("chain stamps resolve", size, webgpu.BufferQueryResolve|webgpu.BufferCopySrc)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Destroy()
	rd, err := be.dev.CreateBuffer("chain stamps read", size, webgpu.BufferMapRead|webgpu.BufferCopyDst)
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Destroy()
	raw := make([]byte, size)
	err = func() error {
		enc, err := be.dev.CreateCommandEncoder("chain stamps")
		if err != nil {
			return err
		}
		if err := enc.ResolveQuerySet(c.qs, 0, c.count, res, 0); err != nil {
			return err
		}
		if err := enc.CopyBufferToBuffer(res, 0, rd, 0, size); err != nil {
			return err
		}
		cb, err := enc.Finish()
		if err != nil {
			return err
		}
		if err := be.dev.Queue().Submit(cb); err != nil {
			return err
		}
		return mapCopy(rd, size, raw)
	}()
	if err != nil {
		b.Fatal(err)
	}
	t := func(i int) uint64 { return binary.LittleEndian.Uint64(raw[8*i:]) }
	var passes, periods []float64
	for i := 0; i+1 < c.count; i += 2 {
		if t(i) == 0 || t(i+1) <= t(i) {
			continue
		}
		passes = append(passes, float64(t(i+1)-t(i))/1e6)
		if j := i + 2; j+1 < c.count && t(j) > t(i) && t(j+1) > t(j) {
			periods = append(periods, float64(t(j)-t(i))/1e6)
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return med(passes), med(periods)
}

// compileWithStates compiles g on be with states of its own (zeros), released by release.
func compileWithStates(b *testing.B, be *Backend, g *graph.Graph, ws backend.WeightMap) (backend.Program, func()) {
	states := backend.StateMap{}
	release := func() {
		for _, st := range states {
			st.Release()
		}
	}
	for _, spec := range g.States() {
		st, err := be.NewState(spec)
		if err != nil {
			release()
			b.Fatal(err)
		}
		states[spec.Name] = st
	}
	prog, err := be.Compile(g, backend.WithStates(ws, states))
	if err != nil {
		release()
		b.Fatal(err)
	}
	return prog, func() { prog.Release(); release() }
}

// -nibble.generate is how many tokens BenchmarkDecode's Generate rows produce (0: no rows).
var benchGenerate = flag.Int("nibble.generate", 48, "tokens BenchmarkDecode's Generate rows produce from a one-token prompt (0: none)")

// generateResult is one of BenchmarkDecode's Generate rows, NIBBLE_GENERATE in the log.
type generateResult struct {
	Model   string  `json:"model"`
	Depth   int     `json:"depth"` // llama.ChainDepth: 0 is the step-by-step loop
	Tokens  int     `json:"tokens"`
	MSToken float64 `json:"ms_token"`
	TokPerS float64 `json:"tok_per_s"`
	IDs     string  `json:"ids"`
}

// generateRows time greedy llama.Model.Generate as a caller sees it, from a one-token prompt,
// chained (ChainDepth steps in flight) and step by step: the time per token from the first
// token yielded to the last (the prompt's forward apart), after a first call that compiled
// the programs of every cache bucket it reaches. Both must yield the same ids.
func generateRows(b *testing.B, s decodeShape, m *llama.Model) {
	n := *benchGenerate
	if n < 2 {
		return
	}
	var ids [2][]int32
	for i, depth := range []int{max(*benchChainDepth, 1), 0} {
		old := llama.ChainDepth
		llama.ChainDepth = depth
		var first, end time.Time
		for range 2 { // the first call compiles
			ids[i] = ids[i][:0]
			err := m.Generate(context.Background(), []int32{1}, llama.Sampling{MaxTokens: n}, nil, func(id int32) error {
				if ids[i] = append(ids[i], id); len(ids[i]) == 1 {
					first = time.Now()
				}
				end = time.Now()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		llama.ChainDepth = old
		r := generateResult{Model: s.name, Depth: depth, Tokens: n, IDs: "equal"}
		r.MSToken = end.Sub(first).Seconds() * 1e3 / float64(n-1)
		r.TokPerS = 1e3 / r.MSToken
		if i == 1 && !slices.Equal(ids[0], ids[1]) {
			r.IDs = fmt.Sprintf("chained %v, step by step %v", ids[0], ids[1])
			b.Errorf("%s Generate: %s", s.name, r.IDs)
		}
		line, _ := json.Marshal(r)
		fmt.Printf("NIBBLE_GENERATE %s\n", line)
		b.Logf("%s Generate, %d greedy tokens from position 1, %d steps in flight: %.2f ms a token, %.1f tok/s", s.name, n, depth, r.MSToken, r.TokPerS)
	}
}
