package llama

import (
	"context"
	"fmt"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// CalibrationText is the text Calibrate's callers run by default: everyday English sentences of
// varied kinds, so the ranges cover what a prompt and its continuation pass through.
const CalibrationText = `The quick brown fox jumps over the lazy dog. In 1969, two astronauts walked on the Moon while millions watched on television. ` +
	`Could you tell me how to get to the train station? Water boils at 100 degrees Celsius at sea level; at altitude it boils sooner. ` +
	`She opened the window, took a deep breath, and started to write the letter she had put off for weeks. ` +
	`Prices rose by 3.5% last year, but wages grew faster. "Never again," he said, and closed the door.`

// CalibrationIDs is BOS and CalibrationText's tokens, cut to at most 128 tokens and the model's
// context.
func CalibrationIDs(tok *Tokenizer, c *Config) []int32 {
	ids := append([]int32{tok.BOS}, tok.Encode(CalibrationText, false)...)
	return ids[:min(len(ids), 128, c.Context)]
}

// Calibrate runs ids (a prompt as Encode gives it, BOS included if wanted) once through the
// whole decoder on ref — the cpu reference, or any backend's exact path — and records every
// Linear's input and output interval (backend.Calibration, keyed by label, so one calibration
// serves every cache bucket and the separate head graph). The result is plain data to store
// beside the model and pass as Options.Calibration.
func Calibrate(ctx context.Context, c *Config, ref Backend, ws backend.Weights, ids []int32) (*backend.Calibration, error) {
	T := len(ids)
	if T == 0 || T > c.Context {
		return nil, errs.Mark(fmt.Errorf("llama: calibration needs 1 to %d tokens, got %d", c.Context, T), errs.ErrBadArgument)
	}
	for _, id := range ids {
		if id < 0 || int(id) >= c.Vocab {
			return nil, errs.Mark(fmt.Errorf("llama: calibration token id %d outside the vocabulary of %d", id, c.Vocab), errs.ErrBadArgument)
		}
	}
	m, err := New(c, ref, ws, Options{Context: T})
	if err != nil {
		return nil, err
	}
	defer m.Release()
	g, err := c.Build(T, T, graph.StateF32, T, true) // every row's logits, so the head sees T rows
	if err != nil {
		return nil, err
	}
	cal, err := backend.Calibrate(ctx, ref, g, backend.WithStates(ws, m.states), [][]graph.Tensor{c.inputs(ids, 0, T, T)})
	if err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	return cal, nil
}

// HeadOnly is c with the output head's range alone: on WebNN the body's Linears then run in
// float32 (exact, with float32 weights: nn.Options.F32Weights) and only the vocabulary-sized head
// in the int8 form, its top tokens rescored on the host.
func HeadOnly(c *backend.Calibration) *backend.Calibration {
	h := &backend.Calibration{Linear: map[string]backend.Range{}}
	if r, ok := c.Linear["logits"]; ok {
		h.Linear["logits"] = r
	}
	return h
}
