package engine

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// TestBrowserPolicyTable prints the README's precision-plan table (NIBBLE_PLAN_TABLE=1; make
// bench-plan): per backend × policy, the bytes the backend holds, cosine to TF.js's fp32 (worst,
// mean) over the 30 sentences and the median latency of embedding all 30. "mixed@int4" is the
// sensitivity-driven plan under the uniform int4 plan's bytes.
func TestBrowserPolicyTable(t *testing.T) {
	if os.Getenv("NIBBLE_PLAN_TABLE") == "" {
		t.Skip("set NIBBLE_PLAN_TABLE=1 (make bench-plan)")
	}
	model, vendor := embedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	texts := embedSentences
	ref, _ := tfjsEmbeddings(t, ctx, model, vendor, "wasm", texts)
	backends := []string{"cpu", "webgpu", "webnn"}
	if b := os.Getenv("NIBBLE_PLAN_BACKENDS"); b != "" {
		backends = strings.Split(b, ",")
	}
	policies := []string{"quality", "balanced", "mixed", "small", "int4", "mixed@int4", "tiny"}
	if p := os.Getenv("NIBBLE_PLAN_POLICIES"); p != "" {
		policies = strings.Split(p, ",")
	}
	fmt.Println("| backend | policy | bytes | reduction | worst cosine | mean cosine | 30 sentences ms |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	for _, b := range backends {
		var int4Bytes int64
		for _, pol := range policies {
			off := false
			opt := Options{Backend: b, Policy: pol, Cache: &off}
			if pol == "mixed@int4" && int4Bytes > 0 {
				opt.Policy, opt.MemoryBudget = "mixed", int4Bytes
			}
			m, err := Load(ctx, model, opt)
			if err == nil {
				err = m.Wait(ctx)
			}
			if err != nil {
				fmt.Printf("| %s | %s | error: %v |\n", b, pol, err)
				continue
			}
			p := m.Plan()
			if pol == "int4" {
				int4Bytes = p.Bytes
			}
			got, err := m.Embed(ctx, texts) // also compiles the buckets
			if err != nil {
				fmt.Printf("| %s | %s | error: %v |\n", b, pol, err)
				m.Release()
				continue
			}
			lo, mean := 1.0, 0.0
			for i := range got {
				c := quanteval.Cosine(got[i], ref[i])
				lo, mean = min(lo, c), mean+c/float64(len(got))
			}
			var ms []float64
			for range 3 {
				t0 := time.Now()
				if _, err := m.Embed(ctx, texts); err != nil {
					t.Fatal(err)
				}
				ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
			}
			slices.Sort(ms)
			mem := m.Memory()
			fmt.Printf("| %s | %s | %d | %.1f %% | %.4f | %.4f | %.0f |\n", b, pol, mem.ResidentBytes, mem.ReductionPct, lo, mean, ms[1])
			if mem.ResidentBytes != p.Bytes {
				// The GPU pads rows; WebNN holds its constants once per compiled graph.
				t.Logf("%s %s: the backend holds %d bytes, the plan said %d", b, pol, mem.ResidentBytes, p.Bytes)
			}
			for _, n := range m.Notes() {
				if strings.HasPrefix(n, "guard") {
					t.Logf("%s %s: %s", b, pol, n)
				}
			}
			m.Release()
		}
	}
}
