//go:build js && wasm

package gpu

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/model/llama"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

var (
	// -nibble.decode picks the decoder BenchmarkDecode runs: 7b (Llama-2-7B's shape) or tiny
	// (a 2-layer toy for trying the harness on SwiftShader); auto: 7b on hardware.
	benchDecode = flag.String("nibble.decode", "auto", "decoder shape of BenchmarkDecode: 7b, tiny or auto")
	// -nibble.decodekeep lists the cache lengths a decode step is timed at: the token at
	// position keep−1, attending over keep cached rows (powers of two from 16: llama's buckets).
	benchDecodeKeep  = flag.String("nibble.decodekeep", "128,2048", "cache lengths (powers of two ≥ 16) of the timed decode steps")
	benchGEMVNorm    = flag.Bool("nibble.gemvnorm", true, "run RMS norms inside the GEMVs after them (false: as dispatches of their own)")
	benchGEMVNormF32 = flag.Bool("nibble.gemvnormf32", false, "with -nibble.gemvnorm, run them inside the GEMVs with f32 activations too (gemvNormF32)")
	benchNormTail    = flag.Bool("nibble.normtail", false, "with f32 activations, the RMS norm after a residual Linear: x·gain and its sums written by that GEMV, finished by the GEMVs that read it (fuseNormTail)")
	benchGEMVGroups  = flag.Bool("nibble.gemvgroups", true, "run the Linears of one x (q, k, v; gate, up) as one GEMV (false: one dispatch each)")
	benchGEMVSiLU    = flag.Bool("nibble.gemvsilu", true, "form SiLU(gate)·up as the down GEMV loads its x (false: a dispatch of its own)")
	benchSwiGLU      = flag.Bool("nibble.swiglu", true, "run gate, up and SiLU(gate)·up as one SwiGLU GEMV (false: gate and up grouped, SiLU·mul as -nibble.gemvsilu says)")
	benchKVWrite     = flag.Bool("nibble.kvwrite", true, "write k (rotated) and v into their caches in the q, k, v GEMV's store (false: the cache write a dispatch of its own)")
	benchSplitWG     = flag.Int("nibble.splitwg", 1024, "threads a workgroup of p·v's split product (at most the device's)")
	benchSplitWGT    = flag.Int("nibble.splitwgt", 256, "threads a workgroup of q·kᵀ's split product (at most the device's)")
	benchQKGroup     = flag.String("nibble.qkgroup", "auto", "run q·kᵀ as ops_matmul.wgsl's ABT_GROUP, 32 lanes a key: auto (from -nibble.qkgroupfrom keys on hardware adapters), on (always), off (the split product)")
	benchQKFrom      = flag.Int("nibble.qkgroupfrom", 1, "cached keys from which -nibble.qkgroup=auto runs q·kᵀ as ABT_GROUP")
	benchQKKeys      = flag.Int("nibble.qkgroupkeys", 0, "keys a workgroup of -nibble.qkgroup's product (0: qkChunk's)")
	benchQKWG        = flag.Int("nibble.qkgroupwg", 256, "threads a workgroup of -nibble.qkgroup's product (32 to 512)")
	benchQKPreload   = flag.Bool("nibble.qkpreload", false, "run -nibble.qkgroup's product with each round's keys loaded before any is used (ops_matmul.wgsl abt_preload)")
	benchA8Decode    = flag.Bool("nibble.a8decode", false, "decode with int8 activations in the GEMVs (Options.Int8Activations)")
	benchA8Shape     = flag.String("nibble.a8shape", "", "with -nibble.a8decode: gemv_a8.wgsl's launch shape WGxROWS (Tuning.GEMVInt8Workgroup, GEMVInt8Rows; empty: DefaultTuning's)")
	benchA8Persist   = flag.Int("nibble.a8persist", -1, "with -nibble.a8decode: at most this many workgroups a gemv_a8.wgsl dispatch, each looping over row groups with x in workgroup memory (Tuning.GEMVInt8Persist; 0: none; -1: DefaultTuning's)")
	benchA8NormPre   = flag.Bool("nibble.a8normpre", a8NormPrepass, "with -nibble.a8decode: the GEMVs after an RMS norm read x·gain quantized by a pre-pass dispatch (a8NormPrepass) rather than normalizing and quantizing x in every workgroup")
	benchA8NormTail  = flag.Bool("nibble.a8normtail", fuseA8NormTail, "with -nibble.a8decode and -nibble.a8normpre: the residual GEMV before an RMS norm writes its blocks, in place of the pre-pass dispatch (fuseA8NormTail)")
	benchA8XTail     = flag.Bool("nibble.a8xtail", fuseA8XTail, "with -nibble.a8decode: the SwiGLU GEMV writes its output also as the down GEMV's activation blocks, which that GEMV reads rather than quantizing its x in every workgroup (fuseA8XTail)")
	benchA8Wide      = flag.String("nibble.a8wide", "", "with -nibble.a8decode: its shape WGxROWS for int4 and int2 weights of ≥ 8192 rows (Tuning.GEMVInt8Wide), or off (empty: DefaultTuning's)")
	benchA8Prefetch  = flag.Int("nibble.a8prefetch", -1, "with -nibble.a8decode: gemv_a8.wgsl launches of at most this many rows a workgroup that read x quantized ahead load a thread's next span while they sum this one (Tuning.GEMVInt8Prefetch; 0: none; -1: DefaultTuning's)")
	benchA8Narrow    = flag.String("nibble.a8narrow", "", "with -nibble.a8decode: its shape WGxROWS for the int4 and int2 weights -nibble.a8wide's does not take (Tuning.GEMVInt8Narrow; empty: DefaultTuning's)")
	benchPVSplit     = flag.String("nibble.pvsplit", "auto", "run p·v with K split over workgroups (ops_matmul.wgsl AB_CHUNKS, AB_MERGE): auto (from -nibble.pvsplitfrom keys on hardware adapters), on (always), off (the split product)")
	benchPVFrom      = flag.Int("nibble.pvsplitfrom", pvSplitFrom, "cached keys from which -nibble.pvsplit=auto splits p·v over workgroups")
	benchPVChunk     = flag.Int("nibble.pvchunk", 0, "keys a workgroup of -nibble.pvsplit's first dispatch (0: pvChunkFor's)")
	benchPVWG        = flag.Int("nibble.pvsplitwg", 256, "threads a workgroup of -nibble.pvsplit's dispatches (32 to 512)")
	benchPVShort     = flag.String("nibble.pvshort", "auto", "run p·v unsplit over keys as ops_matmul.wgsl's AB_SHORT (its softmax in one pass, a slice of outputs a workgroup): auto (up to -nibble.pvshortmax keys on hardware adapters), on (always), off (the split product)")
	benchPVShortMax  = flag.Int("nibble.pvshortmax", pvShortMax, "cached keys up to which -nibble.pvshort=auto runs p·v as AB_SHORT (0: never; the default is the package's)")
	benchPVSlice     = flag.Int("nibble.pvshortslice", 16, "outputs a workgroup of -nibble.pvshort's product (a power of two, 4 to 128)")
	benchPVShortWG   = flag.Int("nibble.pvshortwg", 0, "threads a workgroup of -nibble.pvshort's product (32 to 512; 0: the fewest that take every key in one round)")
	benchPVAhead     = flag.Bool("nibble.pvshortahead", false, "run -nibble.pvshort's product with a thread's next round of keys loaded before its round's are added, where it takes more than one (ops_matmul.wgsl ab_short_ahead)")
	benchAttn        = flag.String("nibble.attn", "auto", "run one token's attention as one dispatch (ops_attn.wgsl: q·kᵀ, its softmax and p·v): auto (up to -nibble.attnmax keys on hardware adapters), on (at every length its workgroup memory holds), off (q·kᵀ, then p·v with its softmax)")
	benchAttnMax     = flag.Int("nibble.attnmax", attnMax, "cached keys up to which -nibble.attn=auto runs attention as one dispatch (0: never; the default is the package's)")
	benchAttnWG      = flag.Int("nibble.attnwg", 512, "threads a workgroup of -nibble.attn's dispatch (64 to 1024, at most the device's)")
	benchAttnSplit   = flag.Int("nibble.attnsplit", attnSplit, "run -nibble.attn's dispatch as ops_attn.wgsl's split variant, a workgroup per chunk of at least this many keys (a power of two; 0: a workgroup a row)")
	benchAttnSplitWG = flag.Int("nibble.attnsplitwg", attnSplitWG, "threads a workgroup of -nibble.attnsplit's dispatch (64 to 1024)")
	benchAttnChunks  = flag.Int("nibble.attnchunks", attnChunks, "most chunks a row of -nibble.attnsplit's dispatch before its chunks grow")
	benchAttnWhole   = flag.Int("nibble.attnwhole", attnWhole, "with -nibble.attnsplit: the most keys for which a row still takes one workgroup of -nibble.attnwg threads")
	benchAttnWarm    = flag.Bool("nibble.attnwarm", attnWarm, "an attention of one workgroup a row also reads the o projection's weights into the L2 in workgroups of its own (attnWarm)")
)

