//go:build js && wasm

package jsapi

import (
	"testing"

	"github.com/nibble-ml/nibble/wasm/jsutil"
)

// TestLoadOptionsInt8Activations: {int8Activations: true} reaches engine.Options, and a load
// with it never shares one without it (its numbers differ: a backend of its own on WebGPU).
func TestLoadOptionsInt8Activations(t *testing.T) {
	o := jsutil.ObjectClass.New()
	o.Set("backend", "webgpu")
	plain, _, _, err := loadOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	o.Set("int8Activations", true)
	a8, _, _, err := loadOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Int8Activations || !a8.Int8Activations {
		t.Fatalf("int8Activations: without %v, with %v", plain.Int8Activations, a8.Int8Activations)
	}
	if loadKey("m/", plain) == loadKey("m/", a8) {
		t.Fatal("a load with int8Activations shares the key of one without")
	}
}
