package gpu

import (
	"testing"

	"github.com/nibble-ml/nibble/shaders"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// TestSplitKChoice: a tile's S becomes the key's KSlices and multiplies grid y, unless the
// partial products would exceed splitKMaxBytes; the reduction runs one invocation per output.
func TestSplitKChoice(t *testing.T) {
	tu := DefaultTuning
	tu.Tiles = [6]Tile{{MaxM: 1 << 30, WG: 128, WGM: 16, TM: 4, TN: 8, BK: 32, KS: 2, S: 3}}
	feat := features{subgroups: true}
	k := keyFor(quant.Q4, 4096, 128, feat, tu)
	if k.KSlices != 3 {
		t.Fatalf("%s: KSlices %d, want 3", k.Name(), k.KSlices)
	}
	if x, y := grid(k, 4096, 128); x != 4096/64 || y != 2*3 {
		t.Errorf("grid of %s over 128×4096: %d×%d, want 64×6", k.Name(), x, y)
	}
	if got, want := partBytes(k, 128, 4096), int64(3*128*4096*4); got != want {
		t.Errorf("partBytes %d, want %d", got, want)
	}
	r := reduceKey(k)
	if x, y := grid(r, 4096, 128); r.Kernel != shaders.GEMMReduce || r.KSlices != 3 || x != 4096/reduceWG || y != 128 {
		t.Errorf("reduce %s grid %d×%d", r.Name(), x, y)
	}
	m := splitKMaxBytes/(3*4096*4) + 1 // the first m past the bound
	if k := keyFor(quant.Q4, 4096, m, feat, tu); k.KSlices != 0 || partBytes(k, m, 4096) != 0 {
		t.Errorf("m = %d: %s still split (%d bytes of partial products)", m, k.Name(), 3*m*4096*4)
	}
	if k := keyFor(quant.Q4, 4096, m-1, feat, tu); k.KSlices != 3 {
		t.Errorf("m = %d: %s unsplit within the bound", m-1, k.Name())
	}
	for _, tl := range DefaultTuning.Tiles {
		if tl.S > 1 {
			t.Logf("DefaultTuning splits K across workgroups up to m = %d: %+v", tl.MaxM, tl)
		}
	}
}
