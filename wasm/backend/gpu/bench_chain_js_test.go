//go:build js && wasm

package gpu

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// Issue 15: a decode step's GEMVs each pay ~4–6 µs beyond their bytes on the H200, ~2 µs of it
// Dawn's barrier between dependent dispatches and the rest the dispatch's ramp (the first loads'
// latency) and drain (the last workgroups' reduce and store). BenchmarkChain asks how much of it
// one dispatch running several dependent GEMVs in a row wins back: the workgroups of GEMV l+1
// come after GEMV l's in the grid, issue their weight loads as soon as they are resident (the
// weights depend on nothing), and then wait for their x element by element: each element of an
// activation is stored once, atomically, encoded as its bits' complement, in a buffer zeroed
// before the dispatch, so a reader that sees a non-zero word has the element (one location: no
// ordering between locations is needed, which WGSL's relaxed atomics do not give). It relies on
// the GPU starting workgroups in grid order (a waiting workgroup's producers then all started
// before it and never wait on it); where that fails, a wait gives up after -nibble.chainspin
// loads and raises a flag the benchmark reports.
var (
	chainK       = flag.Int("nibble.chaink", 4096, "BenchmarkChain: rows and columns of each GEMV (int8 weights)")
	chainLayers  = flag.Int("nibble.chainlayers", 32, "BenchmarkChain: dependent GEMVs a chain runs")
	chainRows    = flag.String("nibble.chainrows", "4,8", "BenchmarkChain: rows a workgroup, each a timed case")
	chainPersist = flag.Int("nibble.chainpersist", 256, "BenchmarkChain: workgroups of the persistent chain (each must be resident at once; 1 on a software adapter)")
	chainSpin    = flag.Int("nibble.chainspin", 1<<20, "BenchmarkChain: loads a wait makes before it gives up and raises the flag")
)

// chainVariant is one way BenchmarkChain runs L dependent GEMVs.
type chainVariant struct {
	name  string
	chain bool // one dispatch (after the zeroing one), not one a GEMV
	late  bool // x read before the weights (chain only): what the weights' early loads win
	// split runs the chain's kernel (atomic x and y) as one dispatch a GEMV after the zeroing:
	// what the atomics cost, apart from the waits.
	split bool
	// persist runs the chain on -nibble.chainpersist workgroups (all resident at once), each
	// taking row groups layer by layer and loading the next group's weights before it waits for
	// this group's x (registers double-buffered). Needs k/16 threads a workgroup.
	persist bool
	// filled runs the chain without the zeroing, act already holding every GEMV's x (the chain
	// before it stored them): nothing waits, so the GEMVs stream as if independent, the
	// kernel's own bound in one dispatch.
	filled bool
}

var chainVariants = []chainVariant{
	{name: "dispatches"}, {name: "dispatches, atomic x", chain: true, split: true},
	{name: "chain", chain: true}, {name: "chain, x already there", chain: true, filled: true},
	{name: "chain x first", chain: true, late: true}, {name: "persistent chain", chain: true, persist: true},
}

