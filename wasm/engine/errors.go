package engine

import "github.com/nibble-ml/nibble/wasm/errs"

// The kinds of error every failure of Resolve, Load and a Model's load wraps (see wasm/errs for
// what each means and what the user can do); test with errors.Is. The JS API reports them as
// Code gives them.
var (
	ErrNotFound    = errs.ErrNotFound    // NOT_FOUND
	ErrFormat      = errs.ErrFormat      // UNSUPPORTED_FORMAT: damaged, or not what its manifest says
	ErrUnsupported = errs.ErrUnsupported // UNSUPPORTED_FORMAT: a type, version or API not here
	ErrTooLarge    = errs.ErrTooLarge    // OUT_OF_MEMORY
	ErrNetwork     = errs.ErrNetwork     // NETWORK
	ErrAborted     = errs.ErrAborted     // ABORTED
	ErrDeviceLost  = errs.ErrDeviceLost  // DEVICE_LOST
	ErrBadArgument = errs.ErrBadArgument // BAD_ARGUMENT
)

// Code returns the JS API's error code for err ("NOT_FOUND", "NETWORK"...), "" for nil.
func Code(err error) string { return errs.Code(err) }
