//go:build js && wasm

package gpu

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/webgpu"
)

// Issue 15: every GEMV of a decode step costs ~5 µs beyond its bytes on the H200, and tiny
// dependent dispatches ~3 µs each. BenchmarkDispatchFloor measures the floor of a dispatch
// (launch, and the barrier Dawn puts between dispatches that share a written storage buffer) and
// what the host pays to record one; BenchmarkPrefetch whether a GEMV's weights touched into the
// L2 while a latency-bound dispatch runs hide that fixed cost.
var (
	floorN = flag.Int("nibble.floorn", 256, "BenchmarkDispatchFloor: dispatches in the list a pass records -nibble.reps times")
	// S, the attention stand-in: SpinGroups workgroups of 64 threads, each thread a chain of
	// dependent integer steps (a multiply and a shift each), which nothing but latency bounds.
	prefetchSpin = flag.Int("nibble.spin", 1000, "BenchmarkPrefetch: dependent steps of each thread of S (about 3 µs on an H200 at 1000)")
	// NVIDIA's L2 fills 32-byte sectors, not whole 128-byte lines: a load per 128 bytes would
	// bring a quarter (or half, with its 64-byte promotion) of the weights.
	prefetchStride = flag.Int("nibble.pfstride", 32, "BenchmarkPrefetch: bytes between the 16-byte loads that touch G's weights (32: an L2 sector; 128: a line)")
	prefetchGroups = flag.Int("nibble.pfgroups", 1024, "BenchmarkPrefetch: workgroups of 64 threads S adds to touch all of G's weights (variant b)")
	prefetchTail   = flag.Int("nibble.pftail", 4, "BenchmarkPrefetch: MiB of the next G's weights that G's tail touches (variant c)")
	prefetchTailWG = flag.Int("nibble.pftailgroups", 132, "BenchmarkPrefetch: workgroups G's tail adds to its grid (variant c)")
)

// spinGroups is S's workgroup count: a decode step's attention (q·kᵀ, p·v) runs a few dozen
// to a hundred workgroups.
const spinGroups = 64

// floorResult is one timed variant of the two benchmarks, printed as a NIBBLE_FLOOR line.
type floorResult struct {
	Bench      string  `json:"bench"`
	Case       string  `json:"case,omitempty"`
	Variant    string  `json:"variant"`
	Workgroups int     `json:"workgroups,omitempty"`
	Dispatches int     `json:"dispatches"` // in one timed pass
	USGPU      float64 `json:"us_gpu"`     // per unit (dispatch, or S+G pair) from timestamps
	USHost     float64 `json:"us_host"`    // per unit: encoding and submit of the pass
	USWall     float64 `json:"us_wall"`    // per unit: submit until the queue drained
	Check      string  `json:"check,omitempty"`
	Adapter    string  `json:"adapter"`
	Software   bool    `json:"software"`
}

func emitFloor(r floorResult) {
	line, _ := json.Marshal(r)
	fmt.Printf("NIBBLE_FLOOR %s\n", line)
}

// passTimes are one timed pass: GPU time from timestamp queries (0 without them), the host's
// encoding and submit, and submit until the queue drained.
type passTimes struct{ gpu, host, wall time.Duration }