// chainWGSL is one GEMV layer of int8 weights (4 a word, a row k/16 vec4s, element e of word j
// column e·k/16 + j), an f32 scale a row,
// rows rows a workgroup of wg threads (a power of two). As dispatches, x and y are plain f32
// buffers bound per layer and the weights' slot by the binding's offset. As a chain, workgroup
// w runs layer w / (n/rows) on weight slot layer % slots, reading act's row layer and storing
// row layer + 1 as complemented bits (NaNs made canonical, so no stored word is 0).
func chainWGSL(k, n, rows, wg, slots, spin int, v chainVariant) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `const K: u32 = %du;
const KV: u32 = K / 16u;
const N: u32 = %du;
const R: u32 = %du;
const WG: u32 = %du;
const G: u32 = N / R;
const SLOTS: u32 = %du;
@group(0) @binding(0) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> sc: array<f32>;
`, k, n, rows, wg, slots)
	if v.chain {
		sb.WriteString(chainHandoffWGSL(spin))
	} else {
		sb.WriteString(`@group(0) @binding(2) var<storage, read> xin: array<f32>;
@group(0) @binding(3) var<storage, read_write> yout: array<f32>;
fn xrow(layer: u32, j: u32) -> array<vec4<f32>, 4> {
  var x: array<vec4<f32>, 4>;
  for (var q = 0u; q < 4u; q++) {
    x[q] = vec4<f32>(xin[4u * q * KV + j], xin[(4u * q + 1u) * KV + j], xin[(4u * q + 2u) * KV + j], xin[(4u * q + 3u) * KV + j]);
  }
  return x;
}
fn yput(layer: u32, i: u32, y: f32) { yout[i] = y; }
`)
	}
	// Element e (0–15) of thread word j is column e·KV + j: the threads of a load read
	// consecutive words of x (the chain's atomics are not cached in L1, so they must coalesce).
	xs := "    let x = xrow(layer, j);\n"
	ws := `    var wv: array<vec4<u32>, R>;
    for (var r = 0u; r < R; r++) {
      wv[r] = w[(slot * N + row0 + r) * KV + j];
    }
`
	first, second := ws, xs
	if v.late {
		first, second = xs, ws
	}
	sb.WriteString(`var<workgroup> part: array<f32, R * WG>;
fn i8s(v: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
// reduce adds the workgroup's partial sums (part[r·WG + t], row r) and stores row0 + r of layer's
// output with slot's scale.
fn reduce(t: u32, layer: u32, row0: u32, slot: u32) {
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var r = 0u; r < R; r++) {
        part[r * WG + t] += part[r * WG + t + s];
      }
    }
    workgroupBarrier();
  }
  if (t < R) {
    yput(layer, row0 + t, part[t * WG] * sc[slot * N + row0 + t]);
  }
}
`)
	if v.persist {
		return sb.String() + persistMain
	}
	sb.WriteString(`@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let layer = wid.x / G;
  let row0 = (wid.x % G) * R;
  let slot = layer % SLOTS;
  var acc: array<f32, R>;
  for (var j = t; j < KV; j += WG) {
` + first + second + `    for (var r = 0u; r < R; r++) {
      acc[r] += dot(i8s(wv[r].x), x[0]) + dot(i8s(wv[r].y), x[1]) + dot(i8s(wv[r].z), x[2]) + dot(i8s(wv[r].w), x[3]);
    }
  }
  for (var r = 0u; r < R; r++) {
    part[r * WG + t] = acc[r];
  }
  reduce(t, layer, row0, slot);
}
`)
	return sb.String()
}

// chainHandoffWGSL is the chain's x and y: act (complemented bits, 0 until stored) read with
// atomicLoad, waiting at most spin more loads an element before it raises flag, and stored with
// atomicStore.
func chainHandoffWGSL(spin int) string {
	var loads, waits, zero []string
	for e := range 16 {
		loads = append(loads, fmt.Sprintf("  var v%d = atomicLoad(&act[a + %du * KV]);\n", e, e))
		waits = append(waits, fmt.Sprintf("    v%d = xwait(a + %du * KV, v%d);\n", e, e, e))
		zero = append(zero, fmt.Sprintf("v%d == 0u", e))
	}
	xrowBody := strings.Join(loads, "") + "  if (" + strings.Join(zero, " || ") + ") {\n" + strings.Join(waits, "") + "  }\n"
	return fmt.Sprintf(`@group(0) @binding(2) var<storage, read_write> act: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> flag: array<atomic<u32>>;
// xwait loads act[i] until it is not 0 (v: its first load), at most %d more times.
fn xwait(i: u32, v: u32) -> u32 {
  var w = v;
  for (var s = 0u; w == 0u && s < %du; s++) {
    w = atomicLoad(&act[i]);
  }
  if (w == 0u) {
    atomicStore(&flag[0], 1u);
  }
  return w;
}
// The 16 elements of thread word j (column e·KV + j), written out so that all 16 loads are
// issued before any is tested (a wait per element before the next load is 16 trips to the L2
// in a row, and a loop over an array of them may put the array in memory).
fn xrow(layer: u32, j: u32) -> array<vec4<f32>, 4> {
  let a = layer * K + j;
`+xrowBody+`  return array<vec4<f32>, 4>(
    bitcast<vec4<f32>>(~vec4<u32>(v0, v1, v2, v3)), bitcast<vec4<f32>>(~vec4<u32>(v4, v5, v6, v7)),
    bitcast<vec4<f32>>(~vec4<u32>(v8, v9, v10, v11)), bitcast<vec4<f32>>(~vec4<u32>(v12, v13, v14, v15)));
}
fn yput(layer: u32, i: u32, y: f32) {
  var b = bitcast<u32>(y);
  if ((b & 0x7fffffffu) > 0x7f800000u) {
    b = 0x7fc00000u;
  }
  atomicStore(&act[(layer + 1u) * K + i], ~b);
}
`, spin, spin)
}