// attnFlags sets the attention's variables from BenchmarkDecode's -nibble.attn flags; it returns
// what restores them.
func attnFlags() (restore func()) {
	ints, force := saved(&attnMax, &attnWG, &attnSplit, &attnSplitWG, &attnChunks, &attnWhole), saved(&forceAttn, &attnWarm)
	attnMax, attnWG, forceAttn, attnWarm = *benchAttnMax, *benchAttnWG, *benchAttn == "on", *benchAttnWarm
	attnSplit, attnSplitWG, attnChunks, attnWhole = *benchAttnSplit, *benchAttnSplitWG, *benchAttnChunks, *benchAttnWhole
	if *benchAttn == "off" {
		attnMax = 0
	}
	return func() { ints(); force() }
}

// decodeShape is a decoder with the formats of its weights.
type decodeShape struct {
	name           string
	c              llama.Config
	attn, ffn      quant.Format // the layers' attention and FFN projections
	embd, head     quant.Format // token table (one row read per token) and output head
	cache          graph.StateFormat
	context, steps int
}

var (
	llama7B = decodeShape{
		name: "llama-7b",
		c: llama.Config{Layers: 32, Hidden: 4096, FFN: 11008, Heads: 32, KVHeads: 32, HeadDim: 128, Vocab: 32000,
			Context: 4096, Eps: 1e-5, RopeBase: 10000, RopeScale: 1},
		attn: q8, ffn: q4, embd: q4, head: q8, cache: graph.StateF16, context: 4096, steps: 20,
	}
	llamaTiny = decodeShape{
		name: "llama-tiny",
		c: llama.Config{Layers: 2, Hidden: 256, FFN: 512, Heads: 4, KVHeads: 2, HeadDim: 64, Vocab: 512,
			Context: 512, Eps: 1e-5, RopeBase: 10000, RopeScale: 1},
		attn: q8, ffn: q4, embd: q4, head: q8, cache: graph.StateF16, context: 512, steps: 3,
	}
)