// timeList records d times times into one compute pass, submits it and waits. The caller holds
// be.mu.
func timeList(be *Backend, label string, d *webgpu.Dispatches, times int) (passTimes, error) {
	if err := be.dev.PushErrorScope("validation"); err != nil {
		return passTimes{}, err
	}
	var t passTimes
	start := time.Now()
	cb, err := be.passCommands("timing "+label, label, func(p *webgpu.ComputePass) error {
		for range times {
			if err := p.Record(d); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if err == nil {
		err = be.dev.Queue().Submit(cb)
	}
	t.host = time.Since(start)
	if err == nil {
		err = be.dev.Queue().OnSubmittedWorkDone()
	}
	t.wall = time.Since(start) - t.host
	if err == nil && be.timing {
		err = be.readTiming()
		t.gpu = be.gpuTime
	}
	if perr := be.dev.PopErrorScope("timing " + label); err == nil {
		err = perr
	}
	if err == nil {
		err = be.dev.Err()
	}
	return t, err
}

// timeUnits times a list of units dispatches long (a dispatch, or an S+G pair, over every
// weight copy): passes until warm has passed, then 3 passes of enough repeats of the list for
// ≥ 20 ms of GPU time (-nibble.reps at least); the median of each time per unit, and the
// dispatches of one timed pass.
func timeUnits(be *Backend, label string, list []webgpu.Dispatch, units int, warm time.Duration) (passTimes, int, error) {
	d := webgpu.NewDispatches(list)
	be.mu.Lock()
	defer be.mu.Unlock()
	times := *benchReps
	start := time.Now()
	for {
		t, err := timeList(be, label, d, times)
		if err != nil {
			return passTimes{}, 0, err
		}
		if p := cmp0(t.gpu, t.wall) / time.Duration(times); p > 0 {
			times = int(min(20000, max(int64(*benchReps), int64(20*time.Millisecond/p)+1)))
		}
		if time.Since(start) >= warm {
			break
		}
	}
	var ts [3]passTimes
	for i := range ts {
		t, err := timeList(be, label, d, times)
		if err != nil {
			return passTimes{}, 0, err
		}
		ts[i] = t
	}
	n := time.Duration(times * units)
	med := func(f func(passTimes) time.Duration) time.Duration {
		v := []time.Duration{f(ts[0]), f(ts[1]), f(ts[2])}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[1] / n
	}
	return passTimes{
		gpu:  med(func(t passTimes) time.Duration { return t.gpu }),
		host: med(func(t passTimes) time.Duration { return t.host }),
		wall: med(func(t passTimes) time.Duration { return t.wall }),
	}, times * len(list), nil
}

// cmp0 is a, or b where a is 0 (no timestamp queries).
func cmp0[T time.Duration | float64](a, b T) T {
	if a == 0 {
		return b
	}
	return a
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// floorWGSL is the trivial kernel: 64 threads a workgroup, each adding 1 to its word of buf
// (read and written: a dispatch after another on the same buffer is a hazard), or, read-only,
// reading it and storing nothing (no usage that asks for a barrier).
const floorWGSL = `@group(0) @binding(0) var<storage, read_write> buf: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x % arrayLength(&buf);
  buf[i] = buf[i] + 1u;
}
`

const floorReadWGSL = `@group(0) @binding(0) var<storage, read> buf: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  _ = buf[gid.x % arrayLength(&buf)];
}
`

// floorVariant is one list of BenchmarkDispatchFloor: every dispatch on one buffer, or each on
// its own; read and written, or read only.
type floorVariant struct {
	name       string
	workgroups int
	own        bool // a buffer per dispatch, none read by another
	readOnly   bool
}

// BenchmarkDispatchFloor times a list of -nibble.floorn dispatches of a trivial kernel recorded
// -nibble.reps times (at least) into one pass: per dispatch, the GPU time (timestamp queries)
// and the host's recording and submit through webgpu.Dispatches, which a decode step pays 227
// times. Variants: dependent (each dispatch reads and writes the same buffer: Dawn's barrier
// every dispatch) at 1, 132 and 1024 workgroups; independent (each its own buffer, none read by
// another: whether Dawn leaves the barrier out); read-only (no written storage at all).
func BenchmarkDispatchFloor(b *testing.B) {
	be := newBackend(b, Options{Timing: true})
	info := be.AdapterInfo()
	n := *floorN
	rw, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: "dispatch floor", Code: floorWGSL}, "main", nil)
	if err != nil {
		b.Fatal(err)
	}
	ro, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: "dispatch floor read-only", Code: floorReadWGSL}, "main", nil)
	if err != nil {
		b.Fatal(err)
	}
	const words = 1024 * 64 // a word per thread of the largest grid
	own := make([]*webgpu.BindGroup, n)
	var shared *webgpu.BindGroup
	for i := range own {
		buf, err := be.dev.CreateBuffer(fmt.Sprintf("floor buffer %d", i), 4*words, webgpu.BufferStorage)
		if err != nil {
			b.Fatal(err)
		}
		defer buf.Destroy()
		if own[i], err = be.dev.CreateBindGroup(fmt.Sprintf("floor %d", i), rw.BindGroupLayout(0), webgpu.BufferBinding{Binding: 0, Buffer: buf}); err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if shared, err = be.dev.CreateBindGroup("floor read-only", ro.BindGroupLayout(0), webgpu.BufferBinding{Binding: 0, Buffer: buf}); err != nil {
				b.Fatal(err)
			}
		}
	}
	warm := 300 * time.Millisecond
	for _, v := range []floorVariant{
		{"dependent", 1, false, false}, {"dependent", 132, false, false}, {"dependent", 1024, false, false},
		{"independent", 1, true, false}, {"independent", 132, true, false},
		{"read-only", 1, false, true}, {"read-only", 132, false, true},
	} {
		if v.workgroups > 132 && be.Caps().Software {
			b.Logf("%s %d workgroups: skipped on a software adapter (seconds a pass)", v.name, v.workgroups)
			continue
		}
		list := make([]webgpu.Dispatch, n)
		for i := range list {
			switch {
			case v.readOnly:
				list[i] = webgpu.Dispatch{Pipeline: ro, Group: shared, X: v.workgroups, Y: 1}
			case v.own:
				list[i] = webgpu.Dispatch{Pipeline: rw, Group: own[i], X: v.workgroups, Y: 1}
			default:
				list[i] = webgpu.Dispatch{Pipeline: rw, Group: own[0], X: v.workgroups, Y: 1}
			}
		}
		label := fmt.Sprintf("%s %d workgroups", v.name, v.workgroups)
		t, count, err := timeUnits(be, label, list, n, warm)
		if err != nil {
			b.Fatalf("%s: %v", label, err)
		}
		warm = 100 * time.Millisecond
		b.Logf("%-34s %8.2f µs a dispatch on the GPU, %6.2f µs the host's recording and submit", label, us(t.gpu), us(t.host))
		emitFloor(floorResult{Bench: "floor", Variant: v.name, Workgroups: v.workgroups, Dispatches: count,
			USGPU: us(t.gpu), USHost: us(t.host), USWall: us(t.wall), Adapter: info.Description, Software: be.Caps().Software})
		if v.name == "dependent" && v.workgroups == 1 {
			b.ReportMetric(us(t.gpu), "µs/dispatch")
			b.ReportMetric(us(t.host), "µs-host/dispatch")
		}
	}
}

