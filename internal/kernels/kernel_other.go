//go:build !amd64 || purego

package kernels

func kernels() map[string]microKernel { return map[string]microKernel{"go": kernGo} }
