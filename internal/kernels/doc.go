// Package kernels holds the dense float32 compute kernels under the engine: a packed, blocked
// matrix multiply (GEMM) with AVX-512 and AVX2 micro-kernels in assembly and a pure-Go fallback
// chosen at run time, and the im2col/col2im convolution kernels built on it (NHWC layout).
//
// All matrices are row-major. C = alpha*op(A)*op(B) + beta*C, where op transposes when asked.
package kernels

//go:generate go run ./asmgen
