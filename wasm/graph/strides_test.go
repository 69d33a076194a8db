package graph

import (
	"slices"
	"testing"
)

func TestStrides(t *testing.T) {
	if got := (Shape{2, 3, 4}).Strides(); !slices.Equal(got, []int{12, 4, 1}) {
		t.Fatalf("Strides [2,3,4] = %v", got)
	}
	for _, c := range []struct {
		in, out Shape
		want    []int
	}{
		{Shape{3, 1}, Shape{2, 3, 5}, []int{0, 1, 0}},
		{Shape{5}, Shape{2, 3, 5}, []int{0, 0, 1}},
		{Shape{2, 1, 5}, Shape{2, 3, 5}, []int{5, 0, 1}},
		{Shape{2, 3, 5}, Shape{2, 3, 5}, []int{15, 5, 1}},
	} {
		if got := BroadcastStrides(c.in, c.out); !slices.Equal(got, c.want) {
			t.Errorf("BroadcastStrides(%v, %v) = %v, want %v", c.in, c.out, got, c.want)
		}
	}
}
