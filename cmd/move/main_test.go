package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"move/internal/data"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"move": func() { os.Exit(runWithSignals(os.Args[1:])) },
	})
}

// TestScripts runs the command-line scenarios in testdata/script against the real binary.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"waitaddr":   waitAddr,
		"synthdata":  synthData,
		"synthimage": synthImage,
	}})
}

// waitAddr FILE VAR waits (up to a minute) for a background move serve --addr-file FILE to
// write the address it listens on, and sets the environment variable VAR to it: servers in
// scripts listen on free ports.
func waitAddr(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitaddr FILE VAR")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(ts.MkAbs(args[0]))
		if err == nil && strings.HasSuffix(string(b), "\n") {
			ts.Setenv(args[1], strings.TrimSpace(string(b)))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no address in %s after a minute", args[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// synthdata DIR N CLASSES SIZE writes the built-in synthetic set as an image folder, as an
// owner's data would be: N training images (DIR/train/<class>/*.png, seed 1) and N/4 test
// images (DIR/test, seed 2).
func synthData(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: synthdata DIR N CLASSES SIZE")
	}
	n := make([]int, 3)
	for i, a := range args[1:] {
		v, err := strconv.Atoi(a)
		ts.Check(err)
		n[i] = v
	}
	ts.Check(data.WriteFolder(data.Synthetic(n[0], n[1], n[2], 1), ts.MkAbs(args[0])+"/train"))
	ts.Check(data.WriteFolder(data.Synthetic(n[0]/4, n[1], n[2], 2), ts.MkAbs(args[0])+"/test"))
}

// synthimage FILE SIZE writes a synthetic SIZE x SIZE image (a stand-in style image) as PNG.
func synthImage(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: synthimage FILE SIZE")
	}
	size, err := strconv.Atoi(args[1])
	ts.Check(err)
	st := data.Synthetic(1, 1, size, 7)
	ts.Check(data.WritePNG(ts.MkAbs(args[0]), st.Image(0), size, size, false))
}
