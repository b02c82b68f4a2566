//go:build amd64 && !purego

#include "textflag.h"

// Each routine handles n elements, n a positive multiple of 16.

// func addToAVX512(dst, src *float32, n int)
TEXT ·addToAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
addloop:
	VMOVUPS (SI), Z0
	VADDPS (DI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ addloop
	VZEROUPPER
	RET

// func maxToAVX512(dst, src *float32, n int)
// MAXPS returns its first source where it is greater, its second otherwise (NaN and ties
// included): first = src, second = dst.
TEXT ·maxToAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
maxloop:
	VMOVUPS (SI), Z0
	VMAXPS (DI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ maxloop
	VZEROUPPER
	RET

// lanes is 0, 1, ..., 15: the offsets of a vector's elements.
DATA lanes<>+0(SB)/4, $0
DATA lanes<>+4(SB)/4, $1
DATA lanes<>+8(SB)/4, $2
DATA lanes<>+12(SB)/4, $3
DATA lanes<>+16(SB)/4, $4
DATA lanes<>+20(SB)/4, $5
DATA lanes<>+24(SB)/4, $6
DATA lanes<>+28(SB)/4, $7
DATA lanes<>+32(SB)/4, $8
DATA lanes<>+36(SB)/4, $9
DATA lanes<>+40(SB)/4, $10
DATA lanes<>+44(SB)/4, $11
DATA lanes<>+48(SB)/4, $12
DATA lanes<>+52(SB)/4, $13
DATA lanes<>+56(SB)/4, $14
DATA lanes<>+60(SB)/4, $15
GLOBL lanes<>(SB), RODATA|NOPTR, $64

// func maxArgAVX512(dst *float32, arg *int32, src *float32, n int, base int32)
// Where src > dst (ordered: a NaN compares false), dst = src and arg = base + offset.
TEXT ·maxArgAVX512(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ arg+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	MOVL base+32(FP), AX
	VPBROADCASTD AX, Z2
	VPADDD lanes<>(SB), Z2, Z2
	MOVL $16, DX
	VPBROADCASTD DX, Z3
argloop:
	VMOVUPS (SI), Z0
	VCMPPS $0x1e, (DI), Z0, K1
	VMOVUPS Z0, K1, (DI)
	VMOVDQU32 Z2, K1, (R8)
	VPADDD Z3, Z2, Z2
	ADDQ $64, SI
	ADDQ $64, DI
	ADDQ $64, R8
	DECQ CX
	JNZ argloop
	VZEROUPPER
	RET

// func gatherCols16AVX512(dst, src *float32, kc, ld int)
// dst[p·16+j] = src[j·ld+p] for p < kc, j < 16 (16 rows of src, transposed); 15·ld must fit
// in an int32.
TEXT ·gatherCols16AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ kc+16(FP), CX
	MOVQ ld+24(FP), DX
	VPBROADCASTD DX, Z1
	VPMULLD lanes<>(SB), Z1, Z1
colloop:
	KXNORW K1, K1, K1
	VGATHERDPS (SI)(Z1*4), K1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $4, SI
	ADDQ $64, DI
	DECQ CX
	JNZ colloop
	VZEROUPPER
	RET

// func add3AVX512(dst, a, b *float32, n, relu int)
TEXT ·add3AVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	MOVQ relu+32(FP), R8
	VPXORD Z31, Z31, Z31
a3loop:
	VMOVUPS (SI), Z0
	VADDPS (DX), Z0, Z0
	TESTQ R8, R8
	JEQ a3store
	VMAXPS Z31, Z0, Z0
a3store:
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ a3loop
	VZEROUPPER
	RET

// func reluMaskAVX512(dy, y *float32, n int)
TEXT ·reluMaskAVX512(SB), NOSPLIT, $0-24
	MOVQ dy+0(FP), DI
	MOVQ y+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	VPXORD Z31, Z31, Z31
rmloop:
	VMOVUPS (SI), Z1
	VCMPPS $0x0e, Z31, Z1, K1 // K1 = y > 0
	VMOVUPS.Z (DI), K1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ rmloop
	VZEROUPPER
	RET

// func reluMaskAddAVX512(dx, dy, y *float32, n int)
TEXT ·reluMaskAddAVX512(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ dy+8(FP), DX
	MOVQ y+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	VPXORD Z31, Z31, Z31
rmaloop:
	VMOVUPS (SI), Z1
	VCMPPS $0x0e, Z31, Z1, K1
	VMOVUPS.Z (DX), K1, Z0
	VADDPS (DI), Z0, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $64, DI
	DECQ CX
	JNZ rmaloop
	VZEROUPPER
	RET

// func reluAVX512(dst, x *float32, n int)
TEXT ·reluAVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	VPXORD Z31, Z31, Z31
rloop:
	VMAXPS (SI), Z31, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ rloop
	VZEROUPPER
	RET

// func gatherRows16AVX512(dst, src *float32, n, stride int)
// Copies n rows of 16 floats, src rows stride floats apart, into consecutive rows of dst.
TEXT ·gatherRows16AVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ stride+24(FP), DX
	SHLQ $2, DX
gatherloop:
	VMOVUPS (SI), Z0
	VMOVUPS Z0, (DI)
	ADDQ DX, SI
	ADDQ $64, DI
	DECQ CX
	JNZ gatherloop
	VZEROUPPER
	RET
