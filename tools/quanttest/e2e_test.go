//go:build !(js && wasm)

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/quanteval"
)

// The end-to-end tests run the built quanttest in real browsers (make test-quanttest); they
// need make deps, hence the switch.
func e2e(t *testing.T) string {
	t.Helper()
	if os.Getenv("NIBBLE_QUANTTEST_E2E") == "" {
		t.Skip("set NIBBLE_QUANTTEST_E2E=1 (make test-quanttest): starts Chromium and Firefox")
	}
	bin := filepath.Join(t.TempDir(), "quanttest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type outcome struct {
	code           int
	stdout, stderr string
}

// quanttest runs bin with a fresh marker and checks that no process carrying it is left.
func quanttest(t *testing.T, bin string, env []string, args ...string) outcome {
	t.Helper()
	marker := fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command(bin, append([]string{"run"}, args...)...)
	cmd.Env = append(append(os.Environ(), markerEnv+"="+marker), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := outcome{stdout: stdout.String(), stderr: stderr.String()}
	if exit, ok := err.(*exec.ExitError); ok {
		o.code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, marker)
	return o
}

func noLeftovers(t *testing.T, marker string) {
	t.Helper()
	for range 20 { // a killed process may take a moment to be reaped
		if len(leftovers(marker)) == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("processes left running: %v", leftovers(marker))
}

// oneError checks a failed run: exit 1 and exactly one "quanttest run:" line saying want.
func oneError(t *testing.T, o outcome, want string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(o.stderr, "\n") {
		if strings.HasPrefix(l, "quanttest run:") {
			lines = append(lines, l)
		}
	}
	if o.code != 1 || len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("exit %d, error lines %q; want exit 1 and one line with %q\nstderr:\n%s", o.code, lines, want, o.stderr)
	}
}

// TestE2EChromium: one configuration per platform in headless Chromium, -json parsed.
func TestE2EChromium(t *testing.T) {
	bin := e2e(t)
	o := quanttest(t, bin, nil, "-json", "-platform", "all", "-bits", "8", "-runs", "2", "-texts", "6")
	if o.code != 0 {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	seen := map[string]quanteval.Result{}
	sc := bufio.NewScanner(strings.NewReader(o.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r quanteval.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("-json line %q: %v", sc.Text(), err)
		}
		seen[r.Platform] = r
	}
	for _, p := range []string{"webgpu", "webnn", "cpu"} {
		r, ok := seen[p]
		switch {
		case !ok:
			t.Errorf("%s: no result", p)
			continue
		case r.Error != "":
			t.Errorf("%s: %s", p, r.Error)
			continue
		}
		t.Logf("%s %s: %d → %d bytes, load %.0f ms, first output %.0f ms, %.1f/%.1f ms, cosine %.5f (worst %.5f), NN %.0f%%, %s",
			p, r.Format, r.F32Bytes, r.WeightBytes, r.LoadMS, r.FirstOutputMS, r.LatencyMedianMS, r.LatencyP90MS, r.CosineMean, r.CosineMin, 100*r.RankingAgreement, r.Verdict)
		if r.Format != "q8-sym-g32" || r.Bits != 8 || r.GroupSize != 32 || r.Scheme != "sym" || r.Browser != "chromium" || r.Model != "use-lite" {
			t.Errorf("%s: configuration fields %+v", p, r)
		}
		if r.F32Bytes < 27e6 || r.WeightBytes <= 0 || r.LoadMS <= 0 || r.FirstOutputMS <= 0 || r.LatencyMedianMS <= 0 ||
			r.LatencyP90MS < r.LatencyMedianMS || r.Runs != 2 || r.BatchTexts != 6 {
			t.Errorf("%s: figures missing: %+v", p, r)
		}
		if r.Reference == "" || r.CosineMin < 0.999 || r.RelRMS > 0.05 || r.RankingAgreement < 0.99 {
			t.Errorf("%s: int8 against fp32: reference %q, cosine min %v, rel RMS %v, ranking %v", p, r.Reference, r.CosineMin, r.RelRMS, r.RankingAgreement)
		}
		if r.Verdict == "" || r.Adapter == "" || len(r.Plan) == 0 {
			t.Errorf("%s: adapter %q, verdict %q, plan %v", p, r.Adapter, r.Verdict, r.Plan)
		}
	}
	// The Go and WebGPU backends hold int8 codes and f32 scales: a quarter and a bit of fp32.
	for _, p := range []string{"webgpu", "cpu"} {
		if r := seen[p]; r.Error == "" && (r.ReductionPct < 70 || r.ReductionPct > 75) {
			t.Errorf("%s: %.1f%% saved, want 70…75%% for q8-sym-g32", p, r.ReductionPct)
		}
	}
	if r := seen["webgpu"]; strings.Contains(r.Adapter, "swiftshader") && (r.Hardware || !strings.Contains(r.Verdict, "software")) {
		t.Errorf("SwiftShader called hardware: %+v", r)
	}
}

// TestE2EFailures: each failure is one line and a non-zero exit, with nothing left running.
func TestE2EFailures(t *testing.T) {
	bin := e2e(t)
	t.Run("browser start", func(t *testing.T) {
		o := quanttest(t, bin, []string{"NIBBLE_CHROMIUM=/nonexistent/chromium"}, "-platform", "cpu", "-bits", "8", "-runs", "1")
		oneError(t, o, "chromium did not start the page")
	})
	t.Run("missing platform", func(t *testing.T) {
		o := quanttest(t, bin, nil, "-browser", "firefox", "-platform", "webnn", "-bits", "8", "-runs", "1", "-texts", "2")
		oneError(t, o, "webnn is not available in this browser")
	})
	t.Run("does not fit", func(t *testing.T) {
		// One f32 tensor one row larger than 1 GiB, SwiftShader's largest binding: a sparse file,
		// refused from its header before a byte of it is served.
		dir := filepath.Join(t.TempDir(), "huge")
		os.Mkdir(dir, 0o755)
		path := filepath.Join(dir, "huge.safetensors")
		n := int64(16385) * 16384 * 4
		hdr := fmt.Sprintf(`{"w":{"dtype":"F32","shape":[16385,16384],"data_offsets":[0,%d]}}`, n)
		hdr += strings.Repeat(" ", (8-len(hdr)%8)%8)
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, uint64(len(hdr)))
		b.WriteString(hdr)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(b.Len())+n); err != nil {
			t.Fatal(err)
		}
		o := quanttest(t, bin, nil, "-model", "file:"+path, "-platform", "webgpu", "-bits", "32", "-runs", "1")
		oneError(t, o, "does not fit on webgpu: tensor w needs 1073807360 bytes")
	})
	t.Run("interrupt", func(t *testing.T) {
		marker := fmt.Sprintf("e2e-int-%d", os.Getpid())
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "-platform", "cpu", "-bits", "4", "-runs", "50")
		cmd.Env = append(os.Environ(), markerEnv+"="+marker)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var seen []string
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), "loading") { // the browser is up and the page running
				break
			}
		}
		cmd.Process.Signal(syscall.SIGINT)
		for sc.Scan() {
			seen = append(seen, sc.Text())
		}
		err := cmd.Wait()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(strings.Join(seen, "\n"), "interrupted; browser stopped") {
			t.Errorf("after Ctrl-C: %v\n%s", err, strings.Join(seen, "\n"))
		}
		noLeftovers(t, marker)
	})
}

