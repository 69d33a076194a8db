// Package qsum names a quantized tensor by a sha256 of everything a backend uploads (its name,
// format, shape, packed codes, scales and zero points), so two loads of a model — one in the
// browser, one natively — can be compared without moving the tensors between them.
//
// It is shared by tools/worker/e2e.sh's native reference (tools/worker/e2e/qsums) and the browser
// test wasm/stream TestBrowserWorkerE2E: one definition of the sum on both sides. Pure Go: it
// builds for js/wasm too.
package qsum

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Sum is the lowercase hex sha256 of t as a backend receives it. The header line carries the
// lengths, so bytes moved from Data to Scales (or Zeros) change the sum.
func Sum(t *quant.Tensor) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00bits %d scheme %d group %d scales %d\x00%d×%d\x00%d %d %d\n", t.Name, t.Bits, t.Scheme, t.GroupSize,
		t.Format.Scales, t.N, t.K, len(t.Data), len(t.Scales), len(t.Zeros))
	h.Write(t.Data)
	h.Write(t.Scales)
	h.Write(t.Zeros)
	return hex.EncodeToString(h.Sum(nil))
}

// Encode writes sums as "name=hex" pairs separated by spaces, sorted by name: short enough for an
// environment variable (wasmbrowsertest hands the environment to the page) and free of quotes.
func Encode(sums map[string]string) string {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(sums[n])
	}
	return b.String()
}

// Parse reads what Encode wrote.
func Parse(s string) (map[string]string, error) {
	sums := map[string]string{}
	for _, f := range strings.Fields(s) {
		name, sum, ok := strings.Cut(f, "=")
		if !ok || name == "" || len(sum) != 2*sha256.Size {
			return nil, fmt.Errorf("qsum: %q is not name=<64 hex digits>", f)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, fmt.Errorf("qsum: %q: %w", f, err)
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("qsum: tensor %q listed twice", name)
		}
		sums[name] = sum
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("qsum: no sums in %q", s)
	}
	return sums, nil
}

// Uploader is the part of a backend a load uploads through (wasm/stream.Uploader).
type Uploader interface {
	Upload(t *quant.Tensor) (backend.Weight, error)
}

// Keeper uploads through a backend and keeps each tensor it uploaded (a backend keeps the same
// bytes: Upload holds a reference), so a load's sums are of exactly what is resident. The browser
// test and the stress page both load through one.
type Keeper struct {
	Up Uploader
	mu sync.Mutex
	t  map[string]*quant.Tensor
}

func (k *Keeper) Upload(t *quant.Tensor) (backend.Weight, error) {
	w, err := k.Up.Upload(t)
	if err == nil {
		k.mu.Lock()
		if k.t == nil {
			k.t = map[string]*quant.Tensor{}
		}
		k.t[t.Name] = t
		k.mu.Unlock()
	}
	return w, err
}

// Sums returns the Sum of every tensor uploaded, by name, and how many of them are 4-bit.
func (k *Keeper) Sums() (sums map[string]string, q4 int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	sums = make(map[string]string, len(k.t))
	for name, t := range k.t {
		sums[name] = Sum(t)
		if t.Bits == 4 {
			q4++
		}
	}
	return sums, q4
}
