package cpu_test

import (
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
	"github.com/nibble-ml/nibble/wasm/backend/cpu"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, cpu.New(), backendtest.Options{})
}
