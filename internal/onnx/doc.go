// Package onnx reads ONNX image classifiers into the engine, differentiably, and writes the
// engine's models as ONNX. An imported graph is a models.Model: training, white-box features,
// serving and stealing run on it as on a built-in architecture. Images stay NHWC inside the
// engine; the importer maps the graph's NCHW axes (convolution kernels, concatenation,
// padding, slicing, flattening) onto that layout.
package onnx
