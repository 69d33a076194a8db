package plan

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nibble-ml/nibble/wasm/quant"
)

// ParseFormat reads a format name as quant.Format.String writes it ("q4-sym-g32-f32"), with the
// scale type optional (f32 when absent): "q<bits>-<sym|asym>-<g<size>|pc>[-f16|-f32]", "f16",
// "f32".
func ParseFormat(s string) (quant.Format, error) {
	switch s {
	case "f16":
		return quant.Format{Bits: 16}, nil
	case "f32":
		return quant.Format{Bits: 32}, nil
	}
	bad := func(why string) (quant.Format, error) {
		return quant.Format{}, fmt.Errorf("format %q: %s (want e.g. q4-sym-g32, q8-asym-g128-f16, q4-sym-pc, f16, f32): %w", s, why, quant.ErrFormat)
	}
	parts := strings.Split(s, "-")
	if len(parts) < 3 || len(parts) > 4 || !strings.HasPrefix(parts[0], "q") {
		return bad("not q<bits>-<scheme>-<group>")
	}
	var f quant.Format
	bits, err := strconv.Atoi(parts[0][1:])
	if err != nil {
		return bad("bits are not a number")
	}
	f.Bits = bits
	switch parts[1] {
	case "sym":
		f.Scheme = quant.Symmetric
	case "asym":
		f.Scheme = quant.Asymmetric
	default:
		return bad("scheme is neither sym nor asym")
	}
	switch g := parts[2]; {
	case g == "pc":
		f.GroupSize = 0
	case strings.HasPrefix(g, "g"):
		n, err := strconv.Atoi(g[1:])
		if err != nil || n <= 0 {
			return bad("group is not g<size>")
		}
		f.GroupSize = n
	default:
		return bad("group is neither g<size> nor pc")
	}
	if len(parts) == 4 {
		switch parts[3] {
		case "f32":
			f.Scales = quant.ScaleF32
		case "f16":
			f.Scales = quant.ScaleF16
		default:
			return bad("scale type is neither f32 nor f16")
		}
	}
	if err := f.Validate(); err != nil {
		return quant.Format{}, fmt.Errorf("format %q: %w", s, err)
	}
	return f, nil
}

// mustFormat is ParseFormat for the names this package writes itself.
func mustFormat(s string) quant.Format {
	f, err := ParseFormat(s)
	if err != nil {
		panic(err)
	}
	return f
}
