package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/nibble-ml/nibble/wasm/backend"
	"github.com/nibble-ml/nibble/wasm/errs"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
)

// Errors a load can end with (besides wasm/format's, which it wraps for bad files). Every error
// of a load wraps one of wasm/errs's kinds: each sentinel here is one (noted after its name), a
// transport failure that names none is errs.ErrNetwork, a cancelled load errs.ErrAborted.
var (
	// ErrChecksum (errs.ErrFormat): the file's sha256 is not the one its manifest gives. Every
	// tensor uploaded from it was released: nothing half-loaded stays usable.
	ErrChecksum = errs.New(errs.ErrFormat, "stream: sha256 mismatch")
	// ErrStalled (errs.ErrNetwork): no byte arrived for Options.StallTimeout.
	ErrStalled = errs.New(errs.ErrNetwork, "stream: stalled")
	// ErrSize (errs.ErrFormat): the stream ended before, or ran past, the size the manifest (or
	// the server) gives.
	ErrSize = errs.New(errs.ErrFormat, "stream: wrong size")
	// ErrRange (errs.ErrNetwork): the server did not honour a Range request (answered 200 with
	// the whole file, or a Content-Range that starts elsewhere), so the load cannot resume.
	ErrRange = errs.New(errs.ErrNetwork, "stream: range not honoured")
	// ErrChanged (errs.ErrNetwork): the file changed between the first request and a resumed one
	// (its ETag moved).
	ErrChanged = errs.New(errs.ErrNetwork, "stream: file changed during the load")
	// ErrReleased (errs.ErrAborted): the load failed or was released; its weights are gone.
	ErrReleased = errs.New(errs.ErrAborted, "stream: load released")
	// ErrBudget (errs.ErrTooLarge): the tensors the headers declare would not fit
	// Options.MemoryBudget. Nothing was allocated for them.
	ErrBudget = errs.New(errs.ErrTooLarge, "stream: over the memory budget")
)

// Opener opens the byte stream of one file at byte offset off (0 for the whole file). The loader
// opens again at the first byte it has not consumed whenever the stream breaks, so an Opener over
// HTTP is a GET with "Range: bytes=off-".
//
// The returned ReadCloser's Close must be safe to call while a Read is blocked in another
// goroutine, and must make that Read return: that is how stalls and cancellation interrupt it.
// An error that retrying cannot fix (a 404, a server that ignores Range) should be wrapped with
// [Permanent] so the loader fails at once instead of retrying.
type Opener func(ctx context.Context, off int64) (io.ReadCloser, error)

// Permanent marks err as one a retry cannot fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Sizer is implemented by ReadClosers that know the whole file's length from the transport (the
// Content-Length of a 200, the total of a 206's Content-Range); 0 or less means unknown. The
// loader then checks every tensor the header declares against it before allocating anything,
// and fails at once, for good, when it contradicts the manifest's size.
type Sizer interface {
	Size() int64
}

// HeldReporter is implemented by ReadClosers that hold bytes outside Go memory (the fetch
// adapter's current JS chunk): the loader adds them to the memory it reports.
type HeldReporter interface {
	HeldBytes() int64
}

// Source is one file of a model.
type Source struct {
	// Name names the file in errors and progress (e.g. "model.safetensors").
	Name string
	Open Opener
	// Size is the file's length in bytes, 0 if unknown. When set, the loader reads to the end and
	// fails with ErrSize if the stream is shorter or longer.
	Size int64
	// SHA256 is the lowercase hex sha256 of the whole file, "" to skip the check. When set, the
	// loader reads to the end of the file and fails with ErrChecksum on a mismatch, releasing
	// every weight it uploaded.
	SHA256 string
	// Version identifies the file's content when SHA256 is unknown: anything that changes
	// whenever the file does (an ETag from a HEAD request, a release tag). It is used only to key
	// Options.Cache (with Size); a file with neither SHA256 nor Version is never cached.
	Version string
}

