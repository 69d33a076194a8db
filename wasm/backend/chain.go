package backend

import (
	"context"

	"github.com/nibble-ml/nibble/wasm/graph"
)

// Chainer is a Program that can queue a run before the host has read the last one back: Queue
// writes the inputs and submits the run at once, and one input may come on the device from an
// output of the run queued just before (of this program or of another compiled by the same
// backend). A greedy decoder feeds each step's ArgMax to the next step's token id this way, so
// the device never waits for the host between tokens (llama.Model.Generate). The gpu backend's
// programs implement it; a backend that runs on the host has nothing to overlap.
type Chainer interface {
	Program
	// Queue writes in and submits one run without waiting for it. With feed.From set, input
	// feed.Input is instead copied on the device from output feed.Output of that run (of the same
	// size and type); in[feed.Input] must still have the input's shape, its values are not
	// read. feed.From must be the last run its program queued or ran. Wait for every queued run.
	Queue(ctx context.Context, in []graph.Tensor, feed Feed) (Queued, error)
}

// Feed names an input of a queued run that an earlier run's output fills on the device.
type Feed struct {
	From          Queued // nil: every input comes from the host
	Output, Input int    // indices in the graphs' Outputs and Inputs
}

// Queued is a run Chainer.Queue submitted.
type Queued interface {
	// Wait reads the run's outputs back, as Program.Run returns them.
	Wait(ctx context.Context) ([]graph.Tensor, error)
}