// persistMain is the persistent chain's entry point: P workgroups (an override), workgroup p
// taking items n = 0, 1, … of LAYERS·G/P, item n being layer n/(G/P)'s row group
// p + (n mod G/P)·P. One word a thread a row (KV = WG). Item n+1's weights are loaded before
// item n waits for its x; reduce adds the partial sums as in main.
const persistMain = `override P: u32 = 1u;
override LAYERS: u32 = 1u;
fn wload(n: u32, p: u32, t: u32) -> array<vec4<u32>, R> {
  let per = G / P;
  let layer = n / per;
  let row0 = (p + (n % per) * P) * R;
  var wv: array<vec4<u32>, R>;
  for (var r = 0u; r < R; r++) {
    wv[r] = w[((layer % SLOTS) * N + row0 + r) * KV + t];
  }
  return wv;
}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let per = G / P;
  let items = LAYERS * per;
  var wn = wload(0u, wid.x, t);
  for (var n = 0u; n < items; n++) {
    let layer = n / per;
    let row0 = (wid.x + (n % per) * P) * R;
    let wv = wn;
    if (n + 1u < items) {
      wn = wload(n + 1u, wid.x, t);
    }
    let x = xrow(layer, t);
    for (var r = 0u; r < R; r++) {
      part[r * WG + t] = dot(i8s(wv[r].x), x[0]) + dot(i8s(wv[r].y), x[1]) + dot(i8s(wv[r].z), x[2]) + dot(i8s(wv[r].w), x[3]);
    }
    reduce(t, layer, row0, layer % SLOTS);
    workgroupBarrier();
  }
}
`

// chainZeroWGSL zeroes act past its first row (layer 0's x, written once by the host).
func chainZeroWGSL(k int) string {
	return fmt.Sprintf(`@group(0) @binding(0) var<storage, read_write> act: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = %du + gid.x;
  if (i < arrayLength(&act)) {
    act[i] = 0u;
  }
}
`, k)
}

// chainSetup holds BenchmarkChain's buffers: slots weight slots of k×k int8 (rotated beyond the
// L2 on a GPU), their scales, layer 0's x and the reference output of the last layer.
type chainSetup struct {
	be           *Backend
	k, layers    int
	slots        int
	w, sc        *webgpu.Buffer
	act, flag    *webgpu.Buffer // the chain's activations (complemented bits) and its give-up flag
	xs           []*webgpu.Buffer
	rd           *webgpu.Buffer
	want         []float32
	bytesALayer  float64
	software     bool
	destroyLater []*webgpu.Buffer
}