// Uploader is the part of a backend the loader needs; every backend.Backend is one.
type Uploader interface {
	Upload(t *quant.Tensor) (backend.Weight, error)
}

// Plan chooses the stored format of one tensor from what the header says about it.
type Plan func(t *format.TensorInfo) quant.Format

// F32 keeps a tensor as float32.
var F32 = quant.Format{Bits: 32}

// DefaultPlan is the plan until wasm/plan provides one: weight matrices (2-D, at least 1024
// elements and rows of at least 32) become quant.Q4 (int4, symmetric, group 32, f32 scales);
// GGUF's Q4_0 and Q8_0 blocks keep their exact layout (symmetric int4/int8, group 32, f16
// scales), with no lossy round trip; everything else (biases, norms, small or 1-D tensors) stays
// float32.
func DefaultPlan(t *format.TensorInfo) quant.Format {
	switch t.DType {
	case format.Q4_0:
		return quant.Format{Bits: 4, Scheme: quant.Symmetric, GroupSize: format.BlockElems, Scales: quant.ScaleF16}
	case format.Q8_0:
		return quant.Format{Bits: 8, Scheme: quant.Symmetric, GroupSize: format.BlockElems, Scales: quant.ScaleF16}
	}
	if len(t.Shape) == 2 && t.Shape[1] >= 32 && t.NumElements() >= 1024 {
		return quant.Q4
	}
	return F32
}

// Options tune a load. The zero value works.
type Options struct {
	// Plan picks each tensor's format; nil means DefaultPlan.
	Plan Plan
	// Quant tunes how codes are chosen (see quant.Options).
	Quant quant.Options
	// Reader parses a file's header from r; nil sniffs GGUF (by its magic) or safetensors. For
	// TF.js weights pass func(r io.Reader) (format.Reader, error) { return format.NewTFJS(m, r, nil) }.
	// The returned reader's Next is never called: the loader reads tensor bytes itself, a few rows
	// at a time, using the offsets Tensors gives.
	Reader func(r io.Reader) (format.Reader, error)
	// Limits bound what the default Reader accepts.
	Limits *format.Limits
	// MemoryBudget, when positive, bounds the quantized size of every tensor the headers declare
	// (Progress.QuantizedTotal) plus the Window: a model that would not fit fails with ErrBudget
	// before anything is allocated for it. Without it, allocation is still bounded by the bytes
	// that exist: by the file's size when the manifest or the server gives it, else by the bytes
	// that really arrived (a tensor's buffers grow with its rows).
	MemoryBudget int64

	// ChunkBytes is the source bytes one quantization job covers (whole rows; at least one row).
	// 0 means 1 MiB.
	ChunkBytes int
	// Window bounds the source bytes read but not yet quantized; the download waits when it is
	// full. 0 means 8 MiB. At least two chunks are always allowed.
	Window int64
	// Workers quantizing concurrently; 0 means GOMAXPROCS.
	Workers int

	// StallTimeout is how long the stream may deliver no byte before the loader gives up on the
	// connection (and resumes it, see MaxRetries). 0 means 30 s; negative disables it.
	StallTimeout time.Duration
	// MaxRetries is how many consecutive failed attempts (no byte between them) the loader makes
	// before failing; each resumes at the first byte not yet consumed. 0 means 5; negative none.
	MaxRetries int
	// RetryDelay is the pause before the first retry, doubled each further one up to 5 s. 0 means
	// 100 ms.
	RetryDelay time.Duration

	// VerifyBeforeUse holds back the tensors of a file that has a SHA256 until the whole file is
	// verified: IsResident and Wait see them only then. Without it tensors are usable as they
	// arrive (early start), and on a mismatch they are all released and the load fails.
	VerifyBeforeUse bool

	// OnProgress, if set, is called from the loader's goroutines after every chunk and tensor.
	// It must return quickly and must not call back into the Load's blocking methods.
	OnProgress func(Progress)

	// CollectEvery makes the loader run the garbage collector after every this many bytes of
	// scratch it left behind (GGUF blocks repacked per chunk; float tensors are quantized
	// straight into their final tensor and leave none). Go's default pacing lets the heap grow to twice what is
	// live before collecting, and on wasm the linear memory never shrinks back, so a load that
	// leaves its scratch to the pacer would end at about twice the quantized model. 0 means
	// Window/2; negative leaves it all to the pacer.
	CollectEvery int64

	// Cache, if set, keeps each file's quantized tensors (keyed by CacheKey: the file's SHA256 or
	// Version, the quantization options and CacheTag) so the next load of the same file reads
	// them from there instead of downloading and quantizing again. A hit still delivers tensors
	// one at a time through the Uploader, IsResident and Wait. An entry that is damaged,
	// truncated, of another version or for another plan is ignored (and the load falls back to
	// the network); a cache that fails never fails the load: see Load.CacheErr.
	Cache Cache
	// CacheTag is mixed into the cache key: change it when the plan or the reader changes in a
	// way the stored formats would not show.
	CacheTag string
}