// TestE2EPolicyDecoder: a planner policy as a configuration row, on the synthetic Llama decoder
// in the Go backend (seconds, where USE-lite's loads take tens): the row carries its plan, the
// decoder's speeds and its top-1 agreement with the f32 run.
func TestE2EPolicyDecoder(t *testing.T) {
	bin := e2e(t)
	o := quanttest(t, bin, nil, "-json", "-model", "llama-synthetic:llama-tiny", "-platform", "cpu", "-bits", "32", "-policy", "mixed", "-runs", "1", "-tokens", "8")
	if o.code != 0 {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	var rs []quanteval.Result
	for _, l := range strings.Split(strings.TrimSpace(o.stdout), "\n") {
		var r quanteval.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("-json line %q: %v", l, err)
		}
		rs = append(rs, r)
	}
	if len(rs) != 2 || rs[0].Format != "f32" || rs[1].Format != "policy:mixed" {
		t.Fatalf("want the f32 and policy:mixed rows, got %+v", rs)
	}
	for _, r := range rs {
		t.Logf("%s: %d → %d bytes, load %.0f ms, prefill %.0f tok/s, decode %.0f tok/s, top-1 %.2f of %d, plan %s",
			r.Format, r.F32Bytes, r.WeightBytes, r.LoadMS, r.PrefillTokPerS, r.DecodeTokPerS, r.Top1Agreement, r.Top1Positions, quanteval.PlanString(r.Plan))
		if r.Error != "" || r.PromptTokens == 0 || r.GeneratedTokens == 0 || r.PrefillTokPerS <= 0 || r.DecodeTokPerS <= 0 || r.KVCacheBytes <= 0 {
			t.Errorf("%s: decoder figures missing: %+v", r.Format, r)
		}
	}
	m := rs[1]
	if m.Policy != "mixed" || m.PlanPolicy == "" || len(m.Plan) < 2 || m.WeightBytes >= m.F32Bytes {
		t.Errorf("policy row: policy %q, plan %q %v, %d of %d bytes", m.Policy, m.PlanPolicy, m.Plan, m.WeightBytes, m.F32Bytes)
	}
	if m.Reference == "" || m.Top1Positions != 8 || m.Top1Agreement < 0.5 {
		t.Errorf("policy row: top-1 %.2f of %d against %q", m.Top1Agreement, m.Top1Positions, m.Reference)
	}
}

