//go:build amd64 && !purego

#include "textflag.h"

// func channelAffineAVX512(y, x, scale, shift *float32, rows, c, relu int)
TEXT ·channelAffineAVX512(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ scale+16(FP), R8
	MOVQ shift+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ c+40(FP), R12
	SHLQ $2, R12
	MOVQ relu+48(FP), R11
	VPXORD Z31, Z31, Z31
arow:
	XORQ AX, AX
acol:
	VMOVUPS (SI)(AX*1), Z0
	VMOVUPS (R8)(AX*1), Z1
	VFMADD213PS (R9)(AX*1), Z1, Z0
	TESTQ R11, R11
	JEQ astore
	VMAXPS Z31, Z0, Z0
astore:
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R12
	JLT acol
	ADDQ R12, SI
	ADDQ R12, DI
	DECQ CX
	JNZ arow
	VZEROUPPER
	RET

// func channelSumsAVX512(acc, a, b *float32, rows, c int)
// acc[0:c] += Σ a, acc[c:2c] += Σ a·b, one 16-channel group at a time over all rows.
TEXT ·channelSumsAVX512(SB), NOSPLIT, $0-40
	MOVQ acc+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ c+32(FP), R12
	SHLQ $2, R12
	XORQ AX, AX
sgroup:
	VMOVUPS (DI)(AX*1), Z0
	LEAQ (DI)(R12*1), R9
	VMOVUPS (R9)(AX*1), Z1
	MOVQ rows+24(FP), CX
	LEAQ (SI)(AX*1), R10
	LEAQ (DX)(AX*1), R11
srow:
	VMOVUPS (R10), Z2
	VADDPS Z2, Z0, Z0
	VFMADD231PS (R11), Z2, Z1
	ADDQ R12, R10
	ADDQ R12, R11
	DECQ CX
	JNZ srow
	VMOVUPS Z0, (DI)(AX*1)
	VMOVUPS Z1, (R9)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R12
	JLT sgroup
	VZEROUPPER
	RET

// func channelAffine2AVX512(dst, x, dy, k1, k2, k3 *float32, rows, c, accumulate int)
TEXT ·channelAffine2AVX512(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ k1+24(FP), R8
	MOVQ k2+32(FP), R9
	MOVQ k3+40(FP), R10
	MOVQ rows+48(FP), CX
	MOVQ c+56(FP), R12
	SHLQ $2, R12
	MOVQ accumulate+64(FP), R11
brow:
	XORQ AX, AX
bcol:
	VMOVUPS (DX)(AX*1), Z0
	VMULPS (R8)(AX*1), Z0, Z0
	VMOVUPS (SI)(AX*1), Z1
	VFMADD231PS (R9)(AX*1), Z1, Z0
	VADDPS (R10)(AX*1), Z0, Z0
	TESTQ R11, R11
	JEQ bstore
	VADDPS (DI)(AX*1), Z0, Z0
bstore:
	VMOVUPS Z0, (DI)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R12
	JLT bcol
	ADDQ R12, SI
	ADDQ R12, DX
	ADDQ R12, DI
	DECQ CX
	JNZ brow
	VZEROUPPER
	RET
