// Command mkmodel writes synthetic models of real shapes (Llama-7B and Llama-3.2-1B layers,
// BERT-base, one 4096×4096 matrix, or any rows×cols) as safetensors or GGUF, for tests and
// benchmarks of nibble's loaders and kernels: no decoder LLM weights can be had here.
//
// Values are deterministic in -seed and look like trained weights where it matters for
// quantization: roughly normal, rows scaled differently, and a few input channels 10–50× larger.
// The file is written row by row, so a multi-gigabyte model needs a few megabytes of memory;
// -j N encodes N tensors at once on N cores, each whole in memory (the same bytes, written in
// order): a 7B model's largest tensor is ~140 MB.
//
//	go run ./tools/mkmodel -shape llama-1b -format safetensors-f16 -seed 1 -o out.safetensors
//	go run ./tools/mkmodel -shape llama-7b -layers 2 -format gguf-q4_0 -o l7b.gguf
//	go run ./tools/mkmodel -shape custom -rows 1024 -cols 4096 -format gguf-q8_0 -o m.gguf
//	go run ./tools/mkmodel -llm -shape llama-tiny -layers 2 -format gguf-f32 -o tiny.gguf
//	go run ./tools/mkmodel -llm -shape llama-7b -layers 32 -format gguf-mixed -o l7b.gguf
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	var o options
	var out string
	flag.StringVar(&o.Shape, "shape", "single-4096", fmt.Sprintf("model shape: one of %v", shapeNames))
	flag.StringVar(&o.Format, "format", "safetensors-f16", "safetensors-f32|safetensors-f16|safetensors-bf16|gguf-f32|gguf-f16|gguf-q8_0|gguf-q4_0|gguf-mixed (Q8_0 attention and head, Q4_0 FFN and token table)")
	flag.Uint64Var(&o.Seed, "seed", 1, "random seed; the same seed gives the same bytes")
	flag.IntVar(&o.Layers, "layers", 1, "transformer layers for llama-7b, llama-1b, bert-base (real models: 32, 16, 12)")
	flag.IntVar(&o.Rows, "rows", 0, "rows (output features) for -shape custom")
	flag.IntVar(&o.Cols, "cols", 0, "columns (input features) for -shape custom")
	flag.BoolVar(&o.Embed, "embed", false, "also write the embedding tables, final norm and output head (llama-7b, llama-1b, bert-base)")
	flag.BoolVar(&o.LLM, "llm", false, "a complete decoder llama.cpp runs: llama.* metadata, tokenizer vocabulary, head scaled for peaked logits (-shape llama-tiny|llama-tiny3|tinyllama|llama-1b|llama-7b, GGUF formats)")
	flag.StringVar(&o.Tokenizer, "tokenizer", "", "with -llm: llama (SentencePiece) or gpt2 (byte-level BPE); default the shape's own")
	flag.IntVar(&o.Context, "ctx", 0, "with -llm: llama.context_length (default the shape's own)")
	flag.Float64Var(&o.Peak, "peak", 0, "with -llm: spread of the head's rows, in units of 1/√hidden (default 6)")
	flag.IntVar(&o.Jobs, "j", 1, "tensors encoded at once, each whole in memory (1: row by row)")
	flag.StringVar(&out, "o", "", "output file, or - for stdout")
	flag.Parse()
	if out == "" {
		fmt.Fprintln(os.Stderr, "mkmodel: -o is required (a file name, or - for stdout)")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(o, out); err != nil {
		fmt.Fprintln(os.Stderr, "mkmodel:", err)
		os.Exit(1)
	}
}

func run(o options, out string) error {
	var w io.Writer = os.Stdout
	var f *os.File
	if out != "-" {
		var err error
		if f, err = os.Create(out); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	cw := &countWriter{w: bufio.NewWriterSize(w, 4<<20)}
	start := time.Now()
	sum, err := generate(cw, o)
	if err == nil {
		err = cw.w.(*bufio.Writer).Flush()
	}
	if err == nil && f != nil {
		err = f.Close()
	}
	if err != nil {
		if f != nil {
			os.Remove(out) // never leave a half-written model behind
		}
		return err
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "mkmodel: %s %s seed %d: %d tensors, %d parameters, %d bytes in %v (%.0f MB/s)\n",
		o.Shape, o.Format, o.Seed, sum.Tensors, sum.Params, cw.n, el.Round(time.Millisecond), float64(cw.n)/el.Seconds()/1e6)
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