// decodeWeights uploads random weights of every tensor the decoder reads. Every layer gets
// buffers of its own (so a token reads all of them from memory), uploaded from one host copy
// per tensor kind: a 7B model's 5 GB never sit in wasm memory at once.
func decodeWeights(b testing.TB, be *Backend, s decodeShape) (backend.WeightMap, map[string]int64) {
	rng := rand.New(rand.NewPCG(11, 13))
	c := s.c
	D, KVD := c.Hidden, c.KVHeads*c.HeadDim
	kinds := map[string]*quant.Tensor{
		"attn_q": syntheticTensor(rng, D, D, s.attn), "attn_k": syntheticTensor(rng, KVD, D, s.attn),
		"attn_v": syntheticTensor(rng, KVD, D, s.attn), "attn_output": syntheticTensor(rng, D, D, s.attn),
		"ffn_gate": syntheticTensor(rng, c.FFN, D, s.ffn), "ffn_up": syntheticTensor(rng, c.FFN, D, s.ffn),
		"ffn_down":  syntheticTensor(rng, D, c.FFN, s.ffn),
		"attn_norm": normWeight(rng, D), "ffn_norm": normWeight(rng, D),
	}
	ws := backend.WeightMap{}
	bytes := map[string]int64{} // per tensor name: bytes a token reads
	up := func(name string, t *quant.Tensor) {
		tt := *t
		tt.Name = name
		w, err := be.Upload(&tt)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Release() })
		ws[name] = w
		bytes[name] = w.Bytes()
	}
	for i := 0; i < c.Layers; i++ {
		for kind, t := range kinds {
			up(llama.LayerTensor(i, kind), t)
		}
	}
	up(llama.OutputNorm, normWeight(rng, D))
	up(llama.Output, syntheticTensor(rng, c.Vocab, D, s.head))
	up(llama.TokenEmbd, syntheticTensor(rng, c.Vocab, D, s.embd))
	bytes[llama.TokenEmbd] /= int64(c.Vocab) // one row per token
	return ws, bytes
}

