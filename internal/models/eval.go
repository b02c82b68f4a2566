package models

import (
	"move/internal/nn"
	"move/internal/parallel"
	"move/internal/tensor"
)

// evalChunk is the number of images one worker runs through the whole network at a time in
// Eval; evalMaxPixels is the largest image (H·W) Eval splits a batch for. Eight 32x32 images
// of a CIFAR ResNet's widest layer (16 channels) take 512 KiB, which stays in a core's L2
// cache from one layer to the next; running the batch layer by layer instead streams every
// activation of a 256-image batch (16 MiB) through memory, and inference ran 1.4-1.5x slower
// that way (resnet20 and wrn16-1, batch 256, 2 cores). At 224 pixels one image's activations
// outgrow the cache and the split gains nothing, so large images run layer by layer.
const (
	evalChunk     = 8
	evalMaxPixels = 64 * 64
)

// Eval maps an NHWC batch x to new logits [N][Classes] in evaluation mode: the values of
// m.Forward(tape, x, false), computed image-chunk by image-chunk on every worker when the
// images are small (see evalChunk). In evaluation mode every image's logits depend on that
// image alone, so the split changes no value. m must be safe for concurrent evaluation-mode
// passes (every model in this package and imported ONNX graphs are: a pass only reads the
// weights).
func Eval(m Model, x *tensor.Tensor) *tensor.Tensor {
	n := x.Dim(0)
	if n <= evalChunk || x.Dim(1)*x.Dim(2) > evalMaxPixels {
		return m.Forward(nil, nn.Const(x), false).Value
	}
	per, k := len(x.Data)/n, m.Classes()
	out := tensor.New(n, k)
	parallel.For((n+evalChunk-1)/evalChunk, func(lo, hi, _ int) {
		tp := nn.NewTape(false)
		for c := lo; c < hi; c++ {
			b0, b1 := c*evalChunk, min(n, (c+1)*evalChunk)
			xs := tensor.From(x.Data[b0*per:b1*per], append([]int{b1 - b0}, x.Shape[1:]...)...)
			copy(out.Data[b0*k:b1*k], m.Forward(tp, nn.Const(xs), false).Data())
			tp.Reset()
		}
	})
	return out
}
