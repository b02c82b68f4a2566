//go:build !amd64 || purego

package kernels

func kernels() map[string]microKernel { return map[string]microKernel{"go": kernGo} }

func stridedKernels() map[string]stridedKernel { return map[string]stridedKernel{"go": kernStridedGo} }
