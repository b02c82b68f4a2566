package detect

import (
	"errors"
	"fmt"
	"slices"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
)

// GradCAM returns, for each image, the class activation map of the given class: Grad-CAM
// (Selvaraju et al. 2017) at the last layer before global average pooling. For such networks
// the gradient of a class logit with respect to the map is that class's head weight divided
// by the map's area at every position, so Grad-CAM is ReLU(sum_c W[class][c] A_c) (Zhou et
// al.'s CAM), computed here from the map itself. Maps are upsampled to h x w (nearest) and
// scaled to a maximum of 1 (all zero when nothing is positive). With classes nil, each map is
// of the image's predicted class, read from the same map (the head on its mean).
func GradCAM(m models.Model, norm data.Normalization, imgs [][]uint8, classes []int, h, w int) ([][]float32, error) {
	e, ok := m.(models.Embedder)
	if !ok {
		return nil, fmt.Errorf("class activation maps read the last layer: the %s model does not expose it", m.Arch())
	}
	if classes != nil && len(classes) != len(imgs) {
		return nil, fmt.Errorf("%d classes for %d images", len(classes), len(imgs))
	}
	set, err := setOf(imgs, h, w)
	if err != nil {
		return nil, err
	}
	head := e.Head().W.Value // [K][C]
	k, c := head.Dim(0), head.Dim(1)
	out := make([][]float32, 0, len(imgs))
	tp := nn.NewTape(false)
	const chunk = 64
	for s := 0; s < len(imgs); s += chunk {
		idx := make([]int, 0, chunk)
		for i := s; i < min(len(imgs), s+chunk); i++ {
			idx = append(idx, i)
		}
		x, _ := data.Batch(set, idx, norm, data.Augment{}, nil)
		fm := e.FeatureMap(tp, nn.Const(x), false).Value // [n][H'][W'][C]
		tp.Reset()
		fh, fw := fm.Dim(1), fm.Dim(2)
		if fm.Dim(3) != c {
			return nil, fmt.Errorf("the head reads %d channels, the map has %d", c, fm.Dim(3))
		}
		for b, i := range idx {
			var cls int
			if classes != nil {
				cls = classes[i]
			} else {
				cls = predicted(fm.Data[b*fh*fw*c:(b+1)*fh*fw*c], head.Data, e.Head().B.Value.Data, c)
			}
			if cls < 0 || cls >= k {
				return nil, fmt.Errorf("class %d of %d", cls, k)
			}
			wrow := head.Data[cls*c : (cls+1)*c]
			cam := make([]float32, fh*fw)
			var top float32
			for p := range fh * fw {
				a := fm.Data[(b*fh*fw+p)*c : (b*fh*fw+p+1)*c]
				var v float32
				for j, w := range wrow {
					v += w * a[j]
				}
				cam[p] = max(0, v)
				top = max(top, cam[p])
			}
			up := make([]float32, h*w)
			for y := range h {
				for xx := range w {
					v := cam[(y*fh/h)*fw+xx*fw/w]
					if top > 0 {
						v /= top
					}
					up[y*w+xx] = v
				}
			}
			out = append(out, up)
		}
	}
	return out, nil
}

// SaliencyResult says how concentrated a model's class activation maps are on clean and on
// marked inputs, and how much of their mass falls in a region (BadNets' trigger square).
type SaliencyResult struct {
	// Concentration is the mean share of a map's mass in its top 5% of pixels (0.05 for a flat
	// map, near 1 for a single hot spot).
	CleanConcentration  float64 `json:"clean_concentration"`
	MarkedConcentration float64 `json:"marked_concentration"`
	// InRegion is the mean share of a map's mass inside the region, whose share of the image
	// is RegionArea.
	CleanInRegion  float64 `json:"clean_in_region"`
	MarkedInRegion float64 `json:"marked_in_region"`
	RegionArea     float64 `json:"region_area"`
}

// Region is a rectangle of pixels [Y0, Y1) x [X0, X1).
type Region struct{ Y0, Y1, X0, X1 int }

// Saliency compares the class activation maps (of each image's predicted class) on clean and
// marked inputs. A localised trigger draws the maps of marked inputs onto itself; a style
// spread over the whole image does not.
func Saliency(m models.Model, norm data.Normalization, clean, marked [][]uint8, h, w int, region Region) (*SaliencyResult, [][]float32, error) {
	if len(clean) == 0 || len(marked) == 0 {
		return nil, nil, errors.New("saliency needs clean and marked inputs")
	}
	stats := func(imgs [][]uint8) (conc, in float64, maps [][]float32, err error) {
		maps, err = GradCAM(m, norm, imgs, nil, h, w)
		if err != nil {
			return 0, 0, nil, err
		}
		for _, cam := range maps {
			var total, inside float64
			for y := range h {
				for x := range w {
					v := float64(cam[y*w+x])
					total += v
					if y >= region.Y0 && y < region.Y1 && x >= region.X0 && x < region.X1 {
						inside += v
					}
				}
			}
			if total == 0 {
				continue
			}
			sorted := slices.Sorted(slices.Values(cam))
			var topMass float64
			for _, v := range sorted[len(sorted)-max(1, len(sorted)/20):] {
				topMass += float64(v)
			}
			conc += topMass / total / float64(len(maps))
			in += inside / total / float64(len(maps))
		}
		return conc, in, maps, nil
	}
	res := &SaliencyResult{RegionArea: float64((region.Y1-region.Y0)*(region.X1-region.X0)) / float64(h*w)}
	var err error
	if res.CleanConcentration, res.CleanInRegion, _, err = stats(clean); err != nil {
		return nil, nil, err
	}
	var maps [][]float32
	if res.MarkedConcentration, res.MarkedInRegion, maps, err = stats(marked); err != nil {
		return nil, nil, err
	}
	return res, maps, nil
}

// predicted is the top class of the head (weights w [K][C], bias b) on the mean over
// positions of one image's map a ([H'W'][C]).
func predicted(a, w, b []float32, c int) int {
	pooled := make([]float32, c)
	n := float32(len(a) / c)
	for p := 0; p < len(a); p += c {
		for j := range c {
			pooled[j] += a[p+j] / n
		}
	}
	logits := make([]float32, len(b))
	for k := range logits {
		logits[k] = b[k]
		for j, v := range pooled {
			logits[k] += w[k*c+j] * v
		}
	}
	return classifier.Top1(logits)
}

// setOf holds RGB images of h x w as an unlabelled set.
func setOf(imgs [][]uint8, h, w int) (*data.Set, error) {
	set := &data.Set{H: h, W: w}
	for _, p := range imgs {
		if len(p) != h*w*3 {
			return nil, fmt.Errorf("an image has %d bytes, %dx%d RGB needs %d", len(p), h, w, h*w*3)
		}
		set.Pixels = append(set.Pixels, p...)
		set.Labels = append(set.Labels, 0)
	}
	return set, nil
}

// Overlay draws a map over an image in red (for pictures in reports): each pixel is blended
// towards pure red in proportion to the map.
func Overlay(img []uint8, cam []float32) []uint8 {
	out := make([]uint8, len(img))
	for p, v := range cam {
		a := 0.7 * float64(v)
		for c := range 3 {
			target := 0.0
			if c == 0 {
				target = 255
			}
			out[p*3+c] = uint8((1-a)*float64(img[p*3+c]) + a*target + 0.5)
		}
	}
	return out
}