// touchWGSL declares limits' read-only bindings from binding base on and pf_touch, which reads
// a vec4<u32> every stride vec4s of the first limits[i] of binding i, thread t of threads, and
// returns their XOR for a store that never happens (pf_keep) to keep the loads.
func touchWGSL(base int, limits []int, stride int) string {
	var sb strings.Builder
	for i := range limits {
		fmt.Fprintf(&sb, "@group(0) @binding(%d) var<storage, read> pf_%d: array<vec4<u32>>;\n", base+i, i)
	}
	// A step of 0 would never end: the device would be lost.
	fmt.Fprintf(&sb, "fn pf_touch(t: u32, threads: u32) -> vec4<u32> {\n  var acc = vec4<u32>(0u);\n  let step = max(threads, 1u) * %du;\n", stride)
	for i, l := range limits {
		fmt.Fprintf(&sb, "  for (var i = t * %du; i < min(%du, arrayLength(&pf_%d)); i += step) {\n    acc ^= pf_%d[i];\n  }\n", stride, l, i, i)
	}
	sb.WriteString(`  return acc;
}
fn pf_keep(acc: vec4<u32>) {
  if (acc.x == 0x9e3779b9u && acc.y == 0x7f4a7c15u && acc.z == 0xf39cc060u) {
    pf_sink[0] = acc.w;
  }
}
`)
	return sb.String()
}

// spinWGSL is S: spinGroups workgroups of 64 threads, each a chain of steps dependent integer
// steps; with limits, the workgroups past them touch those bindings' first limits[i] vec4s.
func spinWGSL(limits []int, stride, steps int) string {
	return fmt.Sprintf(`@group(0) @binding(0) var<storage, read_write> pf_sink: array<u32>;
%s
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  if (wid.x < %du) {
    var h = wid.x * 64u + tid;
    for (var i = 0u; i < %du; i++) {
      h = (h ^ (h >> 15u)) * 0x2c1b3c6du + i;
    }
    pf_sink[wid.x * 64u + tid] = h;
    return;
  }
  pf_keep(pf_touch((wid.x - %du) * 64u + tid, (nwg.x - %du) * 64u));
}
`, touchWGSL(1, limits, stride), spinGroups, steps, spinGroups, spinGroups)
}

var builtinParam = regexp.MustCompile(`@builtin\((\w+)\)\s*(\w+)\s*:`)

