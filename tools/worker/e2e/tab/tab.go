// Package tab is what one tab of the Worker's stress test reports: tools/worker/e2e/stresspage
// (in the browser) sets it, as JSON, on window.nibbleStress; tools/worker/e2e/stress (the
// native driver) reads it back and checks it.
package tab

// Result is one tab's load of the model.
type Result struct {
	Error         string `json:"error,omitempty"`
	Sums          string `json:"sums"` // qsum.Encode of every resident tensor
	Q4            int    `json:"q4"`   // tensors quantized to 4 bits
	BytesReceived int64  `json:"bytesReceived"`
	ResidentBytes int64  `json:"residentBytes"`
	PeakHeldBytes int64  `json:"peakHeldBytes"`
	Resumes       int    `json:"resumes"`
	Millis        int64  `json:"ms"`
	// Linear memory when main starts (the Go runtime and the page's code) and after the load
	// (wasm memory never shrinks, so this is the page's peak).
	LinearStart int64 `json:"linearStart"`
	LinearPeak  int64 `json:"linearPeak"`
}
