package kernels

// Per-channel elementwise kernels over NHWC rows (the batch-norm passes): x is rows x c,
// row-major, and the per-channel vectors have c values. The assembly versions need c to be a
// multiple of 16; other widths, and the "go" kernel, use the loops below.

var channelAsm = false // set by the amd64 init when AVX-512 is in use

func useChannelAsm(c int) bool { return channelAsm && kernelName == "avx512" && c%16 == 0 }

// ChannelAffine writes y = x·scale + shift per channel, then max(y, 0) when relu.
func ChannelAffine(y, x, scale, shift []float32, c int, relu bool) {
	rows := len(x) / c
	if rows == 0 {
		return
	}
	_ = y[rows*c-1]
	if useChannelAsm(c) {
		channelAffineAVX512(&y[0], &x[0], &scale[0], &shift[0], rows, c, b2i(relu))
		return
	}
	for r := range rows {
		xr, yr := x[r*c:(r+1)*c], y[r*c:(r+1)*c]
		for j := range xr {
			v := xr[j]*scale[j] + shift[j]
			if relu && v < 0 {
				v = 0
			}
			yr[j] = v
		}
	}
}

// ChannelSums adds Σ_r a[r][j] to acc[j] and Σ_r a[r][j]·b[r][j] to acc[c+j], in float32:
// callers keep the row count per call small and sum the results in float64.
func ChannelSums(acc, a, b []float32, c int) {
	rows := len(a) / c
	if rows == 0 {
		return
	}
	_ = b[rows*c-1]
	_ = acc[2*c-1]
	if useChannelAsm(c) {
		channelSumsAVX512(&acc[0], &a[0], &b[0], rows, c)
		return
	}
	for r := range rows {
		ar, br := a[r*c:(r+1)*c], b[r*c:(r+1)*c]
		for j := range ar {
			acc[j] += ar[j]
			acc[c+j] += ar[j] * br[j]
		}
	}
}

// ChannelAffine2 writes (or, with accumulate, adds) dst = k1·dy + k2·x + k3 per channel.
func ChannelAffine2(dst, x, dy, k1, k2, k3 []float32, c int, accumulate bool) {
	rows := len(x) / c
	if rows == 0 {
		return
	}
	_ = dst[rows*c-1]
	_ = dy[rows*c-1]
	if useChannelAsm(c) {
		channelAffine2AVX512(&dst[0], &x[0], &dy[0], &k1[0], &k2[0], &k3[0], rows, c, b2i(accumulate))
		return
	}
	for r := range rows {
		xr, dr, or := x[r*c:(r+1)*c], dy[r*c:(r+1)*c], dst[r*c:(r+1)*c]
		for j := range xr {
			v := k1[j]*dr[j] + k2[j]*xr[j] + k3[j]
			if accumulate {
				v += or[j]
			}
			or[j] = v
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