// normWeight is an f32 RMSNorm gain around 1.
func normWeight(rng *rand.Rand, n int) *quant.Tensor {
	t := syntheticTensor(rng, 1, n, f32)
	for i := 0; i < n; i++ {
		t.Data[4*i+3] = 0x3f // 1 + small: exponent of 1, the random mantissa kept
		t.Data[4*i+2] |= 0x80
	}
	return t
}

// decodeResult is one BenchmarkDecode line, NIBBLE_DECODE in the log.
type decodeResult struct {
	Model         string            `json:"model"`
	Pos           int               `json:"pos"`
	Keep          int               `json:"keep"`
	Steps         int               `json:"steps"`
	Dispatches    int               `json:"dispatches"`
	MSToken       float64           `json:"ms_token"`
	TokPerS       float64           `json:"tok_per_s"`
	BytesToken    int64             `json:"bytes_token"`
	WeightBytes   int64             `json:"weight_bytes"`
	KVBytes       int64             `json:"kv_bytes"`
	CeilingGBps   float64           `json:"ceiling_gbps"`
	LimitTokPerS  float64           `json:"limit_tok_per_s"`
	PctLimit      float64           `json:"pct_limit"`
	MSGPU         float64           `json:"ms_gpu_forward"`
	MSGPUMatMul   float64           `json:"ms_gpu_matmuls"`
	MSGPUOther    float64           `json:"ms_gpu_other"`
	MSEncode      float64           `json:"ms_encode"`
	MSNoReadback  float64           `json:"ms_no_readback"`
	MSRun         float64           `json:"ms_run"`
	Kinds         map[string]string `json:"other_kinds"`
	MatMulKinds   map[string]string `json:"matmul_kinds"`
	MatMulGBps    float64           `json:"matmul_gbps"`
	Adapter       string            `json:"adapter"`
	Software      bool              `json:"software"`
	LogitsChecked string            `json:"logits"`
}

