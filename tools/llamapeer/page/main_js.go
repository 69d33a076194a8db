//go:build js && wasm

// Command page is nibble's half of tools/llamapeer: it exposes nibbleRun(backend, tokens) to the
// page, which loads /model.gguf onto that backend through wasm/model/llama and times a prefill
// of the prompt and greedy decode steps, as wllama is timed beside it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"syscall/js"
	"time"

	"github.com/nibble-ml/nibble/tools/llamapeer/peer"
	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
	"github.com/nibble-ml/nibble/wasm/backend/gpu"
	"github.com/nibble-ml/nibble/wasm/backend/nn"
	"github.com/nibble-ml/nibble/wasm/model/llama"
)

func run(be string, tokens int, ref []int32) (r peer.Result) {
	r.Runtime = "nibble-" + be
	fail := func(err error) peer.Result { r.Error = err.Error(); return r }
	var b interface {
		llama.Backend
		backend.Backend
	}
	var err error
	switch be {
	case "cpu":
		b = cpu.New()
	case "webgpu":
		var g *gpu.Backend
		g, err = gpu.New(gpu.Options{Timeout: 5 * time.Minute})
		b = g
		if err == nil {
			defer g.Close()
		}
	case "webnn", "webnn-int8", "webnn-f32":
		var n *nn.Backend
		// Whole graphs only; webnn-f32: the layers' weights as float32 constants.
		n, err = nn.New(nn.Options{Lazy: true, F32Weights: be == "webnn-f32"})
		b = n
		if err == nil {
			defer n.Close()
		}
	default:
		err = fmt.Errorf("backend %q", be)
	}
	if err != nil {
		return fail(err)
	}
	t0 := time.Now()
	step := func(what string) {
		fmt.Printf("nibble-%s: %s at %v\n", be, what, time.Since(t0).Round(time.Millisecond))
	}
	resp, err := http.Get("/model.gguf")
	if err != nil {
		return fail(err)
	}
	f, err := llama.ReadGGUF(resp.Body, b)
	resp.Body.Close()
	if err != nil {
		return fail(err)
	}
	defer f.Release()
	r.LoadMS = ms(time.Since(t0))
	step("loaded")
	r.Layers = f.Config.Layers
	opt := llama.Options{Context: 256}
	if be == "webnn-int8" || be == "webnn-f32" {
		// The ranges the tool calibrated natively on the cpu, served beside the model.
		resp, err := http.Get("/model.calib.json")
		if err != nil {
			return fail(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&opt.Calibration)
		resp.Body.Close()
		if err != nil {
			return fail(fmt.Errorf("model.calib.json: %w", err))
		}
		if be == "webnn-f32" { // the head alone in int8
			opt.Calibration = llama.HeadOnly(opt.Calibration)
		}
	}
	m, err := llama.New(f.Config, b, f.Weights, opt)
	if err != nil {
		return fail(err)
	}
	defer m.Release()
	r.KVPerToken = m.KVBytesPerToken()
	ids := append([]int32{f.Tokenizer.BOS}, f.Tokenizer.Encode(peer.Prompt, false)...)
	ctx := context.Background()
	// One untimed prefill compiles the programs of both shapes' buckets, as wllama's warm-up
	// does its graph allocation; the timed runs start from an empty cache.
	if _, err := m.Forward(ctx, ids, false); err != nil {
		return fail(err)
	}
	step("prefill compiled and ran")
	if _, err := m.Forward(ctx, ids[:1], false); err != nil {
		return fail(err)
	}
	step("decode compiled and ran")
	m.Reset()
	t0 = time.Now()
	lg, err := m.Forward(ctx, ids, false)
	if err != nil {
		return fail(err)
	}
	r.PrefillN, r.PrefillMS = len(ids), ms(time.Since(t0))
	var out []int32
	t0 = time.Now()
	for i := range tokens {
		id := int32(slices.Index(lg[0], slices.Max(lg[0])))
		out = append(out, id)
		if i < len(ref) { // teacher forcing: continue from the reference's token
			if id == ref[i] {
				r.Agree++
			}
			id, r.Forced = ref[i], true
		}
		if lg, err = m.Forward(ctx, []int32{id}, false); err != nil {
			return fail(err)
		}
	}
	r.DecodeN, r.DecodeMS = tokens, ms(time.Since(t0))
	r.Text, r.Tokens = f.Tokenizer.Decode(out), out
	var st runtime.MemStats
	runtime.ReadMemStats(&st)
	r.WasmMiB = float64(st.Sys) / (1 << 20)
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func main() {
	promise := js.Global().Get("Promise")
	js.Global().Set("nibbleRun", js.FuncOf(func(_ js.Value, args []js.Value) any {
		be, n := args[0].String(), args[1].Int()
		var ref []int32
		if len(args) > 2 {
			json.Unmarshal([]byte(args[2].String()), &ref)
		}
		var exec js.Func
		exec = js.FuncOf(func(_ js.Value, pa []js.Value) any {
			exec.Release()
			go func() {
				b, _ := json.Marshal(run(be, n, ref))
				pa[0].Invoke(string(b))
			}()
			return nil
		})
		return promise.New(exec)
	}))
	js.Global().Call("postMessage", "nibble-ready", "*")
	select {}
}
