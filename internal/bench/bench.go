// Package bench measures the engine on the workloads that matter to move, the same ones as
// ../shared/peer/torch_bench.py: training steps, inference, and one-image weight gradients
// (the cost of a white-box feature), plus GEMM throughput on the convolution shapes.
package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"time"

	"move/internal/classifier"
	"move/internal/data"
	"move/internal/features"
	"move/internal/kernels"
	"move/internal/models"
	"move/internal/nn"
	"move/internal/tensor"
	"move/internal/verify"
	"move/internal/watermark"
)

// ModelResult holds one architecture's figures.
type ModelResult struct {
	Model     string  `json:"model"`
	Size      int     `json:"size"` // image side, pixels
	Params    int     `json:"params"`
	TrainImgS float64 `json:"train_img_per_s"`
	InferImgS float64 `json:"infer_img_per_s"`
	// Grad1Ms is the cost of one image's cross-entropy gradient with respect to every weight,
	// as the white-box features compute them: per-example gradients from batched passes
	// (Grad1Batch images each; nn.Tape.PerExample). Grad1LoopMs is the same from one pass per
	// image (batch 1), the way torch_bench.py's grad1 loop computes it.
	Grad1Ms     float64 `json:"grad1_ms_per_img"`
	Grad1LoopMs float64 `json:"grad1_loop_ms_per_img"`
	Grad1Batch  int     `json:"grad1_batch"`
	// FeatureMs is the cost of one key image's white-box features, per layout (features.Layouts),
	// in milliseconds: what a meta-classifier's training and a verification pay per image and
	// per view (a key with control styles reads 1 + controls views).
	FeatureMs  map[string]float64 `json:"feature_ms_per_img,omitempty"`
	TrainBatch int                `json:"train_batch"`
	InferBatch int                `json:"infer_batch"`
}

// GemmResult is the throughput of one GEMM shape.
type GemmResult struct {
	Name   string  `json:"name"`
	M      int     `json:"m"`
	N      int     `json:"n"`
	K      int     `json:"k"`
	GFLOPS float64 `json:"gflops"`
}

// Report is everything `move bench` prints.
type Report struct {
	Kernel  string        `json:"kernel"`
	Threads int           `json:"threads"`
	Models  []ModelResult `json:"models"`
	Gemm    []GemmResult  `json:"gemm"`
}

// rate runs fn twice to warm up, then repeatedly for about seconds, and returns items per
// second from the median time of one call (as torch_bench.py does).
func rate(fn func(), items int, seconds float64) float64 {
	fn()
	fn()
	var times []float64
	start := time.Now()
	for time.Since(start).Seconds() < seconds || len(times) < 3 {
		t := time.Now()
		fn()
		times = append(times, time.Since(t).Seconds())
	}
	sort.Float64s(times)
	return float64(items) / times[len(times)/2]
}