func newChainSetup(b *testing.B, be *Backend, k, layers int) *chainSetup {
	s := &chainSetup{be: be, k: k, layers: layers, software: be.Caps().Software}
	rowBytes := int64(k) // int8
	slotBytes := rowBytes * int64(k)
	s.slots = 1
	if !s.software {
		// 128 MiB of weights (or as many as one binding holds) rotate beyond the 50 MB L2.
		s.slots = int(min(int64(layers), max(1, min(be.maxBind, 128<<20)/slotBytes)))
	}
	s.bytesALayer = float64(slotBytes + 4*int64(k))
	rng := rand.New(rand.NewPCG(15, uint64(k)))
	wb := make([]byte, int64(s.slots)*slotBytes)
	for i := 0; i < len(wb); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(wb); j++ {
			wb[i+j] = byte(v >> (8 * j))
			if wb[i+j] == 0x80 { // −128 would make the weights' mean non-zero
				wb[i+j] = 0
			}
		}
	}
	scales := make([]float32, s.slots*k)
	for i := range scales {
		scales[i] = float32((0.8 + 0.4*rng.Float64()) / (73.3 * math.Sqrt(float64(k))))
	}
	x0 := make([]float32, k)
	for i := range x0 {
		x0[i] = float32(rng.NormFloat64())
	}
	// The reference: layers dependent GEMVs in float64.
	x := make([]float64, k)
	for i, v := range x0 {
		x[i] = float64(v)
	}
	for l := range layers {
		y := make([]float64, k)
		base := int64(l%s.slots) * slotBytes
		for r := range k {
			row := wb[base+int64(r)*rowBytes : base+int64(r+1)*rowBytes]
			var acc float64
			for c, q := range row { // byte c is element c%16 of word c/16: column (c%16)·k/16 + c/16
				acc += float64(int8(q)) * x[(c%16)*(k/16)+c/16]
			}
			y[r] = acc * float64(scales[(l%s.slots)*k+r])
		}
		x = y
	}
	s.want = make([]float32, k)
	for i, v := range x {
		s.want[i] = float32(v)
	}
	mk := func(label string, size int64, usage webgpu.BufferUsage) *webgpu.Buffer {
		buf, err := be.dev.CreateBuffer(label, size, usage)
		if err != nil {
			b.Fatal(err)
		}
		s.destroyLater = append(s.destroyLater, buf)
		return buf
	}
	storage := webgpu.BufferStorage | webgpu.BufferCopyDst | webgpu.BufferCopySrc
	s.w = mk("chain weights", int64(len(wb)), storage)
	s.sc = mk("chain scales", int64(4*len(scales)), storage)
	s.act = mk("chain activations", int64(4*k*(layers+1)), storage)
	s.flag = mk("chain flag", 16, storage)
	s.rd = mk("chain readback", int64(4*k)+16, webgpu.BufferMapRead|webgpu.BufferCopyDst)
	for l := range layers + 1 {
		s.xs = append(s.xs, mk(fmt.Sprintf("chain x %d", l), int64(4*k), storage))
	}
	q := be.dev.Queue()
	const chunk = 16 << 20
	for off := 0; off < len(wb); off += chunk {
		end := min(len(wb), off+chunk)
		if err := q.WriteBuffer(s.w, int64(off), be.stageBytes(wb[off:end]), 0, int64(end-off)); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.WriteBuffer(s.sc, 0, be.stageBytes(f32bytes(scales)), 0, int64(4*len(scales))); err != nil {
		b.Fatal(err)
	}
	if err := q.WriteBuffer(s.xs[0], 0, be.stageBytes(f32bytes(x0)), 0, int64(4*k)); err != nil {
		b.Fatal(err)
	}
	enc := make([]float32, k) // the chain's layer-0 x: each element's bits complemented
	for i, v := range x0 {
		enc[i] = math.Float32frombits(^math.Float32bits(v))
	}
	if err := q.WriteBuffer(s.act, 0, be.stageBytes(f32bytes(enc)), 0, int64(4*k)); err != nil {
		b.Fatal(err)
	}
	return s
}

func (s *chainSetup) close() {
	for _, buf := range s.destroyLater {
		buf.Destroy()
	}
}

// list builds variant v's dispatches at rows rows a workgroup of wg threads: layers GEMV
// dispatches, or the zeroing and the chain.
func (s *chainSetup) list(v chainVariant, rows, wg int) ([]webgpu.Dispatch, error) {
	be, k := s.be, s.k
	groups := k / rows
	if !v.chain {
		p, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: fmt.Sprintf("chain gemv r%d", rows),
			Code: chainWGSL(k, k, rows, wg, 1, 0, v)}, "main", nil)
		if err != nil {
			return nil, err
		}
		slotBytes := int64(k) * int64(k)
		var out []webgpu.Dispatch
		for l := range s.layers {
			slot := int64(l % s.slots)
			g, err := be.dev.CreateBindGroup(fmt.Sprintf("chain layer %d", l), p.BindGroupLayout(0),
				webgpu.BufferBinding{Binding: 0, Buffer: s.w, Offset: slot * slotBytes, Size: slotBytes},
				webgpu.BufferBinding{Binding: 1, Buffer: s.sc, Offset: slot * int64(4*k), Size: int64(4 * k)},
				webgpu.BufferBinding{Binding: 2, Buffer: s.xs[l]},
				webgpu.BufferBinding{Binding: 3, Buffer: s.xs[l+1]})
			if err != nil {
				return nil, err
			}
			out = append(out, webgpu.Dispatch{Pipeline: p, Group: g, X: groups, Y: 1})
		}
		return out, nil
	}
	zero, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: "chain zero", Code: chainZeroWGSL(k)}, "main", nil)
	if err != nil {
		return nil, err
	}
	zg, err := be.dev.CreateBindGroup("chain zero", zero.BindGroupLayout(0), webgpu.BufferBinding{Binding: 0, Buffer: s.act})
	if err != nil {
		return nil, err
	}
	var consts map[string]float64
	if v.persist {
		if wg != k/16 {
			return nil, fmt.Errorf("the persistent chain takes k/16 = %d threads a workgroup, not %d", k/16, wg)
		}
		consts = map[string]float64{"P": float64(s.persistGroups(rows)), "LAYERS": float64(s.layers)}
	}
	p, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: fmt.Sprintf("chain r%d %s", rows, v.name),
		Code: chainWGSL(k, k, rows, wg, s.slots, *chainSpin, v)}, "main", consts)
	if err != nil {
		return nil, err
	}
	g, err := be.dev.CreateBindGroup("chain", p.BindGroupLayout(0),
		webgpu.BufferBinding{Binding: 0, Buffer: s.w}, webgpu.BufferBinding{Binding: 1, Buffer: s.sc},
		webgpu.BufferBinding{Binding: 2, Buffer: s.act}, webgpu.BufferBinding{Binding: 3, Buffer: s.flag})
	if err != nil {
		return nil, err
	}
	out := []webgpu.Dispatch{{Pipeline: zero, Group: zg, X: (k*s.layers + 255) / 256, Y: 1}}
	if v.filled {
		out = out[:0]
	}
	if v.persist {
		return append(out, webgpu.Dispatch{Pipeline: p, Group: g, X: s.persistGroups(rows), Y: 1}), nil
	}
	if !v.split {
		return append(out, webgpu.Dispatch{Pipeline: p, Group: g, X: groups * s.layers, Y: 1}), nil
	}
	return s.splitChain(out, rows, wg, v)
}

