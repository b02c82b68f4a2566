package kernels

// Elementwise kernels over float32 slices of equal length (AVX-512 for the bulk, Go for the
// tail and on other CPUs).

func useVecAsm() bool { return channelAsm && kernelName == "avx512" }

// AddTo does dst += src.
func AddTo(dst, src []float32) {
	n := len(dst)
	src = src[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		addToAVX512(&dst[0], &src[0], i)
	}
	for ; i < n; i++ {
		dst[i] += src[i]
	}
}

// MaxTo does dst = src where src > dst (elementwise): dst keeps its value on ties and where
// src is NaN, as a running maximum that keeps the first of equal values does.
func MaxTo(dst, src []float32) {
	n := len(dst)
	src = src[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		maxToAVX512(&dst[0], &src[0], i)
	}
	for ; i < n; i++ {
		if src[i] > dst[i] {
			dst[i] = src[i]
		}
	}
}

// MaxArgTo does, where src[i] > dst[i], dst[i] = src[i] and arg[i] = base + i: a running
// maximum that keeps the first of equal values (and skips NaNs) and where it came from.
func MaxArgTo(dst []float32, arg []int32, src []float32, base int32) {
	n := len(dst)
	arg, src = arg[:n], src[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		maxArgAVX512(&dst[0], &arg[0], &src[0], i, base)
	}
	for ; i < n; i++ {
		if src[i] > dst[i] {
			dst[i], arg[i] = src[i], base+int32(i)
		}
	}
}

// Add3 writes dst = a + b, or max(a+b, 0) when relu.
func Add3(dst, a, b []float32, relu bool) {
	n := len(dst)
	a, b = a[:n], b[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		add3AVX512(&dst[0], &a[0], &b[0], i, b2i(relu))
	}
	for ; i < n; i++ {
		v := a[i] + b[i]
		if relu && v < 0 {
			v = 0
		}
		dst[i] = v
	}
}

// ReluMask zeroes dy where y <= 0 (the gradient through a ReLU whose output is y), in place.
func ReluMask(dy, y []float32) {
	n := len(dy)
	y = y[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		reluMaskAVX512(&dy[0], &y[0], i)
	}
	for ; i < n; i++ {
		if y[i] <= 0 {
			dy[i] = 0
		}
	}
}

// ReluMaskAdd does dx += dy where y > 0.
func ReluMaskAdd(dx, dy, y []float32) {
	n := len(dx)
	dy, y = dy[:n], y[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		reluMaskAddAVX512(&dx[0], &dy[0], &y[0], i)
	}
	for ; i < n; i++ {
		if y[i] > 0 {
			dx[i] += dy[i]
		}
	}
}

// Relu writes dst = max(x, 0).
func Relu(dst, x []float32) {
	n := len(dst)
	x = x[:n]
	i := 0
	if useVecAsm() && n >= 16 {
		i = n &^ 15
		reluAVX512(&dst[0], &x[0], i)
	}
	for ; i < n; i++ {
		dst[i] = max(x[i], 0)
	}
}
