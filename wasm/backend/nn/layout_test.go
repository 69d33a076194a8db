package nn

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/webnn"
)

// fakeLimits accepts every type for every op except the ones listed.
type fakeLimits struct{ reject []webnn.DataType }

func (f fakeLimits) Accepts(op, operand string, t webnn.DataType, rank int) bool {
	return !slices.Contains(f.reject, t)
}

// chromium153 is what Chromium 153's TFLite backend accepts (see wasm/webnn/testdata).
var chromium153 = fakeLimits{reject: []webnn.DataType{webnn.Uint4}}

func TestPlanMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	browsers := []struct {
		name string
		a    Accepter
	}{
		{"chromium153", chromium153},
		{"no-int4", fakeLimits{reject: []webnn.DataType{webnn.Int4, webnn.Uint4}}},
		{"no-uint8", fakeLimits{reject: []webnn.DataType{webnn.Int4, webnn.Uint8}}},
		{"no-int", fakeLimits{reject: []webnn.DataType{webnn.Int4, webnn.Int8, webnn.Uint8, webnn.Float16}}},
	}
	for _, br := range browsers {
		paths := map[Path]int{}
		for _, f := range backendtest.AllFormats() {
			for _, s := range [][2]int{{3, 17}, {5, 300}, {2, 257}, {4, 64}, {1, 1}} {
				n, k := s[0], s[1]
				q, err := quant.Quantize("w", backendtest.RandomWeights(rng, n, k), n, k, f, quant.Options{})
				if err != nil {
					t.Fatal(err)
				}
				l, err := Plan(q, br.a)
				if err != nil {
					t.Fatal(err)
				}
				paths[l.Path]++
				if len(l.CodeBytes) != l.Codes.ByteLength() || len(l.ScaleBytes) != l.Scales.ByteLength() || len(l.ZeroBytes) != l.Zeros.ByteLength() {
					t.Fatalf("%s %v %dx%d: byte lengths %d/%d/%d, descriptors %v %v %v", br.name, f, n, k,
						len(l.CodeBytes), len(l.ScaleBytes), len(l.ZeroBytes), l.Codes, l.Scales, l.Zeros)
				}
				if l.KPad() < k || (l.Path != PathF32 && l.Path != PathF16Cast && l.KPad()%l.B != 0) {
					t.Fatalf("%s %v %dx%d: KPad %d = %d×%d", br.name, f, n, k, l.KPad(), l.G, l.B)
				}
				got, want := l.Dequantize(), quant.Dequantize(q)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %v %dx%d path %s: w[%d] = %g, want %g (note: %s)", br.name, f, n, k, l.Path, i, got[i], want[i], l.Note)
					}
				}
				// Each row read back from only its byte ranges (rowSpans), as Weight.Rows and
				// the QDQ requantization read them out of the JS-held constants.
				for r := 0; r < n; r++ {
					cs, ss, zs := l.rowSpans(r, 1)
					row := make([]float32, k)
					l.rowInto(row, r, l.CodeBytes[cs.Lo:cs.Hi], cs.Lo, l.ScaleBytes[ss.Lo:ss.Hi], ss.Lo, l.ZeroBytes[zs.Lo:zs.Hi], zs.Lo)
					if !slices.Equal(row, want[r*k:(r+1)*k]) {
						t.Fatalf("%s %v %dx%d path %s: row %d read from its spans differs", br.name, f, n, k, l.Path, r)
					}
				}
				if br.name == "chromium153" && f.Quantized() && f.Bits <= 4 && (n > 1 || q.Groups(k) == 1) && l.Path != PathInt4 {
					t.Errorf("%v on chromium153 took %s, want %s", f, l.Path, PathInt4)
				}
			}
		}
		t.Logf("%s: paths %v", br.name, paths)
	}
}

// TestPlanKeepsStoredRows checks that a tensor already in the graph's layout is not copied.
func TestPlanKeepsStoredRows(t *testing.T) {
	q, err := quant.Quantize("w", make([]float32, 4*64), 4, 64, quant.Q4, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := Plan(q, chromium153)
	if &l.CodeBytes[0] != &q.Data[0] {
		t.Error("int4 g32 with K=64 was copied; it is already [N, G, 32] int4")
	}
	if got := l.Codes.Shape; !slices.Equal(got, []int{4, 2, 32}) {
		t.Errorf("codes shape %v, want [4 2 32]", got)
	}
}