// BenchmarkDecode times decode steps of a Llama-shaped decoder through the graph runtime:
// llama.Model.Forward of one token (inputs written, the whole graph recorded into one pass,
// submitted, the logits read back), with random weights (int8 attention and head, int4 FFN and
// token table, g32, f32 scales) and an f16 KV cache, at the cache positions of
// -nibble.decodekeep. Against it: the bandwidth limit, bytes a token must read (every weight, one
// row of the token table, the cached keys and values it attends over) ÷ the read ceiling of
// this run. Beside it, from the same compiled graph: its GPU time from timestamp queries (the
// whole forward, its matmuls alone, the other dispatches alone) and the host's recording time.
func BenchmarkDecode(b *testing.B) {
	defer saved(&gemvNormF32, &fuseNormTail)()
	gemvNormF32, fuseNormTail = *benchGEMVNormF32, *benchNormTail
	defer saved(&fuseGEMVNorm, &fuseGEMVGroups, &fuseGEMVSiLU, &fuseSwiGLU, &fuseKVWrite, &forceQKGroup, &forcePVSplit)()
	defer saved(&splitWG, &splitWGT, &qkGroupFrom, &qkGroupKeys, &qkGroupWG, &pvSplitFrom, &pvChunk, &pvSplitWG)()
	fuseGEMVNorm, fuseGEMVGroups, fuseGEMVSiLU, splitWG, splitWGT = *benchGEMVNorm, *benchGEMVGroups, *benchGEMVSiLU, *benchSplitWG, *benchSplitWGT
	fuseSwiGLU, fuseKVWrite = *benchSwiGLU, *benchKVWrite
	qkGroupFrom, qkGroupKeys, qkGroupWG = *benchQKFrom, *benchQKKeys, *benchQKWG
	forceQKGroup = *benchQKGroup == "on"
	if *benchQKGroup == "off" {
		qkGroupFrom = math.MaxInt
	}
	pvSplitFrom, pvChunk, pvSplitWG, forcePVSplit = *benchPVFrom, *benchPVChunk, *benchPVWG, *benchPVSplit == "on"
	if *benchPVSplit == "off" {
		pvSplitFrom = math.MaxInt
	}
	defer shortFlags()() // pv_short_js_test.go
	defer attnFlags()()
	be := newBackend(b, Options{Timing: true, Int8Activations: *benchA8Decode})
	defer saved(&a8NormPrepass, &fuseA8NormTail, &fuseA8XTail)()
	a8NormPrepass, fuseA8NormTail, fuseA8XTail = *benchA8NormPre, *benchA8NormTail, *benchA8XTail
	if *benchA8Persist >= 0 {
		be.tune.GEMVInt8Persist = A8Persist{Groups: *benchA8Persist, MaxK: a8PersistMaxK}
	}
	if err := a8DecodeShapes(&be.tune, *benchA8Shape, *benchA8Wide, *benchA8Narrow); err != nil {
		b.Fatal(err)
	}
	if *benchA8Prefetch >= 0 {
		be.tune.GEMVInt8Prefetch = *benchA8Prefetch
	}
	s := llamaTiny
	if *benchDecode == "7b" || *benchDecode == "auto" && !be.Caps().Software {
		s = llama7B
	}
	ceil := ceiling(b, be)
	start := time.Now()
	ws, bytes := decodeWeights(b, be, s)
	var weightBytes int64
	for _, n := range bytes {
		weightBytes += n
	}
	b.Logf("%s: %d tensors, %.2f GB a token reads of weights, uploaded in %v", s.name, len(ws), float64(weightBytes)/1e9, time.Since(start).Round(time.Millisecond))
	c := s.c
	m, err := llama.New(&c, be, ws, llama.Options{Context: s.context, Cache: s.cache})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Release()
	ctx := context.Background()
	for _, ks := range strings.Split(*benchDecodeKeep, ",") {
		keep, err := strconv.Atoi(ks)
		if err != nil || keep < 16 || keep&(keep-1) != 0 || keep > s.context {
			b.Fatalf("-nibble.decodekeep %q: want powers of two from 16 to %d", ks, s.context)
		}
		pos := keep - 1
		r := decodeResult{Model: s.name, Pos: pos, Keep: keep, Steps: s.steps, WeightBytes: weightBytes, CeilingGBps: ceil,
			Adapter: be.AdapterInfo().Description, Software: be.Caps().Software}
		r.KVBytes = int64(c.Layers) * 2 * int64(keep) * int64(c.KVHeads*c.HeadDim) * stateElemBytes(s.cache)
		r.BytesToken = r.WeightBytes + r.KVBytes
		// Steps until 300 ms have passed after the first (which compiles the graph): a GPU that
		// idled runs at low clocks for a while after work resumes. Then the timed steps.
		var times []time.Duration
		var warm time.Time
		for i := 0; len(times) < s.steps; i++ {
			m.Pos = pos
			t0 := time.Now()
			out, err := m.Forward(ctx, []int32{int32((pos + 7*i) % c.Vocab)}, false)
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				warm = time.Now()
			} else if time.Since(warm) > 300*time.Millisecond {
				times = append(times, time.Since(t0))
			}
			r.LogitsChecked = finiteLogits(out[0])
		}
		slices.Sort(times)
		med := times[len(times)/2]
		r.MSToken = med.Seconds() * 1e3
		r.TokPerS = 1 / med.Seconds()
		if ceil > 0 {
			r.LimitTokPerS = ceil * 1e9 / float64(r.BytesToken)
			r.PctLimit = 100 * r.TokPerS / r.LimitTokPerS
		}
		decodeBreakdown(b, be, s, ws, keep, &r)
		line, _ := json.Marshal(r)
		fmt.Printf("NIBBLE_DECODE %s\n", line)
		b.Logf("%s pos %d (keep %d): %.2f ms a token, %.1f tok/s; limit %.1f tok/s (%.2f GB ÷ %.0f GB/s): %.1f%%; GPU %.2f ms over %d dispatches (the matmuls alone %.2f ms, %.0f GB/s; the rest alone %.2f ms), recording %.2f ms; the program's Run %.2f ms, without readback (recorded, not ahead) %.2f ms",
			s.name, pos, keep, r.MSToken, r.TokPerS, r.LimitTokPerS, float64(r.BytesToken)/1e9, ceil, r.PctLimit,
			r.MSGPU, r.Dispatches, r.MSGPUMatMul, r.MatMulGBps, r.MSGPUOther, r.MSEncode, r.MSRun, r.MSNoReadback)
		decodeChained(b, be, s, ws, r) // the chained greedy row (bench_generate_js_test.go)
		if r.LogitsChecked != "finite" {
			b.Errorf("%s pos %d: logits %s", s.name, pos, r.LogitsChecked)
		}
	}
	generateRows(b, s, m) // greedy Generate, chained and step by step (bench_generate_js_test.go)
	b.ReportMetric(0, "ns/op")
}

