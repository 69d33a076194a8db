package backendtest

import "testing"

func TestSeedReadsNIBBLE_SEED(t *testing.T) {
	t.Setenv("NIBBLE_SEED", "12345")
	if got := Seed(t, "test"); got != 12345 {
		t.Fatalf("Seed with NIBBLE_SEED=12345 = %d", got)
	}
	t.Setenv("NIBBLE_SEED", "")
	if a, b := Seed(t, "a"), Seed(t, "b"); a == 12345 || a == 0 || b == 0 {
		t.Fatalf("Seed without NIBBLE_SEED = %d, %d: want the clock", a, b)
	}
}
