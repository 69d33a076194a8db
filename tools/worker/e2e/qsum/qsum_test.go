package qsum

import (
	"errors"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/quant"
)

func TestSum(t *testing.T) {
	w := make([]float32, 4*64)
	for i := range w {
		w[i] = float32(i%13) - 6
	}
	a, err := quant.Quantize("w", w, 4, 64, quant.Q4, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := Sum(a)
	if Sum(a) != base {
		t.Fatal("Sum is not deterministic")
	}
	change := map[string]func(c *quant.Tensor){
		"name":   func(c *quant.Tensor) { c.Name = "v" },
		"data":   func(c *quant.Tensor) { c.Data[3] ^= 1 },
		"scales": func(c *quant.Tensor) { c.Scales[0] ^= 1 },
		"group":  func(c *quant.Tensor) { c.GroupSize = 64 },
		"shape":  func(c *quant.Tensor) { c.N, c.K = 8, 32 },
		// The same bytes split differently between codes and scales.
		"split": func(c *quant.Tensor) { c.Data, c.Scales = append(c.Data, c.Scales[0]), c.Scales[1:] },
	}
	for name, f := range change {
		c := *a
		c.Data, c.Scales = append([]byte(nil), a.Data...), append([]byte(nil), a.Scales...)
		f(&c)
		if Sum(&c) == base {
			t.Errorf("changing the %s leaves the sum alone", name)
		}
	}
}

func TestEncodeParse(t *testing.T) {
	sums := map[string]string{
		"b.weight": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"a.bias":   "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210",
	}
	s := Encode(sums)
	if s != "a.bias="+sums["a.bias"]+" b.weight="+sums["b.weight"] {
		t.Fatalf("Encode = %q", s)
	}
	got, err := Parse(s)
	if err != nil || len(got) != 2 || got["a.bias"] != sums["a.bias"] || got["b.weight"] != sums["b.weight"] {
		t.Fatalf("Parse(Encode) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "  ", "a", "a=12", "=" + sums["a.bias"], "a=" + sums["a.bias"] + " a=" + sums["a.bias"], "a=" + sums["a.bias"][:63] + "g"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): want an error", bad)
		}
	}
}

// failingUploader fails every Upload after the first n.
type failingUploader struct{ n int }

func (f *failingUploader) Upload(t *quant.Tensor) (backend.Weight, error) {
	if f.n == 0 {
		return nil, errors.New("full")
	}
	f.n--
	return nil, nil
}

// TestKeeper: the sums are of the tensors the backend accepted, by name; a rejected one is not kept.
func TestKeeper(t *testing.T) {
	w := make([]float32, 2*64)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	a, _ := quant.Quantize("a", w, 2, 64, quant.Q4, quant.Options{})
	b, _ := quant.Quantize("b", w, 2, 64, quant.Format{Bits: 8, Scheme: quant.Symmetric, GroupSize: 32}, quant.Options{})
	c, _ := quant.Quantize("c", w, 2, 64, quant.Q4, quant.Options{})
	k := &Keeper{Up: &failingUploader{n: 2}}
	for _, q := range []*quant.Tensor{a, b} {
		if _, err := k.Upload(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := k.Upload(c); err == nil {
		t.Fatal("the backend's error was not returned")
	}
	sums, q4 := k.Sums()
	if len(sums) != 2 || sums["a"] != Sum(a) || sums["b"] != Sum(b) || q4 != 1 {
		t.Fatalf("sums %v, %d 4-bit; want a's and b's, 1 4-bit", sums, q4)
	}
}
