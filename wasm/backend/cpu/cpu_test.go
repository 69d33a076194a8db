package cpu

import (
	"testing"

	"github.com/nibble-ml/nibble/wasm/backend/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, New(), backendtest.Options{})
}
