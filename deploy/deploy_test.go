// Package deploy holds the manifests that run a sharded move embed on a cluster; this test
// checks that they parse and are wired to move's shard flags.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

type job struct {
	Kind string `json:"kind"`
	Spec struct {
		CompletionMode string `json:"completionMode"`
		Completions    int    `json:"completions"`
		Parallelism    int    `json:"parallelism"`
		Template       struct {
			Spec struct {
				Containers []struct {
					Command []string `json:"command"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func load(t *testing.T, name string) job {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var j job
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if j.Kind != "Job" || len(j.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: not a one-container Job", name)
	}
	return j
}

func flag(cmd []string, name string) string {
	i := slices.Index(cmd, name)
	if i < 0 || i+1 >= len(cmd) {
		return ""
	}
	return cmd[i+1]
}

// The Indexed Job runs one shard per index (the index from JOB_COMPLETION_INDEX, so no
// --shard), as many as --shards; the merge Job joins the same shards with the same flags.
func TestKubernetesJobs(t *testing.T) {
	shards := load(t, "k8s-embed-shards.json")
	merge := load(t, "k8s-embed-merge.json")
	sc, mc := shards.Spec.Template.Spec.Containers[0].Command, merge.Spec.Template.Spec.Containers[0].Command
	if shards.Spec.CompletionMode != "Indexed" || flag(sc, "--shards") == "" {
		t.Fatalf("shards: completion mode %q, command %v", shards.Spec.CompletionMode, sc)
	}
	if n := flag(sc, "--shards"); n != "4" || shards.Spec.Completions != 4 || shards.Spec.Parallelism != 4 {
		t.Fatalf("--shards %s with %d completions and parallelism %d", n, shards.Spec.Completions, shards.Spec.Parallelism)
	}
	if slices.Contains(sc, "--shard") || slices.Contains(sc, "--merge") {
		t.Fatalf("the shard Job must take its index from JOB_COMPLETION_INDEX: %v", sc)
	}
	if !slices.Contains(mc, "--merge") {
		t.Fatalf("the merge Job does not merge: %v", mc)
	}
	for _, f := range []string{"--data", "--style", "--out", "--rate", "--seed", "--shards"} {
		if flag(sc, f) != flag(mc, f) {
			t.Errorf("%s: %q in the shards, %q in the merge", f, flag(sc, f), flag(mc, f))
		}
	}
}

// The Slurm script is valid bash and wires the array index and the merge dependency.
func TestSlurmScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	if out, err := exec.Command("bash", "-n", "slurm-embed.sh").CombinedOutput(); err != nil {
		t.Fatalf("bash -n slurm-embed.sh: %v\n%s", err, out)
	}
	b, _ := os.ReadFile("slurm-embed.sh")
	s := string(b)
	for _, want := range []string{"--array=0-$((SHARDS - 1))", "--shards $SHARDS", "--dependency=afterok:$array", "--merge", "MOVE_CREATED"} {
		if !strings.Contains(s, want) {
			t.Errorf("slurm-embed.sh lacks %q", want)
		}
	}
}
