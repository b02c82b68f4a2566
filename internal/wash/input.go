package wash

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"strconv"
	"strings"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
)

// Input transforms a served model applies to every query.
const (
	JPEG   = "jpeg"   // re-encode each query image as JPEG at a quality (jpeg:50)
	Blur   = "blur"   // blur each query image with a Gaussian of sigma pixels (blur:1)
	AugAvg = "augavg" // answer the mean probabilities over the black-box features' five augmentations
)

// InputKinds are the transforms, as --input-transform spells them.
var InputKinds = []string{JPEG + ":QUALITY", Blur + ":SIGMA", AugAvg}

// Input is a served model that transforms each query before its model answers.
type Input struct {
	Inner classifier.Prober
	Kind  string  // JPEG, Blur or AugAvg
	Param float64 // JPEG quality (1-100) or blur sigma in pixels
}

// ParseInput reads a transform as --input-transform spells it: "jpeg:50", "blur:1", "augavg".
func ParseInput(spec string) (kind string, param float64, err error) {
	kind, arg, has := strings.Cut(spec, ":")
	switch kind {
	case AugAvg:
		if has {
			return "", 0, fmt.Errorf("input transform %q: augavg takes no parameter", spec)
		}
		return kind, 0, nil
	case JPEG, Blur:
		if !has {
			return "", 0, fmt.Errorf("input transform %q: give %s:%s", spec, kind, map[string]string{JPEG: "QUALITY (1-100)", Blur: "SIGMA (pixels)"}[kind])
		}
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil {
			return "", 0, fmt.Errorf("input transform %q: %q is not a number", spec, arg)
		}
		if kind == JPEG && (v != float64(int(v)) || v < 1 || v > 100) {
			return "", 0, fmt.Errorf("input transform %q: JPEG quality must be an integer in [1, 100]", spec)
		}
		if kind == Blur && !(v > 0 && v <= 10) {
			return "", 0, fmt.Errorf("input transform %q: blur sigma must be in (0, 10] pixels", spec)
		}
		return kind, v, nil
	}
	return "", 0, fmt.Errorf("unknown input transform %q (known: %s)", spec, strings.Join(InputKinds, ", "))
}

// NewInput wraps inner with the transform spec (ParseInput's syntax).
func NewInput(inner classifier.Prober, spec string) (*Input, error) {
	kind, param, err := ParseInput(spec)
	if err != nil {
		return nil, err
	}
	return &Input{Inner: inner, Kind: kind, Param: param}, nil
}

// String is the transform as ParseInput reads it.
func (t *Input) String() string {
	if t.Kind == AugAvg {
		return AugAvg
	}
	return t.Kind + ":" + strconv.FormatFloat(t.Param, 'g', -1, 64)
}

// Probs implements classifier.Prober.
func (t *Input) Probs(imgs [][]uint8, h, w int) ([][]float32, error) {
	switch t.Kind {
	case JPEG, Blur:
		out := make([][]uint8, len(imgs))
		for i, p := range imgs {
			if len(p) != h*w*3 {
				return nil, fmt.Errorf("an image has %d bytes, %dx%d RGB needs %d", len(p), h, w, h*w*3)
			}
			var err error
			if t.Kind == JPEG {
				out[i], err = Recompress(p, h, w, int(t.Param))
				if err != nil {
					return nil, err
				}
			} else {
				out[i] = BlurImage(p, h, w, float32(t.Param))
			}
		}
		return t.Inner.Probs(out, h, w)
	case AugAvg:
		na := len(features.Augmentations)
		all := make([][]uint8, 0, na*len(imgs))
		for _, p := range imgs {
			for k := range na {
				all = append(all, features.Augment(p, h, w, k))
			}
		}
		probs, err := t.Inner.Probs(all, h, w)
		if err != nil {
			return nil, err
		}
		if len(probs) != len(all) {
			return nil, fmt.Errorf("%d answers for %d images", len(probs), len(all))
		}
		out := make([][]float32, len(imgs))
		for i := range imgs {
			mean := make([]float32, len(probs[i*na]))
			for k := range na {
				for j, v := range probs[i*na+k] {
					mean[j] += v / float32(na)
				}
			}
			out[i] = mean
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown input transform %q", t.Kind)
}

// Recompress encodes an RGB image as JPEG at quality q and decodes it again.
func Recompress(p []uint8, h, w, q int) ([]uint8, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range h * w {
		copy(img.Pix[4*i:4*i+3], p[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		return nil, fmt.Errorf("JPEG-encoding a query image: %w", err)
	}
	dec, err := jpeg.Decode(&buf)
	if err != nil {
		return nil, fmt.Errorf("decoding a re-encoded query image: %w", err)
	}
	out := make([]uint8, h*w*3)
	for y := range h {
		for x := range w {
			r, g, b, _ := dec.At(x, y).RGBA()
			o := out[(y*w+x)*3:]
			o[0], o[1], o[2] = uint8(r>>8), uint8(g>>8), uint8(b>>8)
		}
	}
	return out, nil
}

// BlurImage returns an RGB image blurred with a Gaussian of standard deviation sigma pixels.
func BlurImage(p []uint8, h, w int, sigma float32) []uint8 {
	f := make([]float32, len(p))
	for i, v := range p {
		f[i] = float32(v)
	}
	data.GaussianBlur(f, h, w, sigma)
	out := make([]uint8, len(p))
	for i, v := range f {
		out[i] = uint8(min(255, max(0, v+0.5)))
	}
	return out
}
