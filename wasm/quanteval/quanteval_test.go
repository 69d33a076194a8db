package quanteval

import (
	"math"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	ref := [][]float32{{1, 0, 0}, {0.9, 0.1, 0}, {0, 1, 0}, {0, 0.9, 0.1}}
	a, err := Compare(ref, ref)
	if err != nil || a.CosineMin != 1 || a.RelRMS != 0 || a.Ranking != 1 {
		t.Fatalf("identical sets: %+v, %v", a, err)
	}
	// Swap the first and third vectors: every nearest neighbour changes.
	got := [][]float32{{0, 1, 0}, {0.9, 0.1, 0}, {1, 0, 0}, {0, 0.9, 0.1}}
	a, err = Compare(ref, got)
	if err != nil {
		t.Fatal(err)
	}
	if a.CosineMin > 1e-9 || a.Ranking != 0 || a.RelRMS < 0.5 {
		t.Errorf("swapped: %+v, want worst cosine 0, no neighbour kept", a)
	}
	if _, err := Compare(ref, got[:2]); err == nil {
		t.Error("different lengths compared")
	}
}

func TestPercentile(t *testing.T) {
	ms := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	if p := Percentile(ms, 50); p != 5 {
		t.Errorf("median %v, want 5", p)
	}
	if p := Percentile(ms, 90); p != 9 {
		t.Errorf("p90 %v, want 9", p)
	}
	if p := Percentile(nil, 50); p != 0 {
		t.Errorf("empty %v", p)
	}
	if ms[0] != 5 {
		t.Error("Percentile sorted its input")
	}
}

func TestFits(t *testing.T) {
	n := Need{TotalBytes: 3 << 30, LargestBytes: 1<<30 + 4, Largest: "w"}
	if why := Fits(n, 1<<30, 0); !strings.Contains(why, "tensor w needs 1073741828 bytes") {
		t.Errorf("binding: %q", why)
	}
	if why := Fits(n, 0, 1<<30); !strings.Contains(why, "-memory-limit") {
		t.Errorf("limit: %q", why)
	}
	if why := Fits(n, 2<<30, 4<<30); why != "" {
		t.Errorf("fits, but: %q", why)
	}
	if c := Cosine([]float32{0, 0}, []float32{0, 0}); c != 1 || math.IsNaN(c) {
		t.Errorf("zero vectors: %v", c)
	}
}

func TestKL(t *testing.T) {
	p := []float32{2, 1, 0}
	if k := KL(p, p); k != 0 {
		t.Errorf("KL(p, p) = %v", k)
	}
	// Shifting every logit by one constant leaves the distribution as it was.
	if k := KL(p, []float32{12, 11, 10}); k > 1e-12 {
		t.Errorf("KL to shifted logits = %v", k)
	}
	// Two outcomes, p = (½, ½), q = (e/(1+e), 1/(1+e)): KL = ½ log(½/q₁) + ½ log(½/q₂).
	q1, q2 := math.E/(1+math.E), 1/(1+math.E)
	want := 0.5*math.Log(0.5/q1) + 0.5*math.Log(0.5/q2)
	if k := KL([]float32{0, 0}, []float32{1, 0}); math.Abs(k-want) > 1e-12 {
		t.Errorf("KL = %v, want %v", k, want)
	}
	var sum float64
	for _, l := range LogSoftmax([]float32{3, -1, 0.5, 7}) {
		sum += math.Exp(l)
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("softmax sums to %v", sum)
	}
}
