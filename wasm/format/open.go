package format

import (
	"bufio"
	"fmt"
	"io"
)

// Open sniffs the first bytes of r and returns the matching reader: GGUF by its magic,
// safetensors by a plausible header length followed by '{'. TF.js weights have no magic (the
// manifest is a separate file): use NewTFJS.
func Open(r io.Reader, lim *Limits) (Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(9)
	if len(head) >= 4 && string(head[:4]) == GGUFMagic {
		return NewGGUF(br, lim)
	}
	if len(head) == 9 && head[8] == '{' {
		return NewSafetensors(br, lim)
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("format: open: %w", err)
	}
	return nil, fmt.Errorf("format: open: %w: first bytes %q are neither GGUF nor safetensors", ErrUnsupported, head)
}
