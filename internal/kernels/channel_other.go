//go:build !amd64 || purego

package kernels

func channelAffineAVX512(y, x, scale, shift *float32, rows, c, relu int) { panic("unreachable") }
func channelSumsAVX512(acc, a, b *float32, rows, c int)                  { panic("unreachable") }
func channelAffine2AVX512(dst, x, dy, k1, k2, k3 *float32, rows, c, accumulate int) {
	panic("unreachable")
}

func addToAVX512(dst, src *float32, n int)             { panic("unreachable") }
func add3AVX512(dst, a, b *float32, n, relu int)       { panic("unreachable") }
func maxToAVX512(dst, src *float32, n int)             { panic("unreachable") }
func gatherCols16AVX512(dst, src *float32, kc, ld int) { panic("unreachable") }
func maxArgAVX512(dst *float32, arg *int32, src *float32, n int, base int32) {
	panic("unreachable")
}
func reluMaskAVX512(dy, y *float32, n int)                { panic("unreachable") }
func reluMaskAddAVX512(dx, dy, y *float32, n int)         { panic("unreachable") }
func reluAVX512(dst, x *float32, n int)                   { panic("unreachable") }
func gatherRows16AVX512(dst, src *float32, n, stride int) { panic("unreachable") }