// tailGEMV rewrites a GEMV's source so its grid takes tail workgroups past its groups: those
// touch the bindings of touch (touchWGSL from binding 17, pf_sink at 16) and return; the others
// run the kernel's main, renamed gemv_main, unchanged. workgroup_id is uniform, so the kernel's
// barriers stay in uniform control flow.
func tailGEMV(code string, groups, wg int, touch string) (string, error) {
	mi := strings.Index(code, "fn main(")
	if mi < 0 {
		return "", errors.New("no fn main(")
	}
	ci := strings.LastIndex(code[:mi], "@compute")
	end, depth := -1, 0
	for j := mi + len("fn main"); j < len(code) && end < 0; j++ {
		switch code[j] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				end = j
			}
		}
	}
	if ci < 0 || end < 0 {
		return "", errors.New("no @compute before fn main, or its parameters unclosed")
	}
	params := code[mi+len("fn main(") : end]
	var names []string
	by := map[string]string{}
	for _, m := range builtinParam.FindAllStringSubmatch(params, -1) {
		names = append(names, m[2])
		by[m[1]] = m[2]
	}
	if len(names) != strings.Count(params, ":") || by["workgroup_id"] == "" {
		return "", fmt.Errorf("main's parameters are not all builtins with workgroup_id: %q", params)
	}
	outer := strings.TrimRight(strings.TrimSpace(params), ",")
	tid, nwg := by["local_invocation_index"], by["num_workgroups"]
	if tid == "" {
		tid, outer = "pf_tid", outer+",\n  @builtin(local_invocation_index) pf_tid: u32"
	}
	if nwg == "" {
		nwg, outer = "pf_nwg", outer+",\n  @builtin(num_workgroups) pf_nwg: vec3<u32>"
	}
	wid := by["workgroup_id"]
	args := slices.Clone(names)
	if i := slices.Index(names, by["num_workgroups"]); i >= 0 {
		// A persistent launch strides over its row groups by the grid: the kernel's own grid.
		args[i] = fmt.Sprintf("vec3<u32>(%du, %s.y, %s.z)", groups, nwg, nwg)
	}
	wrapper := fmt.Sprintf(`
@group(0) @binding(16) var<storage, read_write> pf_sink: array<u32>;
%s
%sfn main(%s) {
  if (%s.x >= %du) {
    pf_keep(pf_touch((%s.x - %du) * %du + %s, (%s.x - %du) * %du));
    return;
  }
  gemv_main(%s);
}
`, touch, code[ci:mi], outer, wid, groups, wid, groups, wg, tid, nwg, groups, wg, strings.Join(args, ", "))
	return code[:ci] + "fn gemv_main(" + builtinParam.ReplaceAllString(params, "$2:") + code[end:] + wrapper, nil
}

// prefetchCases are G's shapes: the o projection (int8 g32, 18.9 MB) and the q4 11008×4096
// GEMV on hardware; small ones on a software adapter, where the benchmark only has to run.
func prefetchCases(software bool) []benchCase {
	if software {
		return []benchCase{{1, 384, 512, q8}, {1, 200, 512, q4}}
	}
	return []benchCase{{1, 4096, 4096, q8}, {1, 11008, 4096, q4}}
}

