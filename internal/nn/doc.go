// Package nn is the engine's autodiff layer: variables, a tape that records each operation's
// backward step during the forward pass, the operations themselves (each with its backward in
// the same file), losses, parameter stores and optimizers.
//
// Images are NHWC; convolution weights are [Cout][KH][KW][Cin]; linear weights are [Out][In]
// as in PyTorch. A model is a plain Go function of a tape and its inputs.
package nn
