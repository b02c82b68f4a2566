package detect

import (
	"math"
	"testing"

	"move/internal/data"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
)

// For a network that pools its last map globally before a linear head, GradCAM's closed form
// equals Grad-CAM from autodiff: the class score's gradient with respect to the map (through
// the pooling), averaged over positions, weighting the map's channels.
func TestGradCAMMatchesAutodiff(t *testing.T) {
	for _, arch := range []string{"resnet20", "vgg11-bn"} {
		m, _ := models.New(arch, 4, 2)
		set := data.Synthetic(3, 4, 32, 5)
		norm := data.Stats(set)
		var imgs [][]uint8
		for i := range 3 {
			imgs = append(imgs, set.Image(i))
		}
		classes := []int{0, 2, 3}
		got, err := GradCAM(m, norm, imgs, classes, 32, 32)
		if err != nil {
			t.Fatal(err)
		}
		e := m.(models.Embedder)
		x, _ := data.Batch(set, []int{0, 1, 2}, norm, data.Augment{}, nil)
		tp := nn.NewTape(true)
		a := e.FeatureMap(tp, nn.Const(x), false)
		pooled := nn.GlobalAvgPool(tp, a)
		logits := e.Head().Apply(tp, pooled)
		onehot := tensor.New(3, 4)
		for i, c := range classes {
			onehot.Data[i*4+c] = 1
		}
		score := nn.Mean(tp, nn.Binary(tp, "Mul", logits, nn.Const(onehot)))
		if err := tp.Backward(score); err != nil {
			t.Fatal(err)
		}
		fh, fw, ch := a.Shape()[1], a.Shape()[2], a.Shape()[3]
		for i := range 3 {
			// dscore/dA at every position is dscore/dpooled / (H'W') through the average
			// pooling. (The map's own Grad is not read: the fused ReLU that makes the map
			// leaves its input's gradient there, zero where the map is.)
			alpha := make([]float64, ch)
			for c := range ch {
				alpha[c] = float64(pooled.Grad.Data[i*ch+c]) / float64(fh*fw)
			}
			cam := make([]float64, fh*fw)
			var top float64
			for p := range fh * fw {
				for c := range ch {
					cam[p] += alpha[c] * float64(a.Value.Data[(i*fh*fw+p)*ch+c])
				}
				cam[p] = math.Max(0, cam[p])
				top = math.Max(top, cam[p])
			}
			for y := range 32 {
				for xx := range 32 {
					want := cam[(y*fh/32)*fw+xx*fw/32] / top
					if d := math.Abs(float64(got[i][y*32+xx]) - want); d > 1e-4 {
						t.Fatalf("%s image %d pixel (%d,%d): %g, autodiff Grad-CAM %g", arch, i, xx, y, got[i][y*32+xx], want)
					}
				}
			}
		}
	}
}

// A map all in one square has its mass there; Saliency measures shares of mass.
func TestSaliencyShares(t *testing.T) {
	m, _ := models.New("resnet20", 4, 2)
	set := data.Synthetic(4, 4, 32, 5)
	var imgs [][]uint8
	for i := range 4 {
		imgs = append(imgs, set.Image(i))
	}
	res, maps, err := Saliency(m, data.Stats(set), imgs, imgs, 32, 32, Region{Y0: 0, Y1: 32, X0: 0, X1: 32})
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 4 || math.Abs(res.CleanInRegion-1) > 1e-9 || res.RegionArea != 1 {
		t.Fatalf("a region that is the whole image holds %g of the mass (area %g)", res.CleanInRegion, res.RegionArea)
	}
	if res.CleanConcentration < 0.05-1e-9 || res.CleanConcentration > 1 || res.CleanConcentration != res.MarkedConcentration {
		t.Fatalf("concentration %g / %g", res.CleanConcentration, res.MarkedConcentration)
	}
	o := Overlay(imgs[0], maps[0])
	if len(o) != len(imgs[0]) {
		t.Fatal("overlay size")
	}
}

// Without classes, each map is of the class the model predicts.
func TestGradCAMPredictedClass(t *testing.T) {
	m, _ := models.New("resnet20", 4, 2)
	set := data.Synthetic(5, 4, 32, 6)
	norm := data.Stats(set)
	var imgs [][]uint8
	for i := range 5 {
		imgs = append(imgs, set.Image(i))
	}
	x, _ := data.Batch(set, []int{0, 1, 2, 3, 4}, norm, data.Augment{}, nil)
	lg := m.Forward(nil, nn.Const(x), false).Value
	var pred []int
	for i := range 5 {
		best := 0
		for j := range 4 {
			if lg.Data[i*4+j] > lg.Data[i*4+best] {
				best = j
			}
		}
		pred = append(pred, best)
	}
	want, _ := GradCAM(m, norm, imgs, pred, 32, 32)
	got, err := GradCAM(m, norm, imgs, nil, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		for p := range got[i] {
			if math.Abs(float64(got[i][p]-want[i][p])) > 1e-6 {
				t.Fatalf("image %d: the predicted class's map differs at %d", i, p)
			}
		}
	}
}
