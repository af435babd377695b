// Command bench measures pgherd against the reference way of doing the same
// thing on the same machine in the same run, and writes the ratios to a
// Markdown file. It never asserts on time: 'make bench' prints figures.
//
// Run it as root (PostgreSQL then runs as -sysuser) or as an ordinary user.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bench is one side-by-side measurement.
type bench struct {
	name string
	goal string // e.g. "≤ 1.10"
	run  func(ctx context.Context, h *harness) (result, error)
}

// result is the median of each side, and the ratio pgherd/reference.
type result struct {
	pgherd, reference time.Duration
	runs              int
	note              string
	// bytes: the two sides are sizes in bytes stored in the Duration
	// fields (printed in MB), not times.
	bytes bool
}

func (r result) show(d time.Duration) string {
	if r.bytes {
		return fmt.Sprintf("%.1f MB", float64(d)/1e6)
	}
	return ms(d)
}

func (r result) ratio() float64 { return float64(r.pgherd) / float64(r.reference) }

var benches []bench

// section is a measurement whose figures do not fit one row: it returns a
// Markdown section of its own.
type section struct {
	name string
	run  func(ctx context.Context, h *harness) (string, error)
}

var sections []section

// harness holds what every benchmark needs.
type harness struct {
	pgherd  string // absolute path of bin/pgherd
	work    string // scratch directory, removed at the end
	cred    *syscall.Credential
	sysuser string
	runs    int
}

func main() {
	out := flag.String("out", "", "Markdown file to write the results to")
	runs := flag.Int("runs", 5, "runs of each side (the median is reported)")
	only := flag.String("only", "", "run only benchmarks whose name contains this")
	sysuser := flag.String("sysuser", "pgherd", "account PostgreSQL runs as when this runs as root")
	flag.Parse()
	if err := mainErr(*out, *runs, *only, *sysuser); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func mainErr(out string, runs int, only, sysuser string) error {
	ctx := context.Background()
	bin, err := filepath.Abs("bin/pgherd")
	if err != nil {
		return err
	}
	for _, b := range []string{bin, bin + "-dcs"} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s: run 'make build' first", b)
		}
	}
	work, err := os.MkdirTemp("", "pgherd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	h := &harness{pgherd: bin, work: work, runs: runs}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(sysuser)
		if err != nil {
			return fmt.Errorf("running as root needs the account %s (make deps creates it): %w", sysuser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		h.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		h.sysuser = sysuser
	}
	var rows []string
	for _, b := range benches {
		if only != "" && !strings.Contains(b.name, only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", b.name)
		r, err := b.run(ctx, h)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		row := fmt.Sprintf("| %s | %s | %s | **%.2f** | %s | %d | %s |", b.name, r.show(r.pgherd), r.show(r.reference), r.ratio(), b.goal, r.runs, r.note)
		fmt.Println(row)
		rows = append(rows, row)
	}
	var extra []string
	for _, sec := range sections {
		if only != "" && !strings.Contains(sec.name, only) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", sec.name)
		md, err := sec.run(ctx, h)
		if err != nil {
			return fmt.Errorf("%s: %w", sec.name, err)
		}
		fmt.Println(md)
		extra = append(extra, fmt.Sprintf("## %s\n\n%s", sec.name, md))
	}
	if out == "" {
		return nil
	}
	return writeReport(out, rows, extra)
}

func writeReport(path string, rows, sections []string) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Benchmarks\n\nProduced by `make bench` (`go run ./tests/bench -out docs/benchmarks.md`) on %s, %s, %d cores, %s.\n",
		time.Now().UTC().Format("2006-01-02"), host, runtime.NumCPU(), runtime.Version())
	b.WriteString("Each side runs one after the other in the same run on the same machine; figures are medians of whole-process wall-clock times.\n")
	b.WriteString("The ratio is pgherd / reference: below 1 means pgherd is faster.\n\n")
	b.WriteString("| benchmark | pgherd | reference | ratio | goal | runs | notes |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	for _, sec := range sections {
		b.WriteString("\n" + sec + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// timeCmd runs a command and returns its wall-clock time; asUser runs it as
// the PostgreSQL account.
func (h *harness) timeCmd(ctx context.Context, env []string, asUser bool, args ...string) (time.Duration, error) {
	c := exec.CommandContext(ctx, args[0], args[1:]...)
	c.Env = append(os.Environ(), env...)
	if asUser && h.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: h.cred}
	}
	start := time.Now()
	out, err := c.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// siteFile writes a site file for a scratch prefix and returns the
// environment that selects it.
func (h *harness) siteEnv(dir string, port int) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	site := fmt.Sprintf("prefix: %s/prefix\nrun_prefix: %s/run\nservice_manager: process\npostgresql:\n  port: %d\n", dir, dir, port)
	if h.sysuser != "" {
		site += "sysuser: " + h.sysuser + "\n"
	}
	f := filepath.Join(dir, "site.yaml")
	return []string{"PGHERD_SITE=" + f}, os.WriteFile(f, []byte(site), 0o644)
}

// mkdirOwned creates dir owned by the PostgreSQL account.
func (h *harness) mkdirOwned(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if h.cred != nil {
		return os.Chown(dir, int(h.cred.Uid), int(h.cred.Gid))
	}
	return nil
}