// TestE2EORT: -compare ort on the cpu platform: USE-lite exported to ONNX natively and run by
// onnxruntime-web's wasm EP in the same page. Its f32 embeddings must match nibble's f32 on
// that platform (cosine ≥ 0.9999 for every text: the same function in float32, summed in
// another order), and its 4-bit model, holding the engine's own codes, nibble's q4-sym-g32 row.
func TestE2EORT(t *testing.T) {
	bin := e2e(t)
	o := quanttest(t, bin, nil, "-json", "-platform", "cpu", "-bits", "4", "-compare", "ort", "-runs", "1", "-texts", "4")
	if o.code != 0 {
		t.Fatalf("exit %d\n%s", o.code, o.stderr)
	}
	rows := map[string]quanteval.Result{}
	for _, l := range strings.Split(strings.TrimSpace(o.stdout), "\n") {
		var r quanteval.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("-json line %q: %v", l, err)
		}
		rows[r.Runtime+"/"+r.PeerBackend+"/"+r.Format] = r
	}
	nib, f32, q4 := rows["nibble//q4-sym-g32"], rows["onnxruntime-web 1.30.0/wasm/f32"], rows["onnxruntime-web 1.30.0/wasm/q4-sym-g32"]
	for name, r := range map[string]quanteval.Result{"nibble q4": nib, "ORT f32": f32, "ORT q4": q4} {
		t.Logf("%s: %+v", name, r)
		if r.Error != "" || r.Platform != "cpu" || r.Reference == "" || r.LoadMS <= 0 || r.LatencyMedianMS <= 0 || r.BatchTexts != 4 {
			t.Errorf("%s: row missing or incomplete (rows: %v)", name, keys(rows))
		}
	}
	if f32.CosineMin < 0.9999 || f32.RelRMS > 1e-3 || f32.WeightBytes < f32.F32Bytes {
		t.Errorf("ORT f32 against nibble f32: cosine min %.6f, rel RMS %.2g, %d bytes of %d", f32.CosineMin, f32.RelRMS, f32.WeightBytes, f32.F32Bytes)
	}
	if q4.SameWeights == "" || q4.SameWeightsCosineMin < 0.9999 || q4.WeightBytes > f32.WeightBytes/5 || q4.CosineMin > 0.999 {
		t.Errorf("ORT q4: against %q cosine min %.6f; %d bytes (f32 %d); cosine to fp32 %.5f (4-bit should cost some)",
			q4.SameWeights, q4.SameWeightsCosineMin, q4.WeightBytes, f32.WeightBytes, q4.CosineMin)
	}
}

func keys(m map[string]quanteval.Result) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