// decodeBreakdown compiles the decode graph of keep again, on states of its own, and times it in
// parts: the GPU time of the whole forward, of its matmuls alone and of the other dispatches
// alone (timestamp queries, median of 5), the host's recording of the pass, and a forward that
// waits for the queue instead of reading back.
func decodeBreakdown(b *testing.B, be *Backend, s decodeShape, ws backend.WeightMap, keep int, r *decodeResult) {
	c := s.c
	g, err := c.Build(1, keep, s.cache, s.context, false)
	if err != nil {
		b.Fatal(err)
	}
	states := backend.StateMap{}
	for _, n := range g.Nodes {
		if n.Op == graph.OpState {
			st, err := be.NewState(graph.StateSpec{Name: n.Attr.Name, Shape: n.Shape, Storage: n.Attr.Storage})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Release()
			states[n.Attr.Name] = st
		}
	}
	prog, err := be.Compile(g, backend.WithStates(ws, states))
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Release()
	p := prog.(*program)
	var mms, others []step
	var mmBytes int64
	for _, st := range p.steps {
		if st.mm != nil {
			mms = append(mms, st)
			r.Dispatches += len(st.mm.groups)
			continue
		}
		others = append(others, st)
		r.Dispatches++
	}
	for _, n := range g.Nodes {
		if n.Op == graph.OpLinear {
			w := ws[g.Nodes[n.Inputs[1]].Attr.Name]
			mmBytes += w.Bytes()
		}
	}
	in := decodeInputs(c, keep)
	for t0 := time.Now(); time.Since(t0) < 300*time.Millisecond; { // warm-up, as above
		if _, err := p.run(context.Background(), in, false); err != nil {
			b.Fatal(err)
		}
	}
	timed := func(label string, steps []step) float64 { return gpuMS(b, be, label, steps) }
	r.MSGPU = timed("decode forward", p.steps)
	r.MSGPUMatMul = timed("decode matmuls", mms)
	r.MSGPUOther = timed("decode other ops", others)
	r.MatMulGBps = float64(mmBytes) / r.MSGPUMatMul / 1e6
	// The other dispatches by kernel, each kind alone: where the GPU time of the rest goes.
	kinds := map[string][]step{}
	var names []string
	for _, st := range others {
		k := st.pl.Label()
		if i := strings.Index(k, "-wg"); i > 0 {
			k = k[:i]
		}
		k = k[strings.LastIndex(k, " ")+1:]
		if kinds[k] == nil {
			names = append(names, k)
		}
		kinds[k] = append(kinds[k], st)
	}
	r.Kinds = map[string]string{}
	for _, k := range names {
		ms := timed("decode "+k, kinds[k])
		r.Kinds[k] = fmt.Sprintf("%d dispatches, %.3f ms, %.1f µs each", len(kinds[k]), ms, 1e3*ms/float64(len(kinds[k])))
	}
	r.MatMulKinds = matmulKinds(g, ws, mms, timed)
	r.MSEncode, r.MSNoReadback, r.MSRun = hostMS(b, p, in)
}

