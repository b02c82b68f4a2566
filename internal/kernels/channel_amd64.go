//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func channelAffineAVX512(y, x, scale, shift *float32, rows, c, relu int)

//go:noescape
func channelSumsAVX512(acc, a, b *float32, rows, c int)

//go:noescape
func channelAffine2AVX512(dst, x, dy, k1, k2, k3 *float32, rows, c, accumulate int)

func init() { channelAsm = cpu.X86.HasAVX512F }

//go:noescape
func addToAVX512(dst, src *float32, n int)

//go:noescape
func maxToAVX512(dst, src *float32, n int)

//go:noescape
func maxArgAVX512(dst *float32, arg *int32, src *float32, n int, base int32)

//go:noescape
func gatherCols16AVX512(dst, src *float32, kc, ld int)

//go:noescape
func add3AVX512(dst, a, b *float32, n, relu int)

//go:noescape
func reluMaskAVX512(dy, y *float32, n int)

//go:noescape
func reluMaskAddAVX512(dx, dy, y *float32, n int)

//go:noescape
func reluAVX512(dst, x *float32, n int)

//go:noescape
func gatherRows16AVX512(dst, src *float32, n, stride int)
