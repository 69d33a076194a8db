package engine

import (
	"context"
	"sync"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

// Quantized streams url with the plan of format name (see PlanFor) and returns every tensor as
// the pure-Go reference holds it. Backends must compute quant.MatMul of these tensors: tests
// use it as the oracle for what a load in the browser produced.
func Quantized(ctx context.Context, url, formatName string) (map[string]*quant.Tensor, error) {
	plan, err := PlanFor(formatName)
	if err != nil {
		return nil, err
	}
	spec, err := Resolve(ctx, url)
	if err != nil {
		return nil, err
	}
	k := &keeper{out: map[string]*quant.Tensor{}}
	plan, up := heldLayout(spec, plan, k)
	l := stream.Start(ctx, up, stream.Options{Plan: plan, Reader: spec.Reader}, spec.Sources...)
	if _, err := l.Result(ctx); err != nil {
		return nil, err
	}
	return k.out, nil
}

type keeper struct {
	mu  sync.Mutex
	out map[string]*quant.Tensor
}

func (k *keeper) Upload(t *quant.Tensor) (backend.Weight, error) {
	k.mu.Lock()
	k.out[t.Name] = t
	k.mu.Unlock()
	return dropped{name: t.Name, n: t.N, k: t.K, f: t.Format}, nil
}
