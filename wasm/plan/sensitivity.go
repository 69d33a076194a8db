package plan

import (
	"encoding/json"
	"fmt"
	"os"
)

// Sensitivity is what lowering each weight matrix alone does to a model's output, measured on
// a calibration set with every other tensor at full precision. The mixed policy spends bytes
// where this says they buy the most. It is measured once per model (natively: it needs a
// reference run per tensor and format) and shipped beside the model as JSON.
type Sensitivity struct {
	Model string `json:"model"`
	// Metric says what Loss is, e.g. "1 − cosine to the fp32 embedding".
	Metric string `json:"metric"`
	// Samples is the size of the calibration set: Loss.PerSample has this many entries.
	Samples int                 `json:"samples"`
	Command string              `json:"command,omitempty"` // how to measure it again
	Tensors []TensorSensitivity `json:"tensors"`
}

// TensorSensitivity lists one tensor's measured losses, one per candidate format.
type TensorSensitivity struct {
	Name    string `json:"name"`
	Shape   []int  `json:"shape"` // [N, K] as held
	Formats []Loss `json:"formats"`
}

// Loss is the output's error with one tensor in Format and the rest at full precision.
type Loss struct {
	Format string  `json:"format"`
	Bytes  int64   `json:"bytes"`
	Mean   float64 `json:"mean"`
	Worst  float64 `json:"worst"`
	// PerSample keeps each calibration sample's loss: summed over tensors it predicts the
	// worst sample of a mixed plan better than summing the worst cases would.
	PerSample []float64 `json:"perSample,omitempty"`
}

// Of returns the losses measured for the tensor name (nil if it was not measured).
func (s *Sensitivity) Of(name string) *TensorSensitivity {
	if s == nil {
		return nil
	}
	for i := range s.Tensors {
		if s.Tensors[i].Name == name {
			return &s.Tensors[i]
		}
	}
	return nil
}

// ReadSensitivity reads a sensitivity file written by WriteFile.
func ReadSensitivity(file string) (*Sensitivity, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseSensitivity(raw)
}

// ParseSensitivity decodes a sensitivity file and checks it is self-consistent.
func ParseSensitivity(raw []byte) (*Sensitivity, error) {
	var s Sensitivity
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("sensitivity: %w", err)
	}
	for _, t := range s.Tensors {
		for _, l := range t.Formats {
			if _, err := ParseFormat(l.Format); err != nil {
				return nil, fmt.Errorf("sensitivity: tensor %q: %w", t.Name, err)
			}
			if l.PerSample != nil && len(l.PerSample) != s.Samples {
				return nil, fmt.Errorf("sensitivity: tensor %q %s: %d per-sample losses for %d samples", t.Name, l.Format, len(l.PerSample), s.Samples)
			}
		}
	}
	return &s, nil
}

// WriteFile writes s as indented JSON.
func (s *Sensitivity) WriteFile(file string) error {
	raw, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(raw, '\n'), 0o644)
}