// persistGroups is the persistent chain's grid at rows rows a workgroup: -nibble.chainpersist
// (1 on a software adapter, whose few threads cannot hold waiting workgroups), lowered until it
// divides the row groups.
func (s *chainSetup) persistGroups(rows int) int {
	groups, p := s.k/rows, *chainPersist
	if s.software {
		p = 1
	}
	p = max(1, min(p, groups))
	for groups%p != 0 {
		p--
	}
	return p
}

// splitChain appends the chain kernel as one dispatch a layer to out: weights, scales and act's
// rows l and l+1 bound at layer l's offsets, so each dispatch is the chain's layer 0.
func (s *chainSetup) splitChain(out []webgpu.Dispatch, rows, wg int, v chainVariant) ([]webgpu.Dispatch, error) {
	be, k := s.be, s.k
	p, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: fmt.Sprintf("chain r%d %s", rows, v.name),
		Code: chainWGSL(k, k, rows, wg, 1, *chainSpin, v)}, "main", nil)
	if err != nil {
		return nil, err
	}
	slotBytes, xBytes := int64(k)*int64(k), int64(4*k)
	for l := range s.layers {
		slot := int64(l % s.slots)
		g, err := be.dev.CreateBindGroup(fmt.Sprintf("chain split %d", l), p.BindGroupLayout(0),
			webgpu.BufferBinding{Binding: 0, Buffer: s.w, Offset: slot * slotBytes, Size: slotBytes},
			webgpu.BufferBinding{Binding: 1, Buffer: s.sc, Offset: slot * xBytes, Size: xBytes},
			webgpu.BufferBinding{Binding: 2, Buffer: s.act, Offset: int64(l) * xBytes, Size: 2 * xBytes},
			webgpu.BufferBinding{Binding: 3, Buffer: s.flag})
		if err != nil {
			return nil, err
		}
		out = append(out, webgpu.Dispatch{Pipeline: p, Group: g, X: k / rows, Y: 1})
	}
	return out, nil
}

