// Package tensor holds the engine's n-dimensional float32 arrays: a shape and contiguous
// row-major storage. Images are NHWC. Nothing here knows about gradients.
package tensor

import (
	"fmt"
	"math"
)

// Tensor is a dense row-major float32 array. Data has exactly Numel(Shape) elements.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Numel returns the number of elements of a shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Strides returns the row-major strides of a shape: the step in elements along each axis.
func Strides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for d := len(shape) - 1; d >= 0; d-- {
		st[d] = s
		s *= shape[d]
	}
	return st
}

// New returns a zero tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// From wraps data as a tensor of the given shape; it panics when the sizes differ.
func From(data []float32, shape ...int) *Tensor {
	if len(data) != Numel(shape) {
		panic(fmt.Sprintf("tensor.From: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Dim returns the size of axis i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// HasNaN reports whether any element is NaN or infinite.
func (t *Tensor) HasNaN() bool {
	for _, v := range t.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return true
		}
	}
	return false
}

// ToNCHW converts an NHWC tensor to NCHW (for export and for comparison with other tools).
func ToNCHW(t *Tensor) *Tensor {
	n, h, w, c := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(n, c, h, w)
	for b := range n {
		for y := range h {
			for x := range w {
				for ch := range c {
					out.Data[((b*c+ch)*h+y)*w+x] = t.Data[((b*h+y)*w+x)*c+ch]
				}
			}
		}
	}
	return out
}

// ToNHWC converts an NCHW tensor to NHWC.
func ToNHWC(t *Tensor) *Tensor {
	n, c, h, w := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := New(n, h, w, c)
	for b := range n {
		for ch := range c {
			for y := range h {
				for x := range w {
					out.Data[((b*h+y)*w+x)*c+ch] = t.Data[((b*c+ch)*h+y)*w+x]
				}
			}
		}
	}
	return out
}
