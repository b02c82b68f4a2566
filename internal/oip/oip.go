// Package oip speaks the Open Inference Protocol v2 REST API (as KServe, Triton and MLServer
// do): a server that serves a move model's class probabilities, and the client that black-box
// verification and the query attacks use, with timeouts, retries with back-off, a concurrency
// limit, a query budget and a count of the queries spent.
//
// The served model takes one input, "images": FP32 [N, H, W, 3], RGB pixels in [0, 1]; the
// server normalises them as the model was trained. It returns one output, "probabilities":
// FP32 [N, K], the softmax of the logits.
package oip

// Tensor is an OIP v2 tensor in JSON.
type Tensor struct {
	Name     string    `json:"name"`
	Shape    []int     `json:"shape"`
	Datatype string    `json:"datatype"`
	Data     []float32 `json:"data"`
}

// InferRequest is the body of POST /v2/models/{name}/infer.
type InferRequest struct {
	ID     string   `json:"id,omitempty"`
	Inputs []Tensor `json:"inputs"`
}

// InferResponse is its answer.
type InferResponse struct {
	ModelName string   `json:"model_name"`
	ID        string   `json:"id,omitempty"`
	Outputs   []Tensor `json:"outputs"`
}

// TensorMeta describes an input or output in model metadata.
type TensorMeta struct {
	Name     string `json:"name"`
	Datatype string `json:"datatype"`
	Shape    []int  `json:"shape"`
}

// ModelMetadata is the answer of GET /v2/models/{name}.
type ModelMetadata struct {
	Name     string       `json:"name"`
	Versions []string     `json:"versions,omitempty"`
	Platform string       `json:"platform"`
	Inputs   []TensorMeta `json:"inputs"`
	Outputs  []TensorMeta `json:"outputs"`
}

// ErrorResponse is the body of an error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}
