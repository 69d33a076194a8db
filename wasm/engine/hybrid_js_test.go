package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/graph"
	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// hybridBound is the largest cosine distance a hybrid embedding may have from the cpu's with
// the same quantized weights: only the order of float sums (and WebNN's kernels) differ.
const hybridBound = 1e-4

// loadWait loads url with opt and waits for it (the hybrid probe included).
func loadWait(ctx context.Context, url string, opt Options) (*Model, error) {
	m, err := Load(ctx, url, opt)
	if err != nil {
		return nil, err
	}
	if err := m.Wait(ctx); err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

// cpuEmbeddings are the cpu backend's embeddings of texts with the policy's weights.
func cpuEmbeddings(t *testing.T, ctx context.Context, url, policy string, texts []string) [][]float32 {
	t.Helper()
	ref, err := loadWait(ctx, url, Options{Backend: "cpu", Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Release()
	want, err := ref.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// worstDistance is the largest cosine distance between got and want, row by row; NaN counts
// as the worst.
func worstDistance(got, want [][]float32) float64 {
	worst := 0.0
	for i := range want {
		d := 1 - quanteval.Cosine(got[i], want[i])
		if !(d <= worst) {
			worst = d
		}
	}
	return worst
}

// TestBrowserEmbedHybrid: WebGPU (SwiftShader), WebNN (TFLite) and the cpu in one page. A
// hybrid load probes every stage on each, places them, and embeds as the cpu does; a wrong
// kernel in layer 0 on WebNN (the test hook) keeps that stage off WebNN; pinned there by an
// override, the load fails.
func TestBrowserEmbedHybrid(t *testing.T) {
	base, _ := embedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	texts := embedSentences[:6]
	want := cpuEmbeddings(t, ctx, base, "quality", texts)
	check := func(m *Model, what string) {
		t.Helper()
		got, err := m.Embed(ctx, texts)
		if err != nil {
			t.Fatal(err)
		}
		if d := worstDistance(got, want); !(d <= hybridBound) {
			t.Errorf("%s: worst cosine distance to the cpu %.3g > %.0e", what, d, hybridBound)
		}
	}

	m, err := loadWait(ctx, base, Options{Backend: BackendHybrid, Policy: "quality"})
	if err != nil {
		t.Fatal(err)
	}
	pl := m.Plan().Placement
	if pl == nil {
		t.Fatal("no placement in the plan")
	}
	t.Log(pl.Table())
	for _, s := range pl.Stages {
		var probed []string
		for _, p := range s.Probe {
			probed = append(probed, p.Backend)
		}
		if slices.Sort(probed); strings.Join(probed, ",") != "cpu,webgpu,webnn" {
			t.Errorf("stage %s probed on %v, want cpu, webgpu and webnn", s.Name, probed)
		}
	}
	check(m, "hybrid")
	if got := m.Plan().Placement; got.Crossings > 0 && got.Crossed == 0 {
		t.Errorf("%d crossings per pass, none counted", got.Crossings)
	}
	t.Logf("hybrid: %d bytes held after placement; notes: %s", m.Memory().ResidentBytes, strings.Join(m.Notes(), "; "))
	m.Release()

	hybridFault = func(target string, g *graph.Graph) bool {
		return target == "webnn" && slices.ContainsFunc(g.Nodes, func(n graph.Node) bool { return strings.HasPrefix(n.Label, "layer0/") })
	}
	defer func() { hybridFault = nil }()
	m, err = loadWait(ctx, base, Options{Backend: BackendHybrid, Policy: "quality"})
	if err != nil {
		t.Fatal(err)
	}
	l0 := m.Plan().Placement.Stages[1]
	t.Logf("layer 0 with a wrong webnn kernel: on %s; %s", l0.Backend, l0.Reason)
	if l0.Backend == "webnn" {
		t.Errorf("layer 0 stayed on the wrong webnn: %+v", l0)
	}
	for _, p := range l0.Probe {
		if p.Backend == "webnn" && p.Error == "" && p.RelErr <= guardBound {
			t.Errorf("the probe did not see the wrong kernel: %+v", p)
		}
	}
	check(m, "hybrid, layer 0 moved")
	m.Release()

	_, err = loadWait(ctx, base, Options{Backend: BackendHybrid, Policy: "quality", Overrides: "*Layer_0/*=@webnn"})
	if !errors.Is(err, ErrGuard) || !strings.Contains(err.Error(), "pinned to webnn") {
		t.Errorf("layer 0 pinned to a wrong webnn: %v", err)
	}
}

// TestBrowserHybridTable prints the README's hybrid table (NIBBLE_HYBRID_TABLE=1): USE-lite
// per policy on webgpu, webnn, hybrid as placed by its probe, and a split pinned by overrides
// (layers on WebNN, the embedding and head on WebGPU), all loaded in one page: where each stage
// ran, crossings per pass and the activation bytes one 30-sentence embed moved between
// backends, worst cosine distance to the cpu with the same weights, and the median latency of
// 1 and of 30 sentences. The timed runs go round robin over the four models, so the shared
// machine's load drifts over all of them alike.
func TestBrowserHybridTable(t *testing.T) {
	if os.Getenv("NIBBLE_HYBRID_TABLE") == "" {
		t.Skip("set NIBBLE_HYBRID_TABLE=1")
	}
	base, _ := embedEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	texts, one := embedSentences, embedSentences[:1]
	runs := 5
	if r := os.Getenv("NIBBLE_HYBRID_RUNS"); r != "" {
		fmt.Sscan(r, &runs)
	}
	split := "*Layer_*=@webnn,module/Embeddings_en=@webgpu,module/Encoder_en/hidden_layers/*=@webgpu"
	policies := []string{"quality", "int4"}
	if p := os.Getenv("NIBBLE_HYBRID_POLICIES"); p != "" {
		policies = strings.Split(p, ",")
	}
	fmt.Println("| policy | backend | stages (embed, layer 0, layer 1, head) | crossings / pass | bytes crossed, 30 sentences | worst cosine distance to cpu | load + probe s | 1 sentence ms | 30 sentences ms |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|")
	type row struct {
		name         string
		m            *Model
		where, cross string
		crossed      int64
		dist, load   float64
		t1, t30      []float64
	}
	for _, pol := range policies {
		want := cpuEmbeddings(t, ctx, base, pol, texts)
		var rows []*row
		for _, c := range []struct{ name, backend, overrides string }{
			{"webgpu", "webgpu", ""}, {"webnn", "webnn", ""}, {"hybrid (probe's choice)", BackendHybrid, ""},
			{"hybrid, split pinned", BackendHybrid, split},
		} {
			t0 := time.Now()
			m, err := loadWait(ctx, base, Options{Backend: c.backend, Policy: pol, Overrides: c.overrides})
			if err != nil {
				fmt.Printf("| %s | %s | error: %v |\n", pol, c.name, err)
				continue
			}
			defer m.Release()
			r := &row{name: c.name, m: m, load: time.Since(t0).Seconds(), where: c.backend + " (one graph)", cross: "0"}
			got, err := m.Embed(ctx, texts) // compiles the buckets
			if err != nil {
				t.Fatal(err)
			}
			r.dist = worstDistance(got, want)
			if pl := m.Plan().Placement; pl != nil {
				var s []string
				for _, st := range pl.Stages {
					s = append(s, st.Backend)
				}
				r.where, r.cross, r.crossed = strings.Join(s, ", "), fmt.Sprint(pl.Crossings), pl.CrossedBytes
				t.Logf("%s %s:\n%s", pol, c.name, pl.Table())
			}
			if _, err := m.Embed(ctx, one); err != nil { // its bucket too
				t.Fatal(err)
			}
			rows = append(rows, r)
		}
		since := func(t0 time.Time) float64 { return float64(time.Since(t0).Microseconds()) / 1000 }
		for range runs {
			for _, r := range rows {
				t0 := time.Now()
				if _, err := r.m.Embed(ctx, one); err != nil {
					t.Fatal(err)
				}
				r.t1 = append(r.t1, since(t0))
				t0 = time.Now()
				if _, err := r.m.Embed(ctx, texts); err != nil {
					t.Fatal(err)
				}
				r.t30 = append(r.t30, since(t0))
			}
		}
		median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		for _, r := range rows {
			fmt.Printf("| %s | %s | %s | %s | %d | %.1e | %.1f | %.1f | %.1f |\n", pol, r.name, r.where, r.cross, r.crossed, r.dist, r.load, median(r.t1), median(r.t30))
		}
	}
}
