package webnn

import (
	"os"
	"testing"
)

func TestParseLimitsChromium153(t *testing.T) {
	b, err := os.ReadFile("testdata/limits-chromium153-tflite-cpu.json")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLimits(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op, operand string
		dt          DataType
		rank        int
		want        bool
	}{
		{"dequantizeLinear", "input", Int4, 3, true},
		{"dequantizeLinear", "input", Uint4, 3, false},
		{"dequantizeLinear", "zeroPoint", Uint8, 3, true},
		{"dequantizeLinear", "input", Int8, 7, false},
		{"constant", "", Int4, 3, true},
		{"gemm", "a", Float32, 2, true},
		{"gemm", "a", Float32, 3, false},
		{"matmul", "a", Int8, 2, false},
		{"nosuchop", "a", Float32, 2, false},
	} {
		if got := l.Accepts(c.op, c.operand, c.dt, c.rank); got != c.want {
			t.Errorf("Accepts(%s.%s, %s, rank %d) = %v, want %v", c.op, c.operand, c.dt, c.rank, got, c.want)
		}
	}
	if l.PreferredInputLayout != "nhwc" || l.MaxTensorByteLength != 1<<31-1 {
		t.Errorf("layout %q, maxTensorByteLength %d", l.PreferredInputLayout, l.MaxTensorByteLength)
	}
	t.Log(l.Summary("dequantizeLinear", "gemm", "matmul", "pad"))
}

func TestDescriptorByteLength(t *testing.T) {
	for _, c := range []struct {
		d    Descriptor
		want int
	}{
		{Descriptor{Int4, []int{3, 3}}, 5},
		{Descriptor{Int8, []int{2, 5}}, 10},
		{Descriptor{Float16, nil}, 2},
		{Descriptor{Float32, []int{4, 0}}, 0},
	} {
		if got := c.d.ByteLength(); got != c.want {
			t.Errorf("%v.ByteLength() = %d, want %d", c.d, got, c.want)
		}
	}
}
