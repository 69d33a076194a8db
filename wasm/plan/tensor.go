package plan

import "github.com/nibble-ml/nibble/wasm/quant"

// Tensor is one tensor of the model as the planner sees it.
type Tensor struct {
	Name string `json:"name"`
	// Shape is as the backend holds the tensor: [N, K] for a weight matrix with K its input
	// dimension (quantization groups run along K).
	Shape []int `json:"shape"`
	Role  Role  `json:"role"`
	Layer int   `json:"layer"` // −1 when the tensor belongs to no layer
	// Matrix marks a weight matrix: what policies quantize. Everything else (biases, norms,
	// scalars) stays float32: it is small and the kernels read it as floats.
	Matrix bool `json:"matrix"`
	// Stored, when set, is a quantized layout the file already holds (GGUF Q4_0/Q8_0) that the
	// loader keeps without a lossy round trip; policies that ask for the same bits keep it.
	Stored *quant.Format `json:"-"`
}

// NewTensor describes a tensor from its name and its shape as held, guessing the role from
// the name. Leading unit dimensions are dropped (TF.js stores 1×1 convolutions [1, 1, in, out]).
func NewTensor(name string, shape []int) Tensor {
	for len(shape) > 2 && shape[0] == 1 {
		shape = shape[1:]
	}
	role, layer := InferRole(name)
	matrix := isMatrix(shape) && shape[0] > 1 && role != RoleBias && role != RoleNorm
	return Tensor{Name: name, Shape: shape, Role: role, Layer: layer, Matrix: matrix}
}

// isMatrix is the loader's rule for what is worth quantizing (stream.DefaultPlan's): 2-D, rows
// of at least 32, at least 1024 elements. NewTensor also wants more than one row, since a
// vector held as [1][size] is a bias, not a matrix.
func isMatrix(shape []int) bool {
	return len(shape) == 2 && shape[1] >= 32 && shape[0]*shape[1] >= 1024
}

// NK returns the tensor as rows: N rows of K (a vector is one row).
func (t *Tensor) NK() (n, k int) {
	if len(t.Shape) == 0 {
		return 1, 1
	}
	k = t.Shape[len(t.Shape)-1]
	n = 1
	for _, d := range t.Shape[:len(t.Shape)-1] {
		n *= d
	}
	return n, k
}

// Bytes is what the tensor occupies in format f, scales and zero points included.
func (t *Tensor) Bytes(f quant.Format) int64 {
	n, k := t.NK()
	return int64(f.TensorBytes(n, k))
}
