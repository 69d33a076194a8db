package format_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/nibble-ml/nibble/wasm/format"
)

// A loader sees every tensor's shape before any weight arrives, then gets each tensor as soon as
// its last byte is in, quantized losslessly into nibble's layout.
func Example() {
	// Write a small GGUF with one Q4_0 matrix, streaming its rows.
	w := make([]float32, 4*64)
	for i := range w {
		w[i] = float32(i%17) - 8
	}
	var file bytes.Buffer
	gw, err := format.NewGGUFWriter(&file, []format.TensorInfo{
		{Name: "blk.0.attn_q.weight", DType: format.Q4_0, Shape: []int{4, 64}},
	}, []format.GGUFKV{{Key: "general.architecture", Value: "llama"}})
	if err != nil {
		log.Fatal(err)
	}
	row := make([]byte, 64/format.BlockElems*format.Q4_0BlockBytes)
	for r := range 4 {
		format.EncodeQ4_0(row, w[r*64:(r+1)*64])
		gw.Write(row)
	}
	if err := gw.Close(); err != nil {
		log.Fatal(err)
	}

	r, err := format.Open(&file, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range r.Tensors() {
		fmt.Println("header:", t.Name, t.DType, t.Shape)
	}
	for {
		t, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		q, err := t.Quant()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("tensor: %s %d×%d %v, %d bytes\n", q.Name, q.N, q.K, q.Format, q.Bytes())
	}
	// Output:
	// header: blk.0.attn_q.weight Q4_0 [4 64]
	// tensor: blk.0.attn_q.weight 4×64 q4-sym-g32-f16, 144 bytes
}
