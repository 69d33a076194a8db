package graph

// Strides are the element strides of a dense row-major array of shape s.
func (s Shape) Strides() []int {
	st := make([]int, len(s))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= s[i]
	}
	return st
}

// BroadcastStrides gives, for each dimension of out, the stride of a dense array of shape in
// read as broadcast to out: 0 along the dimensions in has as 1 or lacks (NumPy's rule, as
// Broadcast checks it).
func BroadcastStrides(in, out Shape) []int {
	st := make([]int, len(out))
	ist := in.Strides()
	off := len(out) - len(in)
	for i := range out {
		if j := i - off; j >= 0 && in[j] != 1 {
			st[i] = ist[j]
		}
	}
	return st
}
