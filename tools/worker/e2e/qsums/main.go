// Command qsums is the native reference of tools/worker/e2e.sh: it reads a safetensors or GGUF
// file, quantizes every tensor whole (not streamed, not chunked) with wasm/stream's DefaultPlan,
// and prints each quantized tensor's qsum.Sum as qsum.Encode writes them. The browser test
// (wasm/stream TestBrowserWorkerE2E) streams the same file through the Worker, quantizing chunk by
// chunk on arrival, and must reach the same sums.
//
//	go run ./tools/worker/e2e/qsums model.safetensors > sums.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/nibble-ml/nibble/tools/worker/e2e/qsum"
	"github.com/nibble-ml/nibble/wasm/format"
	"github.com/nibble-ml/nibble/wasm/quant"
	"github.com/nibble-ml/nibble/wasm/stream"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("qsums: ")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: qsums <model file>   (sums on stdout, a summary on stderr)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	sums, q4, err := reference(flag.Arg(0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(qsum.Encode(sums))
	log.Printf("%s: %d tensors quantized natively (%d of them q4)", flag.Arg(0), len(sums), q4)
}

// reference quantizes every tensor of the file the way the loader's plan says, in one piece.
func reference(path string) (map[string]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	r, err := format.Open(bufio.NewReaderSize(f, 1<<20), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	sums := map[string]string{}
	q4 := 0
	for {
		t, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		plan := stream.DefaultPlan(&t.TensorInfo)
		var q *quant.Tensor
		if t.DType == format.Q4_0 || t.DType == format.Q8_0 {
			// GGUF blocks: DefaultPlan keeps their layout and the loader maps them losslessly.
			if q, err = t.Quant(); err != nil {
				return nil, 0, fmt.Errorf("%s: tensor %q: %w", path, t.Name, err)
			}
		} else {
			v, err := t.Float32()
			if err != nil {
				return nil, 0, fmt.Errorf("%s: tensor %q: %w", path, t.Name, err)
			}
			if len(v) == 0 {
				continue // the loader uploads nothing for an empty tensor
			}
			n, k := 1, 1
			if len(t.Shape) > 0 {
				k = t.Shape[len(t.Shape)-1]
				n = len(v) / k
			}
			if q, err = quant.Quantize(t.Name, v, n, k, plan, quant.Options{}); err != nil {
				return nil, 0, fmt.Errorf("%s: tensor %q: %w", path, t.Name, err)
			}
		}
		if q.Bits == 4 {
			q4++
		}
		sums[t.Name] = qsum.Sum(q)
	}
	return sums, q4, nil
}