// matmulKinds times the matmul steps by shape (weight rows n×k, weights a dispatch, kernel),
// each kind alone, with its weight bytes' GB/s: which GEMVs of a step fall short of the ceiling.
func matmulKinds(g *graph.Graph, ws backend.WeightMap, mms []step, timed func(string, []step) float64) map[string]string {
	n, k, bytes := map[int][]int{}, map[int]int{}, map[int]int64{}
	li := 0
	for _, nd := range g.Nodes {
		if nd.Op != graph.OpLinear {
			continue
		}
		w := ws[g.Nodes[nd.Inputs[1]].Attr.Name]
		rows, cols := w.Shape()
		n[li], k[li], bytes[li] = []int{rows}, cols, w.Bytes()
		li++
	}
	kinds, kb := map[string][]step{}, map[string]int64{}
	var names []string
	li = 0
	for _, st := range mms {
		// a grouped GEMV's step covers len(st.mm.key.Weights) Linears, in graph order.
		nw := max(1, st.mm.key.Weights)
		if st.mm.key.SwiGLU {
			nw = 2 // gate and up (swiglu.go)
		}
		var rows []string
		var by int64
		for j := range nw {
			if li+j < len(k) {
				rows = append(rows, strconv.Itoa(n[li+j][0]))
				by += bytes[li+j]
			}
		}
		name := fmt.Sprintf("%s×%d %s", strings.Join(rows, "+"), k[li], st.mm.key.Kernel)
		if st.mm.key.SwiGLU {
			name += " swiglu"
		}
		if st.mm.key.KVWrite {
			name += " kv" // writes k and v into their caches (kvwrite.go)
		}
		li += nw
		if kinds[name] == nil {
			names = append(names, name)
		}
		kinds[name] = append(kinds[name], st)
		kb[name] += by
	}
	out := map[string]string{}
	for _, name := range names {
		ms := timed("decode matmul "+name, kinds[name])
		out[name] = fmt.Sprintf("%d dispatches, %.3f ms, %.1f µs each, %.0f GB/s", len(kinds[name]), ms, 1e3*ms/float64(len(kinds[name])), float64(kb[name])/ms/1e6)
	}
	return out
}