// check runs list once with the outputs poisoned and the flag cleared, and compares the last
// layer's output with the reference: "ok", or what is wrong (the flag raised, or the values).
func (s *chainSetup) check(v chainVariant, list []webgpu.Dispatch) string {
	be, k := s.be, s.k
	got := make([]float32, k+4)
	out, off := s.xs[s.layers], int64(0)
	if v.chain {
		out, off = s.act, int64(4*k*s.layers)
	}
	err := func() error {
		be.mu.Lock()
		defer be.mu.Unlock()
		if err := be.poisonBuffer(s.xs[s.layers], int64(4*k)); err != nil {
			return err
		}
		if err := be.dev.Queue().WriteBuffer(s.flag, 0, be.stageBytes(make([]byte, 16)), 0, 16); err != nil {
			return err
		}
		d := webgpu.NewDispatches(list)
		cb, err := be.passCommands("chain check", "chain check", func(p *webgpu.ComputePass) error { return p.Record(d) },
			func(enc *webgpu.CommandEncoder) error {
				if err := enc.CopyBufferToBuffer(out, off, s.rd, 0, int64(4*k)); err != nil {
					return err
				}
				return enc.CopyBufferToBuffer(s.flag, 0, s.rd, int64(4*k), 16)
			})
		if err != nil {
			return err
		}
		if err := be.dev.Queue().Submit(cb); err != nil {
			return err
		}
		if err := mapCopy(s.rd, int64(4*k)+16, f32bytes(got)); err != nil {
			return err
		}
		return be.dev.Err()
	}()
	if err != nil {
		return err.Error()
	}
	if f := math.Float32bits(got[k]); f != 0 {
		return "a wait gave up (flag raised): a producer never ran while its readers waited (workgroups not started in grid order, or, persistent, not all resident at once)"
	}
	y := got[:k]
	if v.chain {
		for i, w := range y {
			y[i] = math.Float32frombits(^math.Float32bits(w))
		}
	}
	var rms float64
	for _, w := range s.want {
		rms += float64(w) * float64(w)
	}
	rms = math.Sqrt(rms / float64(k))
	for i, w := range s.want {
		if d := math.Abs(float64(y[i]) - float64(w)); !(d <= 1e-3*(rms+math.Abs(float64(w)))) {
			return fmt.Sprintf("output %d: %g, want %g (rms %g)", i, y[i], w, rms)
		}
	}
	return "ok"
}

// BenchmarkChain times -nibble.chainlayers dependent k×k int8 GEMVs (-nibble.chaink) in the
// ways chainVariants lists: one dispatch a GEMV (a barrier between each two); the chain's kernel
// as one dispatch a GEMV (its atomic loads and stores without waits); one dispatch for all of
// them after a zeroing dispatch (chain: each workgroup's weights loaded before it waits for x);
// the same with every x already there (nothing waits); the chain with x read first; and the
// persistent chain. Per GEMV: GPU µs (timestamp queries) and GB/s of its weights. Every
// variant's last output is checked against a float64 reference first (the chain with x already
// there rewrites what the chain before it stored: the check holds only if it writes wrong
// values). On a software adapter the shapes are small (512, 4 layers): only to keep the
// benchmark working.
func BenchmarkChain(b *testing.B) {
	be := newBackend(b, Options{Timing: true})
	info := be.AdapterInfo()
	k, layers, wg := *chainK, *chainLayers, 256
	if be.Caps().Software {
		k, layers, wg = 512, 4, 32
	}
	s := newChainSetup(b, be, k, layers)
	defer s.close()
	b.Logf("%d GEMVs of %d×%d int8 (%.1f MB a GEMV, %d weight slots) on %s", layers, k, k, s.bytesALayer/1e6, s.slots, info.Description)
	warm := 300 * time.Millisecond
	for _, rs := range strings.Split(*chainRows, ",") {
		var rows int
		if _, err := fmt.Sscan(rs, &rows); err != nil || rows < 1 || k%rows != 0 {
			b.Fatalf("-nibble.chainrows %q: rows must divide %d", rs, k)
		}
		for _, v := range chainVariants {
			label := fmt.Sprintf("%s %d rows", v.name, rows)
			list, err := s.list(v, rows, wg)
			if err != nil {
				b.Fatalf("%s: %v", label, err)
			}
			check := s.check(v, list)
			if check != "ok" {
				b.Errorf("%s: %s", label, check)
				emitFloor(floorResult{Bench: "chain", Case: fmt.Sprintf("%d×%d ×%d", k, k, layers), Variant: label,
					Check: check, Adapter: info.Description, Software: be.Caps().Software})
				continue
			}
			t, count, err := timeUnits(be, label, list, layers, warm)
			if err != nil {
				b.Fatalf("%s: %v", label, err)
			}
			warm = 100 * time.Millisecond
			gbs := s.bytesALayer / float64(cmp0(t.gpu, t.wall).Nanoseconds())
			b.Logf("%-26s %7.2f µs a GEMV on the GPU (%6.0f GB/s), %6.2f µs the host's", label, us(t.gpu), gbs, us(t.host))
			emitFloor(floorResult{Bench: "chain", Case: fmt.Sprintf("%d×%d ×%d", k, k, layers), Variant: label,
				Workgroups: k / rows, Dispatches: count, USGPU: us(t.gpu), USHost: us(t.host), USWall: us(t.wall),
				Check: check, Adapter: info.Description, Software: be.Caps().Software})
		}
	}
}