// pfBuffers are the storage buffers of w's one chunk, data first.
func pfBuffers(w *weight) []*webgpu.Buffer {
	c := w.chunks[0]
	out := []*webgpu.Buffer{c.data}
	for _, b := range []*webgpu.Buffer{c.scales, c.zeros} {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// pfLimits are the vec4s of each of bufs to touch: frac of each (its first rows).
func pfLimits(bufs []*webgpu.Buffer, frac float64) []int {
	out := make([]int, len(bufs))
	for i, b := range bufs {
		out[i] = int(math.Ceil(float64(b.Size()) / 16 * min(frac, 1)))
	}
	return out
}

// pfCase is one G of BenchmarkPrefetch: its weight copies (rotated beyond the L2), the
// dispatches of G on each (the int8-activation pre-pass too, if the tuning has one), and the
// reference its outputs are checked against.
type pfCase struct {
	be   *Backend
	ws   []*weight
	key  shaders.Key
	g    [][]webgpu.Dispatch
	want *reference
	n    int
	sink *webgpu.Buffer
}

func newPFCase(b *testing.B, be *Backend, rng *rand.Rand, c benchCase) *pfCase {
	t := syntheticTensor(rng, c.n, c.k, c.f)
	copies := 2 // G's tail touches the next copy
	if tb := int64(t.Bytes()); *benchRotate > 0 && !be.Caps().Software {
		copies = int(min(16, max(2, (int64(*benchRotate)<<20+tb-1)/tb)))
	}
	p := &pfCase{be: be, n: c.n}
	for range copies {
		w, err := be.Upload(t)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Release() })
		if p.ws = append(p.ws, w.(*weight)); len(w.(*weight).chunks) != 1 {
			b.Skipf("%s: %d chunks (binding size limit); the prefetch touches one", t.Name, len(w.(*weight).chunks))
		}
	}
	x := make([]float32, c.k)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	// One MatMul builds G's pipeline, sizes the backend's x and y and writes x.
	if err := be.MatMul(make([]float32, c.n), x, p.ws[0], 1); err != nil {
		b.Fatal(err)
	}
	p.want = newReference(rng, t, x, 1)
	be.mu.Lock()
	defer be.mu.Unlock()
	p.key = be.matmulKey(p.ws[0], 1)
	var err error
	if p.key.Kernel == shaders.GEMVA8 {
		if p.want, err = p.want.int8Activations(t, x, 1); err != nil {
			b.Fatal(err)
		}
	}
	for _, w := range p.ws {
		if w.chunks[0].pm != 1 {
			if err := be.writeParams(w, 1); err != nil {
				b.Fatal(err)
			}
		}
		bm, err := be.boundFor(w, p.key, 1)
		if err != nil {
			b.Fatal(err)
		}
		pre, err := be.prepassFor(w, p.key, 1)
		if err != nil {
			b.Fatal(err)
		}
		var ds []webgpu.Dispatch
		if pre != nil {
			ds = append(ds, webgpu.Dispatch{Pipeline: pre.pl, Group: pre.group, X: pre.gx, Y: pre.gy})
		}
		p.g = append(p.g, append(ds, bm.dispatches()...))
	}
	if p.sink, err = be.dev.CreateBuffer("prefetch sink", 4*64*spinGroups, webgpu.BufferStorage); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.sink.Destroy)
	return p
}

// spins are S's dispatch for each copy: the spin alone, or (touch) with -nibble.pfgroups more
// workgroups that touch all of that copy's weights.
func (p *pfCase) spins(touch bool) ([]webgpu.Dispatch, error) {
	var limits []int
	groups := spinGroups
	if touch {
		limits, groups = pfLimits(pfBuffers(p.ws[0]), 1), spinGroups+*prefetchGroups
	}
	steps := *prefetchSpin
	if p.be.Caps().Software {
		// SwiftShader runs S's 4096 threads on the CPU: 1000 steps take 90 ms a dispatch.
		steps, groups = min(steps, 10), min(groups, spinGroups+16)
	}
	code := spinWGSL(limits, max(1, *prefetchStride/16), steps)
	pl, err := p.be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: fmt.Sprintf("prefetch S touch=%v", touch), Code: code}, "main", nil)
	if err != nil {
		return nil, err
	}
	out := make([]webgpu.Dispatch, len(p.ws))
	for i, w := range p.ws {
		es := []webgpu.BufferBinding{{Binding: 0, Buffer: p.sink}}
		for j, buf := range pfBuffers(w) {
			if touch {
				es = append(es, webgpu.BufferBinding{Binding: 1 + j, Buffer: buf})
			}
		}
		g, err := p.be.dev.CreateBindGroup(fmt.Sprintf("prefetch S %d", i), pl.BindGroupLayout(0), es...)
		if err != nil {
			return nil, err
		}
		out[i] = webgpu.Dispatch{Pipeline: pl, Group: g, X: groups, Y: 1}
	}
	return out, nil
}

