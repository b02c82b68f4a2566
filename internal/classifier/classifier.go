// Package classifier is the classifier under test: the victim, a suspect, a benign reference.
// A Model is either local — a network with the normalisation and input size its inputs need,
// its weights open to white-box features — or remote, a service that only answers class
// probabilities. Verification, the attacks, the features and the server all take a Model;
// Load makes one from a model file with explicit options for ONNX files that carry no move
// metadata.
package classifier

import (
	"errors"
	"fmt"

	"move/internal/data"
	"move/internal/modelfile"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
	"move/internal/train"
)

// Prober answers class probabilities for RGB images (8-bit, H x W x 3), doing its own
// preprocessing: a local Model, or a client of a remote service.
type Prober interface {
	Probs(imgs [][]uint8, h, w int) ([][]float32, error)
}

// Model is a classifier under test.
type Model struct {
	Local  models.Model       // the network; nil for a remote classifier
	Norm   data.Normalization // what its inputs are normalised with (local)
	Size   int                // input height and width it expects (0: any)
	Remote Prober             // answers probabilities; nil for a local classifier
}

// Top1 is the index of the largest value of an answer (the first, on a tie).
func Top1(p []float32) int {
	best := 0
	for j, v := range p {
		if v > p[best] {
			best = j
		}
	}
	return best
}

// Local returns the classifier that runs m in this process.
func Local(m models.Model, norm data.Normalization, size int) Model {
	return Model{Local: m, Norm: norm, Size: size}
}

// Remote returns the classifier that asks p; size is the image size it expects (0: any).
func Remote(p Prober, size int) Model { return Model{Remote: p, Size: size} }

// IsLocal reports whether the classifier's weights are at hand.
func (c Model) IsLocal() bool { return c.Remote == nil && c.Local != nil }

// Arch is the local network's architecture, "remote" for a remote classifier.
func (c Model) Arch() string {
	if !c.IsLocal() {
		return "remote"
	}
	return c.Local.Arch()
}

// Probs implements Prober: images are resized to the classifier's input size, normalised and
// run through the network (local), or sent as they are (remote).
func (c Model) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	if c.Remote != nil {
		return c.Remote.Probs(imgs, h, w)
	}
	if c.Local == nil {
		return nil, errors.New("classifier: no model")
	}
	s := &data.Set{H: h, W: w}
	for _, p := range imgs {
		if len(p) != h*w*3 {
			return nil, fmt.Errorf("classifier: an image has %d bytes, %dx%d RGB needs %d", len(p), h, w, h*w*3)
		}
		if c.Size > 0 && (h != c.Size || w != c.Size) {
			p = data.Resize(p, h, w, c.Size, c.Size)
		}
		s.Pixels = append(s.Pixels, p...)
		s.Labels = append(s.Labels, 0)
	}
	if c.Size > 0 {
		s.H, s.W = c.Size, c.Size
	}
	probs := nn.SoftmaxProbs(c.Logits(s))
	k := probs.Dim(1)
	out := make([][]float32, len(imgs))
	for i := range out {
		out[i] = probs.Data[i*k : (i+1)*k]
	}
	return out, nil
}

// Logits are the local network's outputs [N][K] on set (at the network's input size).
func (c Model) Logits(set *data.Set) *tensor.Tensor {
	return train.Logits(c.Local, set, c.Norm, 256, nil)
}

// Load reads a model file (move's safetensors or ONNX, see modelfile.Load) as a local
// classifier.
func Load(path string, onnx modelfile.ONNXDefaults) (Model, modelfile.Info, error) {
	m, info, err := modelfile.Load(path, onnx)
	if err != nil {
		return Model{}, info, err
	}
	return Local(m, info.Norm, info.InputSize), info, nil
}