func (o Options) withDefaults() Options {
	if o.Plan == nil {
		o.Plan = DefaultPlan
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 1 << 20
	}
	if o.Window <= 0 {
		o.Window = 8 << 20
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 5
	} else if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 100 * time.Millisecond
	}
	if o.CollectEvery == 0 {
		o.CollectEvery = o.Window / 2
	}
	return o
}

// Progress is a snapshot of a load.
type Progress struct {
	// Source is the file being read now.
	Source string
	// BytesReceived counts the bytes consumed from every file so far (each byte once, however
	// many times the connection was resumed); BytesTotal is the sum of the known sizes (from
	// Source.Size, else from the headers read so far).
	BytesReceived, BytesTotal int64
	// TensorsReady are uploaded and usable; TensorsTotal are declared by the headers read so far.
	TensorsReady, TensorsTotal int
	// WindowBytes is the capacity of the chunk buffers allocated (the in-flight window).
	WindowBytes int64
	// HeldBytes is the memory the pipeline holds now beyond resident weights: chunk buffers,
	// decode scratch, quantized tensors not yet uploaded, and bytes the byte source holds outside
	// Go (the fetch adapter's JS chunk). PeakHeldBytes is its maximum so far.
	HeldBytes, PeakHeldBytes int64
	// ExternalBytes is the part of HeldBytes outside Go memory: what the byte source holds (the
	// fetch adapter's current JS chunk).
	ExternalBytes int64
	// ResidentBytes is what the uploaded weights occupy in the backend (Weight.Bytes);
	// QuantizedTotal is what it will be once every tensor declared so far is resident.
	ResidentBytes, QuantizedTotal int64
	// Resumes counts reconnections after a broken, truncated or stalled stream.
	Resumes int
	// Elapsed is the time since Start; FirstReady the time the first tensor became resident.
	Elapsed, FirstReady time.Duration
	// CacheHits counts the files read from Options.Cache (their bytes are in neither
	// BytesReceived nor BytesTotal); CacheRead and CacheWritten count entry bytes.
	CacheHits               int
	CacheRead, CacheWritten int64
}

func (p Progress) String() string {
	s := fmt.Sprintf("%d/%d bytes, %d/%d tensors, resident %d of %d, held %d (peak %d), window %d, %d resumes, %v",
		p.BytesReceived, p.BytesTotal, p.TensorsReady, p.TensorsTotal, p.ResidentBytes, p.QuantizedTotal,
		p.HeldBytes, p.PeakHeldBytes, p.WindowBytes, p.Resumes, p.Elapsed.Round(time.Millisecond))
	if p.CacheHits > 0 || p.CacheRead > 0 || p.CacheWritten > 0 {
		s += fmt.Sprintf(", cache: %d hits, %d bytes read, %d written", p.CacheHits, p.CacheRead, p.CacheWritten)
	}
	return s
}