// tails are G rewritten by tailGEMV for each copy: its dispatches with -nibble.pftailgroups
// more workgroups that touch the first -nibble.pftail MiB' share of the next copy's weights,
// and (control) the same kernel on its own grid alone. An error says why variant c cannot run.
func (p *pfCase) tails() (tail, control [][]webgpu.Dispatch, err error) {
	be, w0 := p.be, p.ws[0]
	bufs := pfBuffers(w0)
	if len(p.g[len(p.g)-1]) != len(p.g[0]) || p.key.KSlices > 1 {
		return nil, nil, errors.New("G is more than one dispatch")
	}
	if need := 3 + len(bufs) + 1 + len(bufs); need > be.dev.Limits().MaxStorageBuffersPerShaderStage {
		return nil, nil, fmt.Errorf("G with its tail binds %d storage buffers, the device takes %d", need, be.dev.Limits().MaxStorageBuffersPerShaderStage)
	}
	src, err := p.key.Source()
	if err != nil {
		return nil, nil, err
	}
	gx, gy := grid(p.key, w0.chunks[0].r1-w0.chunks[0].r0, 1)
	extra := *prefetchTailWG
	if be.Caps().Software {
		extra = min(extra, 4)
	}
	limits := pfLimits(bufs, float64(*prefetchTail<<20)/float64(w0.Bytes()))
	code, err := tailGEMV(src.Code, gx, p.key.WG*max(p.key.KSplit, 1), touchWGSL(17, limits, max(1, *prefetchStride/16)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", p.key.Name(), err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	pl, err := be.dev.CreateComputePipeline(webgpu.ShaderSource{Variant: p.key.Name() + " with a prefetching tail", Code: code}, "main", nil)
	if err != nil {
		return nil, nil, err
	}
	x := be.x
	if p.key.XQ {
		x = be.xq
	}
	for i, w := range p.ws {
		c := w.chunks[0]
		es := []webgpu.BufferBinding{{Binding: 0, Buffer: c.params}, {Binding: 1, Buffer: c.data}, {Binding: 2, Buffer: x}, {Binding: 3, Buffer: be.y}, {Binding: 16, Buffer: p.sink}}
		if c.scales != nil {
			es = append(es, webgpu.BufferBinding{Binding: 4, Buffer: c.scales})
		}
		if c.zeros != nil {
			es = append(es, webgpu.BufferBinding{Binding: 5, Buffer: c.zeros})
		}
		for j, buf := range pfBuffers(p.ws[(i+1)%len(p.ws)]) {
			es = append(es, webgpu.BufferBinding{Binding: 17 + j, Buffer: buf})
		}
		g, err := be.dev.CreateBindGroup(fmt.Sprintf("prefetch tail G %d", i), pl.BindGroupLayout(0), es...)
		if err != nil {
			return nil, nil, err
		}
		pre := p.g[i][:len(p.g[i])-1]
		tail = append(tail, append(slices.Clone(pre), webgpu.Dispatch{Pipeline: pl, Group: g, X: gx + extra, Y: gy}))
		control = append(control, append(slices.Clone(pre), webgpu.Dispatch{Pipeline: pl, Group: g, X: gx, Y: gy}))
	}
	return tail, control, nil
}

// check records list into a pass with G's output poisoned (NaN) and compares it with the
// reference at the sampled outputs: "ok" or what is wrong.
func (p *pfCase) check(list []webgpu.Dispatch) string {
	be := p.be
	d := webgpu.NewDispatches(list)
	dst := make([]float32, p.n)
	yBytes := int64(4 * p.n)
	err := func() error {
		be.mu.Lock()
		defer be.mu.Unlock()
		if err := be.poisonBuffer(be.y, yBytes); err != nil {
			return err
		}
		cb, err := be.passCommands("prefetch check", "prefetch check", func(pass *webgpu.ComputePass) error { return pass.Record(d) },
			func(enc *webgpu.CommandEncoder) error { return enc.CopyBufferToBuffer(be.y, 0, be.rd, 0, yBytes) })
		if err != nil {
			return err
		}
		if err := be.dev.Queue().Submit(cb); err != nil {
			return err
		}
		if err := mapCopy(be.rd, yBytes, f32bytes(dst)); err != nil {
			return err
		}
		return be.dev.Err()
	}()
	if err == nil {
		err = p.want.check(dst)
	}
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// interleave is, for each copy i, a[i]'s dispatches then b[i]'s.
func interleave(a []webgpu.Dispatch, b [][]webgpu.Dispatch) []webgpu.Dispatch {
	var out []webgpu.Dispatch
	for i := range b {
		if a != nil {
			out = append(out, a[i%len(a)])
		}
		out = append(out, b[i]...)
	}
	return out
}

// BenchmarkPrefetch asks whether the ~5 µs a GEMV pays beyond its bytes hides behind a
// latency-bound dispatch before it. S stands for attention: 64 workgroups of 64 threads, each
// thread -nibble.spin dependent integer steps (no memory). G is the backend's own GEMV pipeline
// (int8 activations where the device has packed dot products), on weights rotated through
// copies beyond the L2. Per S+G pair (µs): (a) S then G; (b) S with -nibble.pfgroups more
// workgroups that read every 32-byte sector of G's weights (-nibble.pfstride) so they sit in the
// L2 when G starts; (c) G's grid with -nibble.pftailgroups more workgroups that touch the next
// G's first -nibble.pftail MiB (the kernel's main renamed and called from a wrapper, timed also
// without the tail as a control). -nibble.a8persist launches G as BenchmarkDecode's does. Every variant's G output is checked against the pure-Go
// reference, its output poisoned first. One NIBBLE_FLOOR line per variant.
func BenchmarkPrefetch(b *testing.B) {
	be := newBackend(b, Options{Timing: true, Int8Activations: true})
	if *benchA8Persist >= 0 { // G as BenchmarkDecode's -nibble.a8persist launches it
		be.tune.GEMVInt8Persist = A8Persist{Groups: *benchA8Persist, MaxK: a8PersistMaxK}
	}
	rng := rand.New(rand.NewPCG(15, 15))
	for _, c := range prefetchCases(be.Caps().Software) {
		name := fmt.Sprintf("gemv/%dx%d/%v", c.n, c.k, c.f)
		b.Run(name, func(b *testing.B) {
			if done["prefetch "+name] {
				b.SkipNow()
			}
			done["prefetch "+name] = true
			runPrefetch(b, newPFCase(b, be, rng, c), name)
		})
	}
}

func runPrefetch(b *testing.B, p *pfCase, name string) {
	spin, err := p.spins(false)
	if err != nil {
		b.Fatal(err)
	}
	touch, err := p.spins(true)
	if err != nil {
		b.Fatal(err)
	}
	type row struct {
		name  string
		list  []webgpu.Dispatch
		units int
		check bool
	}
	n := len(p.ws)
	rows := []row{
		{"S", spin[:1], 1, false},
		{"S+touch", touch, n, false},
		{"G", interleave(nil, p.g), n, true},
		{"a: S,G", interleave(spin, p.g), n, true},
		{"b: S+touch,G", interleave(touch, p.g), n, true},
	}
	tail, control, err := p.tails()
	if err != nil {
		b.Logf("%s: variant c skipped: %v", name, err)
	} else {
		rows = append(rows, row{"c: G rewritten, no tail", interleave(nil, control), n, true},
			row{"c: G+tail", interleave(nil, tail), n, true}, row{"c: S,G+tail", interleave(spin, tail), n, true})
	}
	info := p.be.AdapterInfo()
	got := map[string]float64{}
	warm := 300 * time.Millisecond
	for _, r := range rows {
		t, count, err := timeUnits(p.be, name+" "+r.name, r.list, r.units, warm)
		if err != nil {
			b.Fatalf("%s %s: %v", name, r.name, err)
		}
		warm = 100 * time.Millisecond
		res := floorResult{Bench: "prefetch", Case: name + " " + p.key.Name(), Variant: r.name, Dispatches: count,
			USGPU: us(t.gpu), USHost: us(t.host), USWall: us(t.wall), Adapter: info.Description, Software: p.be.Caps().Software}
		if r.check {
			if res.Check = p.check(r.list); res.Check != "ok" {
				b.Errorf("%s %s: %s", name, r.name, res.Check)
			}
		}
		got[r.name] = cmp0(res.USGPU, res.USWall)
		b.Logf("%-26s %9.2f µs (GPU), %9.2f µs (wall), check %s", r.name, res.USGPU, res.USWall, res.Check)
		emitFloor(res)
	}
	b.Logf("%s (%d copies of %.1f MB, %s): b saves %.2f µs a pair against a (S %.2f + G %.2f); c saves %.2f (S,G+tail), G+tail against G %+.2f, the rewrite alone %+.2f",
		name, n, float64(p.ws[0].Bytes())/1e6, p.key.Name(), got["a: S,G"]-got["b: S+touch,G"], got["S"], got["G"],
		got["a: S,G"]-got["c: S,G+tail"], got["c: G+tail"]-got["G"], got["c: G rewritten, no tail"]-got["G"])
	b.ReportMetric(got["a: S,G"]-got["b: S+touch,G"], "µs-saved-b")
}
