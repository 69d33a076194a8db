//go:build !(js && wasm)

// Package faultserve is the test side of wasm/stream's network tests: it writes synthetic
// fp16 safetensors models of any size in a streaming way, and wraps tools/worker's model server
// in a handler that breaks connections on request, so native and browser tests exercise resume,
// stall and checksum handling over real HTTP.
//
// Faults are asked for in the query string of a model file URL (the query is removed before the
// request reaches the model server, so ETags and ranges are the real ones):
//
//	?reset=N    abort the connection once N bytes of the file have been sent (absolute offset)
//	?stall=N    stop sending at byte N and hold the connection open until the client gives up
//	?corrupt=N  flip the bits of byte N
//	&times=K    apply the fault to the first K requests of this URL (default 1), then serve cleanly
package faultserve

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nibble-ml/nibble/wasm/format"
)

// Handler injects faults into the responses of Next.
type Handler struct {
	Next http.Handler

	mu   sync.Mutex
	seen map[string]int // requests per URL with a fault query
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, at := "", int64(-1)
	for _, k := range []string{"reset", "stall", "corrupt"} {
		if v := q.Get(k); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				http.Error(w, "bad "+k, http.StatusBadRequest)
				return
			}
			kind, at = k, n
		}
	}
	times := 1
	if v := q.Get("times"); v != "" {
		times, _ = strconv.Atoi(v)
	}
	key := r.URL.String()
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = ""
	r2.RequestURI = r2.URL.RequestURI()
	if kind != "" && r.Method == http.MethodGet {
		h.mu.Lock()
		if h.seen == nil {
			h.seen = map[string]int{}
		}
		h.seen[key]++
		n := h.seen[key]
		h.mu.Unlock()
		if n <= times {
			h.Next.ServeHTTP(&faultWriter{ResponseWriter: w, r: r, kind: kind, at: at, start: RangeStart(r)}, r2)
			return
		}
	}
	h.Next.ServeHTTP(w, r2)
}

// faultWriter counts the body bytes (at absolute file offsets) and misbehaves at one of them.
type faultWriter struct {
	http.ResponseWriter
	r     *http.Request
	kind  string
	at    int64
	start int64 // file offset of the first body byte
	off   int64
}

func (f *faultWriter) Write(p []byte) (int, error) {
	abs := f.start + f.off
	end := abs + int64(len(p))
	switch {
	case f.kind == "corrupt" && f.at >= abs && f.at < end:
		q := append([]byte(nil), p...)
		q[f.at-abs] ^= 0xff
		n, err := f.ResponseWriter.Write(q)
		f.off += int64(n)
		return n, err
	case (f.kind == "reset" || f.kind == "stall") && f.at >= abs && f.at < end:
		n, err := f.ResponseWriter.Write(p[:f.at-abs])
		f.off += int64(n)
		if err != nil {
			return n, err
		}
		http.NewResponseController(f.ResponseWriter).Flush()
		if f.kind == "stall" {
			select {
			case <-f.r.Context().Done():
			case <-time.After(2 * time.Minute):
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection without finishing the body
	}
	n, err := f.ResponseWriter.Write(p)
	f.off += int64(n)
	return n, err
}

// Layer shapes of the synthetic models: Llama-like projections of a 2048-wide model.
const (
	Hidden = 2048
	FFN    = 5632
)

// Tensors returns the tensors of a model of about mib MiB of fp16: a 16384×2048 embedding, then
// as many layers of q, o (2048×2048), up (5632×2048), down (2048×5632) and an f32 norm as it takes
// to reach the size. Models under 64 MiB get a proportionally smaller embedding and one layer
// of a narrower width.
func Tensors(mib int) []format.TensorInfo {
	embedRows := 16384
	hidden, ffn := Hidden, FFN
	if mib < 96 {
		embedRows, hidden, ffn = max(64, mib*256), 512, 1408
	}
	ts := []format.TensorInfo{{Name: "embed.weight", DType: format.F16, Shape: []int{embedRows, hidden}}}
	size := int64(embedRows * hidden * 2)
	for i := 0; size < int64(mib)<<20; i++ {
		p := fmt.Sprintf("layers.%d.", i)
		for _, t := range []format.TensorInfo{
			{Name: p + "attn_norm.weight", DType: format.F32, Shape: []int{hidden}},
			{Name: p + "attn.q.weight", DType: format.F16, Shape: []int{hidden, hidden}},
			{Name: p + "attn.o.weight", DType: format.F16, Shape: []int{hidden, hidden}},
			{Name: p + "mlp.up.weight", DType: format.F16, Shape: []int{ffn, hidden}},
			{Name: p + "mlp.down.weight", DType: format.F16, Shape: []int{hidden, ffn}},
		} {
			ts = append(ts, t)
			es := int64(2)
			if t.DType == format.F32 {
				es = 4
			}
			size += t.NumElements() * es
		}
	}
	return ts
}

// WriteModel streams a safetensors model with tensors ts to w, a row at a time: values roughly
// normal, rows scaled differently, every 37th input channel 20× larger. Deterministic in seed.
func WriteModel(w io.Writer, ts []format.TensorInfo, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	sw, err := format.NewSafetensorsWriter(bw, ts, map[string]string{"format": "pt", "generator": "nibble faultserve"})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 11))
	var normal [1 << 16]float32
	for i := range normal {
		normal[i] = float32(r.NormFloat64())
	}
	var row []float32
	var buf []byte
	x := seed | 1
	for _, t := range ts {
		k := t.Shape[len(t.Shape)-1]
		n := int(t.NumElements()) / k
		row = append(row[:0], make([]float32, k)...)
		es := 2
		if t.DType == format.F32 {
			es = 4
		}
		buf = append(buf[:0], make([]byte, k*es)...)
		for range n {
			scale := float32(0.01 + 0.02*r.Float64())
			for j := range row {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				v := normal[x&0xffff] * scale
				if j%37 == 5 {
					v *= 20
				}
				row[j] = v
			}
			if t.DType == format.F32 {
				for j, v := range row {
					binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(1+v))
				}
			} else {
				format.EncodeF16(buf, row)
			}
			if _, err := sw.Write(buf); err != nil {
				return err
			}
		}
	}
	if err := sw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
