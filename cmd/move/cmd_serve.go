package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"move/internal/modelfile"
	"move/internal/oip"
)

func init() {
	commands["serve"] = &command{
		summary: "serve a model over the Open Inference Protocol v2 (REST)",
		usage:   "--model FILE [--addr 127.0.0.1:8080] [--name NAME]",
		help: `Serves a model file's class probabilities with the Open Inference Protocol v2 REST API, as
KServe, Triton and MLServer speak it: POST /v2/models/NAME/infer, GET /v2/models/NAME
(metadata), GET /v2/models/NAME/ready, GET /v2/health/live and /v2/health/ready.
The input "images" is FP32 [N, S, S, 3], RGB pixels in [0, 1]; the output "probabilities" is
FP32 [N, K]. Stops on interrupt.

EXIT STATUS
  0 when stopped by an interrupt, 2 on error.`,
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fs := newFlags("serve", stderr)
			applyONNX := onnxFlags(fs)
			model := fs.String("model", "", "model file")
			addr := fs.String("addr", "127.0.0.1:8080", "listen address")
			name := fs.String("name", "", "model name in URLs (default: the file name without extension)")
			if err := parse(fs, args); err != nil {
				return err
			}
			if err := applyONNX(); err != nil {
				return err
			}
			if err := need(fs, "model"); err != nil {
				return err
			}
			m, info, err := modelfile.Load(*model)
			if err != nil {
				return err
			}
			if *name == "" {
				*name = strings.TrimSuffix(filepath.Base(*model), filepath.Ext(*model))
			}
			srv := &oip.Server{Name: *name, Model: m, Norm: info.Norm, Size: info.InputSize}
			ln, err := net.Listen("tcp", *addr)
			if err != nil {
				return err
			}
			hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintf(stderr, "serving %s (%s) at http://%s/v2/models/%s\n", *model, info.Arch, ln.Addr(), *name)
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				hs.Shutdown(sctx)
			}()
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			fmt.Fprintf(stderr, "stopped after answering %d images\n", srv.Queries)
			return nil
		},
	}
}
