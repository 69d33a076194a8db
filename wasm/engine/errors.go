package engine

import "github.com/nibble-ml/nibble/wasm/errs"

// The kinds of error every failure of Resolve, Load and a Model's load wraps (see wasm/errs for
// what each means and what the user can do); test with errors.Is. The JS API reports them as
// Code gives them.
var (
	ErrNotFound    = errs.ErrNotFound    // NOT_FOUND
	ErrFormat      = errs.ErrFormat      // UNSUPPORTED_FORMAT: damaged, or not what its manifest says
	ErrUnsupported = errs.ErrUnsupported // UNSUPPORTED_FORMAT: a type, version or API not here
	ErrModel       = errs.ErrModel       // UNSUPPORTED_MODEL: weights load, the architecture does not run
	ErrTooLarge    = errs.ErrTooLarge    // OUT_OF_MEMORY
	ErrNetwork     = errs.ErrNetwork     // NETWORK
	ErrAborted     = errs.ErrAborted     // ABORTED
	ErrDeviceLost  = errs.ErrDeviceLost  // DEVICE_LOST
	ErrBadArgument = errs.ErrBadArgument // BAD_ARGUMENT
)

// ErrorKind returns the kind err wraps (one of the above), nil for nil. In the browser a lost WebGPU
// device or WebNN context (webgpu.ErrDeviceLost, webnn.ErrLost) is ErrDeviceLost whatever else
// the error says: the model must be loaded again.
func ErrorKind(err error) error { return deviceKind(err) }

// Code returns the JS API's error code for err ("NOT_FOUND", "DEVICE_LOST"...), "" for nil,
// "INTERNAL" for an error of no kind.
func Code(err error) string {
	if k := ErrorKind(err); k != nil {
		return errs.Code(k)
	}
	return errs.Code(err)
}
