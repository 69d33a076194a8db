package llama

import (
	"context"
	"fmt"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/graph"
)

// ChainDepth is how many decode steps greedy generation keeps queued on a backend that chains
// runs (backend.Chainer): step t+1 goes in before step t's token is read back, so the device
// never waits for the host between tokens (reading the id, yielding it, writing the next
// inputs, submitting). A stop the host decides (end of generation, a yield error, a cancel)
// discards at most ChainDepth steps computed ahead. 0 turns chaining off: the step-by-step loop.
var ChainDepth = 3

// greedyStep is a decode step that ends in ArgMax: input ids (index 0, fed on the device from
// the step before), output the next id.
func (m *Model) greedyStep(keep int) (backend.Program, error) {
	return m.program(progKey{rows: 1, keep: keep, greedy: true}, func() (*graph.Graph, error) {
		g, err := m.Config.build(part{rows: 1, keep: keep}, m.opt.Cache, m.opt.Context)
		if err != nil {
			return nil, err
		}
		next := g.ArgMax("next", g.Outputs[0])
		g.Outputs = g.Outputs[:0]
		if err := g.Output(next); err != nil {
			return nil, err
		}
		return g, nil
	})
}

// generateChained is Generate's loop after the prompt on a backend that chains runs, for greedy
// sampling: first is token 0 (picked on the host from the prompt's logits), and decode step k
// (at position Pos+k) runs token k, its id fed from step k−1 on the device, and makes token k+1. It yields exactly the ids the
// step-by-step loop yields and stops where it stops, with m.Pos where that loop leaves it (the
// steps computed ahead wrote cache rows at or past m.Pos, which are masked until written
// again). ok is false, with nothing yielded, where the backend cannot chain or compile ArgMax.
func (m *Model) generateChained(ctx context.Context, first int32, s Sampling, tok *Tokenizer, yield func(id int32) error) (ok bool, err error) {
	if ChainDepth <= 0 || m.embed != nil || m.Pos >= m.opt.Context {
		return false, nil // off, or the host looks rows up (each id goes through it), or no room
	}
	p0, err := m.greedyStep(bucket(m.Pos+1, m.opt.Context))
	if _, chains := p0.(backend.Chainer); err != nil || !chains {
		return false, nil // a backend that cannot run ArgMax (WebNN) or chain keeps the step loop
	}
	P := m.Pos
	// canRun says whether the step-by-step loop runs step k: after yielding token k, it stops
	// when the cache is full or k+1 tokens were asked for.
	canRun := func(k int) bool { return P+k < m.opt.Context && (s.MaxTokens == 0 || k+1 < s.MaxTokens) }
	var queued []backend.Queued // steps in flight, oldest (the next token's) first
	var last backend.Queued     // the newest, whose id the next step is fed
	defer func() {
		// What was computed ahead is dropped; each run's readback buffer goes back to its program.
		for _, q := range queued {
			q.Wait(context.WithoutCancel(ctx))
		}
	}()
	next, id := 0, first // the step to queue next; token n
	for n := 0; ; n++ {
		m.Pos = P + n // as the step-by-step loop has it while token n is yielded, and after a stop
		for ; next < n+ChainDepth && canRun(next) && ctx.Err() == nil; next++ {
			q, err := m.queueStep(ctx, P+next, first, last)
			if err != nil {
				return true, err
			}
			queued = append(queued, q)
			last = q
		}
		if tok != nil && tok.EndOfGeneration(id) {
			return true, nil
		}
		if err := yield(id); err != nil {
			return true, err
		}
		if !canRun(n) {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return true, errs.Mark(err, errs.ErrAborted)
		}
		out, err := queued[0].Wait(ctx)
		queued = queued[1:]
		if err != nil {
			if ctx.Err() != nil {
				err = errs.Mark(err, errs.ErrAborted)
			}
			return true, err
		}
		id = out[0].I32[0]
	}
}

// queueStep queues the greedy decode step at pos: its id is first (the host's) when nothing was
// queued before, else fed from the last step's ArgMax.
func (m *Model) queueStep(ctx context.Context, pos int, first int32, last backend.Queued) (backend.Queued, error) {
	keep := bucket(pos+1, m.opt.Context)
	p, err := m.greedyStep(keep)
	if err != nil {
		return nil, err
	}
	c, ok := p.(backend.Chainer)
	if !ok {
		return nil, fmt.Errorf("llama: the decode program of %d cached rows cannot chain runs", keep)
	}
	in := m.Config.inputs([]int32{first}, pos, 1, keep) // ids: first, or a placeholder when fed
	return c.Queue(ctx, in, backend.Feed{From: last, Output: 0, Input: 0})
}