func randBatch(r *rand.Rand, n, size int) (*tensor.Tensor, []int) {
	x := tensor.New(n, size, size, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	y := make([]int, n)
	for i := range y {
		y[i] = r.IntN(10)
	}
	return x, y
}

// Batches are the training and inference batch sizes at an image size: torch_bench.py's 128
// and 256 on CIFAR-sized images, 16 and 32 above 64 pixels (scripts/peer_bench.py uses the
// same), so that one step fits in memory and a few seconds.
func Batches(size int) (train, infer int) {
	if size > 64 {
		return 16, 32
	}
	return 128, 256
}

// Model measures one architecture on size x size images.
func Model(arch string, seconds float64, size int) (ModelResult, error) {
	m, err := models.New(arch, 10, 0)
	if err != nil {
		return ModelResult{}, err
	}
	if size < 8 {
		return ModelResult{}, fmt.Errorf("benchmark images of %d pixels: want at least 8", size)
	}
	r := rand.New(rand.NewPCG(0, 0))
	tb, ib := Batches(size)
	res := ModelResult{Model: arch, Size: size, Params: m.Store().NumParams(), TrainBatch: tb, InferBatch: ib}
	xb, yb := randBatch(r, tb, size)
	xi, _ := randBatch(r, ib, size)
	x1, y1 := randBatch(r, 1, size)
	params := m.Store().Params()
	opt := &nn.SGD{Momentum: 0.9, WeightDecay: 5e-4}
	tp := nn.NewTape(true)
	step := func(x *tensor.Tensor, y []int, train bool) {
		m.Store().ZeroGrad()
		loss := nn.CrossEntropy(tp, m.Forward(tp, nn.Const(x), train), y)
		if err := tp.Backward(loss); err != nil {
			panic(err)
		}
		tp.Reset()
	}
	res.TrainImgS = rate(func() { step(xb, yb, true); opt.Step(params, 0.01) }, tb, seconds)
	res.InferImgS = rate(func() { models.Eval(m, xi) }, ib, seconds)
	res.Grad1LoopMs = 1000 / rate(func() { step(x1, y1, false) }, 1, seconds)
	res.Grad1Batch = features.ExampleBatch(m)
	xg, yg := randBatch(r, res.Grad1Batch, size)
	pe := nn.NewTape(true)
	pe.PerExample(true)
	res.Grad1Ms = 1000 / rate(func() {
		m.Store().ZeroGrad()
		if err := pe.Backward(nn.CrossEntropy(pe, m.Forward(pe, nn.Const(xg), false), yg)); err != nil {
			panic(err)
		}
		pe.Reset()
	}, res.Grad1Batch, seconds)
	if res.FeatureMs, err = featureCosts(m, r, seconds, size); err != nil {
		return res, err
	}
	return res, nil
}

// featureCosts times the white-box features of every layout on a batch of generated key
// images of size x size (32 of them; 4 above 64 pixels).
func featureCosts(m models.Model, r *rand.Rand, seconds float64, size int) (map[string]float64, error) {
	n := 32
	if size > 64 {
		n = 4
	}
	pairs := make([]watermark.Pair, n)
	for i := range pairs {
		p := watermark.Pair{H: size, W: size, Label: r.IntN(m.Classes()), Orig: make([]uint8, size*size*3), Styled: make([]uint8, size*size*3)}
		for j := range p.Orig {
			p.Orig[j], p.Styled[j] = uint8(r.IntN(256)), uint8(r.IntN(256))
		}
		pairs[i] = p
	}
	c := classifier.Local(m, data.Normalization{Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25}}, size)
	out := map[string]float64{}
	for _, l := range features.Layouts {
		var ferr error
		per := rate(func() {
			if _, err := verify.Features(features.White, l, c, pairs); err != nil {
				ferr = err
			}
		}, n, seconds/float64(len(features.Layouts)))
		if ferr != nil {
			return nil, fmt.Errorf("%s features: %w", l, ferr)
		}
		out[l] = 1000 / per
	}
	// The similarity family (features.GradSimilarity) reads full-resolution unit input
	// gradients, one backward pass per batch.
	x := tensor.New(n, size, size, 3)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	labels := make([]int, n)
	for i := range labels {
		labels[i] = r.IntN(m.Classes())
	}
	var ferr error
	per := rate(func() {
		if _, err := features.UnitInputGradients(m, x, labels); err != nil {
			ferr = err
		}
	}, n, seconds/float64(len(features.Layouts)))
	if ferr != nil {
		return nil, fmt.Errorf("%s features: %w", features.GradSimilarity, ferr)
	}
	out[features.GradSimilarity] = 1000 / per
	// style-gain-top reads answers only: each key image's owner-styled version and two
	// control-styled ones in each of the augmentations its gains average over, one forward
	// pass each.
	imgs := make([][]uint8, 0, 3*verify.GainTopAugs*n)
	for _, p := range pairs {
		for a := range verify.GainTopAugs {
			for _, im := range [][]uint8{p.Styled, p.Orig, p.Styled} {
				imgs = append(imgs, features.Augment(im, size, size, a))
			}
		}
	}
	per = rate(func() {
		if _, err := c.Probs(imgs, size, size); err != nil {
			ferr = err
		}
	}, n, seconds/float64(len(features.Layouts)))
	if ferr != nil {
		return nil, fmt.Errorf("%s: %w", features.GainTop, ferr)
	}
	out[features.GainTop] = 1000 / per
	return out, nil
}

// Gemm measures the GEMM shapes of resnet20's convolutions at batch 128 and batch 1.
func Gemm(seconds float64) []GemmResult {
	shapes := []GemmResult{
		{Name: "conv16 b128", M: 131072, N: 16, K: 144},
		{Name: "conv32 b128", M: 32768, N: 32, K: 288},
		{Name: "conv64 b128", M: 8192, N: 64, K: 576},
		{Name: "conv16 b1", M: 1024, N: 16, K: 144},
		{Name: "conv64 b1", M: 64, N: 64, K: 576},
	}
	r := rand.New(rand.NewPCG(0, 0))
	for i, s := range shapes {
		a, b, c := make([]float32, s.M*s.K), make([]float32, s.K*s.N), make([]float32, s.M*s.N)
		for j := range a {
			a[j] = r.Float32()
		}
		for j := range b {
			b[j] = r.Float32()
		}
		per := rate(func() { kernels.Gemm(false, false, s.M, s.N, s.K, 1, a, s.K, b, s.N, 0, c, s.N) }, 1, seconds/float64(len(shapes)))
		shapes[i].GFLOPS = per * float64(2*s.M*s.N*s.K) / 1e9
	}
	return shapes
}

// Run measures the given architectures on size x size images, and the GEMM shapes.
func Run(archs []string, seconds float64, size int) (Report, error) {
	rep := Report{Kernel: kernels.Kernel(), Threads: runtime.GOMAXPROCS(0)}
	for _, a := range archs {
		mr, err := Model(a, seconds, size)
		if err != nil {
			return rep, fmt.Errorf("benchmark %s: %w", a, err)
		}
		rep.Models = append(rep.Models, mr)
	}
	rep.Gemm = Gemm(seconds)
	return rep, nil
}
