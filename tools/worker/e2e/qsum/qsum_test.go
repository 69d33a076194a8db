package qsum

import (
	"testing"

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