// gpuMS is the GPU time of steps recorded alone in one pass, from timestamp queries (wall
// clock without them): the median of 5 after one.
func gpuMS(b *testing.B, be *Backend, label string, steps []step) float64 {
	list := webgpu.NewDispatches(dispatchList(steps))
	var ds []time.Duration
	for range 6 {
		be.mu.Lock()
		gpu, wall, err := be.timePass(label, func(pass *webgpu.ComputePass) error {
			return pass.Record(list)
		})
		be.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
		if gpu == 0 {
			gpu = wall
		}
		ds = append(ds, gpu)
	}
	slices.Sort(ds[1:])
	return ds[1+len(ds[1:])/2].Seconds() * 1e3
}

// hostMS are medians of 5 of the host's recording of p's forward, of a forward that waits for
// the queue (recorded then, not ahead), and of Run (recorded ahead, read back).
func hostMS(b *testing.B, p *program, in []graph.Tensor) (encode, noReadback, run float64) {
	var enc, bare, full []time.Duration
	for range 5 {
		d, err := p.encodeAlone()
		if err != nil {
			b.Fatal(err)
		}
		enc = append(enc, d)
		t0 := time.Now()
		if _, err := p.run(context.Background(), in, false); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(t0))
		t0 = time.Now()
		if _, err := p.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
		full = append(full, time.Since(t0))
	}
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return ds[len(ds)/2].Seconds() * 1e3
	}
	return med(enc), med(bare), med(full)
}

// decodeInputs are the inputs of a one-token step at position keep−1 (Build's order).
func decodeInputs(c llama.Config, keep int) []graph.Tensor {
	pos := keep - 1
	cos, sin := c.Rope([]int{pos})
	mask := make([]float32, keep)
	for j := range mask {
		mask[j] = 1
	}
	half := c.HeadDim / 2
	return []graph.Tensor{
		graph.I32Tensor([]int32{1}, 1),
		graph.I32Tensor([]int32{int32(pos)}, 1),
		graph.F32Tensor(cos, 1, 1, half, 1),
		graph.F32Tensor(sin, 1, 1, half, 1),
		graph.F32Tensor(mask, 1, keep),
		graph.I32Tensor([]int32{0}, 1),
	}
}

func stateElemBytes(f graph.StateFormat) int64 {
	switch f {
	case graph.StateF16:
		return 2
	case graph.StateInt8:
		return 1
	}
	return 4
}

// finiteLogits says whether every logit is a finite number (random weights give no other check).
func finiteLogits(l []float32) string {
	for i, v := range l {
		if v != v || v > 3e38 || v < -3e38 {
			return fmt.Sprintf("logit %d is %v", i, v)
		}
	}
	return "finite"
}

// a8DecodeShapes sets -nibble.a8shape's, -nibble.a8wide's and -nibble.a8narrow's launch shapes of
// gemv_a8.wgsl in tu.
func a8DecodeShapes(tu *Tuning, shape, wide, narrow string) error {
	if narrow != "" {
		tu.GEMVInt8Narrow = A8Wide{MaxBits: 4}
		if _, err := fmt.Sscanf(narrow, "%dx%d", &tu.GEMVInt8Narrow.WG, &tu.GEMVInt8Narrow.Rows); err != nil {
			return fmt.Errorf("-nibble.a8narrow %q: want WGxROWS", narrow)
		}
	}
	if shape != "" {
		if _, err := fmt.Sscanf(shape, "%dx%d", &tu.GEMVInt8Workgroup, &tu.GEMVInt8Rows); err != nil {
			return fmt.Errorf("-nibble.a8shape %q: want WGxROWS", shape)
		}
	}
	switch wide {
	case "":
	case "off":
		tu.GEMVInt8Wide = A8Wide{}
	default:
		if _, err := fmt.Sscanf(wide, "%dx%d", &tu.GEMVInt8Wide.WG, &tu.GEMVInt8Wide.Rows); err != nil {
			return fmt.Errorf("-nibble.a8wide %q: want WGxROWS or off", wide)
		}
	}
	return nil
}
