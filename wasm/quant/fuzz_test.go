package quant

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzPackUnpack: a code written at any index reads back the same and leaves its neighbours alone.
func FuzzPackUnpack(f *testing.F) {
	f.Add(uint8(4), uint16(3), int16(-8), []byte{0xff, 0x00, 0xaa, 0x55})
	f.Add(uint8(2), uint16(5), int16(1), []byte{1, 2, 3})
	f.Add(uint8(8), uint16(0), int16(-128), []byte{9})
	f.Fuzz(func(t *testing.T, bitsSel uint8, idx uint16, code int16, buf []byte) {
		bits := []int{2, 4, 8}[int(bitsSel)%3]
		per := 8 / bits
		if len(buf) == 0 {
			return
		}
		i := int(idx) % (len(buf) * per)
		for _, signed := range []bool{false, true} {
			lo, hi := 0, 1<<bits-1
			if signed {
				lo, hi = -(1 << (bits - 1)), 1<<(bits-1)-1
			}
			q := lo + int(code)%(hi-lo+1)
			if q < lo {
				q += hi - lo + 1
			}
			before := append([]byte(nil), buf...)
			PutCode(buf, bits, i, q)
			if got := Code(buf, bits, i, signed); got != q {
				t.Fatalf("bits %d signed %v: wrote %d at %d, read %d", bits, signed, q, i, got)
			}
			for j := 0; j < len(buf)*per; j++ {
				if j != i && Code(buf, bits, j, false) != Code(before, bits, j, false) {
					t.Fatalf("bits %d: writing index %d changed index %d", bits, i, j)
				}
			}
		}
	})
}

// FuzzQuantize: any finite input in any valid format quantizes without panicking into a tensor
// of the right sizes, codes in range and finite dequantized values.
func FuzzQuantize(f *testing.F) {
	f.Add(uint8(1), uint8(0), uint8(2), false, uint16(5), []byte("\x00\x00\x80\x3f\x00\x00\x00\xc0"))
	f.Add(uint8(0), uint8(1), uint8(0), true, uint16(1), []byte("\xff\xff\x7f\x7f\x01\x00\x00\x00\x00\x00\x80\x80"))
	f.Fuzz(func(t *testing.T, bitsSel, schemeSel, groupSel uint8, search bool, kSel uint16, raw []byte) {
		vals := make([]float32, 0, len(raw)/4)
		for i := 0; i+4 <= len(raw); i += 4 {
			v := math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return
			}
			vals = append(vals, v)
		}
		if len(vals) == 0 {
			return
		}
		k := 1 + int(kSel)%len(vals)
		n := len(vals) / k
		vals = vals[:n*k]
		fm := Format{
			Bits:      []int{2, 4, 8, 16, 32}[int(bitsSel)%5],
			Scheme:    Scheme(schemeSel % 2),
			GroupSize: []int{0, 16, 32, 128}[int(groupSel)%4],
			Scales:    ScaleType(groupSel / 4 % 2),
		}
		q, err := Quantize("fuzz", vals, n, k, fm, Options{Search: search})
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Check(); err != nil {
			t.Fatal(err)
		}
		for i, v := range Dequantize(q) {
			// Scales and f16 storage saturate instead of overflowing: finite in, finite out.
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%v: dequantized[%d] = %v from %v", fm, i, v, vals[i])
			}
		}
		if fm.Quantized() {
			for r := 0; r < n; r++ {
				for c := 0; c < k; c++ {
					if code := q.Q(r, c); code < fm.QMin() || code > fm.QMax() {
						t.Fatalf("%v: code %d out of range", fm, code)
					}
				}
			}
		}
	})
}
