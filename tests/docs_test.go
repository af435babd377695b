package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The checked-in command reference must match the command tree: run
// 'make docs' after changing a command.
func TestReferenceIsCurrent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./tests/gendocs", dir)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gendocs: %v: %s", err, out)
	}
	want, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	have, _ := filepath.Glob(filepath.Join("..", "docs", "reference", "*.md"))
	if len(want) != len(have) {
		t.Fatalf("docs/reference has %d pages, the commands make %d: run 'make docs'", len(have), len(want))
	}
	for _, w := range want {
		got, err := os.ReadFile(filepath.Join("..", "docs", "reference", filepath.Base(w)))
		exp, _ := os.ReadFile(w)
		if err != nil || string(got) != string(exp) {
			t.Errorf("docs/reference/%s is stale: run 'make docs'", filepath.Base(w))
		}
	}
}

// docsRunAsWritten lists the documents whose shell blocks run, in order, as
// one bash script from the repository's root, in a scratch prefix. Blocks
// that install or build ('make ...') are left out: the test suite runs
// after 'make build'.
var docsRunAsWritten = []string{"docs/quickstart.md", "docs/pgconf.md", "docs/ha-witness.md"}

func TestDocsRunAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real PostgreSQL")
	}
	for _, bin := range []string{"../bin/pgherd", "../bin/pgherd-dcs", "../bin/pgherd-supervise"} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run 'make build' first", bin[3:])
		}
	}
	for _, doc := range docsRunAsWritten {
		t.Run(filepath.Base(doc), func(t *testing.T) {
			script := shellBlocks(t, filepath.Join("..", doc))
			dir := scratchDir(t)
			cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "PGHERD_PREFIX="+dir+"/prefix", "PGHERD_RUN_PREFIX="+dir+"/run",
				"PGHERD_SERVICE_MANAGER=process", "PGHERD_SITE=", "NO_COLOR=1")
			if os.Geteuid() == 0 {
				cmd.Env = append(cmd.Env, "PGHERD_SYSUSER="+sysuser())
			}
			t.Cleanup(func() {
				stopPatroni(dir)
				stopByPidfiles(filepath.Join(dir, "run", "pid", "dcs"))
				stopServers(filepath.Join(dir, "prefix"))
			})
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s does not run as written: %v\n%s", doc, err, out)
			}
		})
	}
}

// shellBlocks joins the ```sh blocks of a Markdown file, without the ones
// that run make.
func shellBlocks(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	in := false
	var block strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```sh"):
			in = true
			block.Reset()
		case in && strings.HasPrefix(line, "```"):
			in = false
			if !strings.Contains(block.String(), "make ") {
				script.WriteString(block.String())
			}
		case in:
			block.WriteString(line + "\n")
		}
	}
	if script.Len() == 0 {
		t.Fatalf("%s has no sh blocks", path)
	}
	return script.String()
}

// scratchDir is a temporary directory the PostgreSQL account can reach.
func scratchDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "pgherd-docs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
