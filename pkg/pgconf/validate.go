package pgconf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pgherd/pgherd/pkg/run"
)

// Validation asks the server binary itself: "postgres -C" reads a candidate
// configuration exactly as it would at start, so unknown names, types,
// ranges, enum values and check hooks are all PostgreSQL's own verdicts, in
// its own words. -C works while the instance runs, and it also reads
// postgresql.auto.conf from the data directory, so the candidate is judged
// together with ALTER SYSTEM values.
//
// The candidate is one file, written next to the main file: the main file
// and every file an edit changed are inlined (each assignment on its own
// line, quoted), and every unchanged file is pulled in with an include of
// its absolute path, so the server still opens those itself, as its own
// user. Messages naming a line of the candidate are mapped back to the file
// and line a person wrote.

// ErrRefused marks a change PostgreSQL would not accept; nothing was written.
var ErrRefused = errors.New("refused")

// RefusedError carries PostgreSQL's messages about a refused configuration.
type RefusedError struct {
	Msgs []string
}

func (e *RefusedError) Error() string { return strings.Join(e.Msgs, "\n") }

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// validate runs the server's own checks on the assignments of c.
func validate(ctx context.Context, t Target, c *Config) error {
	if errs := c.Errors(); len(errs) > 0 {
		r := &RefusedError{}
		for _, e := range errs {
			r.Msgs = append(r.Msgs, e.Error())
		}
		return r
	}
	text, where := c.candidate()
	cand, err := writeCandidate(t.ConfigFile, []byte(text))
	if err != nil {
		return err
	}
	defer os.Remove(cand)
	res, err := t.runner().Run(ctx, run.Cmd{Args: []string{
		filepath.Join(t.BinDir, "postgres"), "-D", t.DataDir,
		"-c", "config_file=" + cand, "-c", "log_line_prefix=", "-C", "data_directory",
	}})
	if err == nil {
		return nil
	}
	var re *run.Error
	if !errors.As(err, &re) {
		return fmt.Errorf("cannot validate the configuration with postgres -C: %w", err)
	}
	msgs := serverMessages(res.Stderr, cand, where)
	if len(msgs) == 0 {
		return fmt.Errorf("postgres -C refused the configuration: %w", err)
	}
	return &RefusedError{Msgs: msgs}
}

// candidate renders the candidate file; where[i] is the assignment behind
// its line i+1 (zero for include lines).
func (c *Config) candidate() (string, []Entry) {
	changed := map[string]bool{}
	for _, f := range c.Changed() {
		changed[f.Path] = true
	}
	var b strings.Builder
	var where []Entry
	emit := func(line string, e Entry) {
		b.WriteString(line + "\n")
		where = append(where, e)
	}
	var inline func(f *File, depth int)
	include := func(directive, path string, depth int) {
		if f := c.files[path]; f != nil && changed[path] && depth <= maxDepth {
			inline(f, depth)
		} else {
			emit(directive+" "+quote(path), Entry{})
		}
	}
	inline = func(f *File, depth int) {
		for _, e := range f.Entries() {
			p := relativeTo(f.Path, e.Value)
			switch {
			case sameName(e.Name, "include"):
				include("include", p, depth+1)
			case sameName(e.Name, "include_if_exists"):
				include("include_if_exists", p, depth+1)
			case sameName(e.Name, "include_dir"):
				if !changedUnder(changed, p) {
					emit("include_dir "+quote(p), Entry{})
					continue
				}
				for _, n := range c.dirFiles(p) {
					include("include", n, depth+1)
				}
			default:
				emit(e.Name+" = "+quote(e.Value), e)
			}
		}
	}
	inline(c.files[c.Main], 0)
	return b.String(), where
}

func changedUnder(changed map[string]bool, dir string) bool {
	for p := range changed {
		if filepath.Dir(p) == filepath.Clean(dir) {
			return true
		}
	}
	return false
}

// writeCandidate writes data next to the main file, owned like it so that
// the server (running as the instance's owner) can read it.
func writeCandidate(mainFile string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(mainFile), ".pgherd-candidate-*.conf")
	if err != nil {
		return "", fmt.Errorf("cannot write a candidate configuration: %w", err)
	}
	name := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = chownLike(name, mainFile)
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("cannot write a candidate configuration: %w", err)
	}
	return name, nil
}

// serverMessages keeps what the server said about the candidate: its LOG
// lines with their DETAIL and HINT, without the final FATAL that only
// says the file contains errors, with candidate lines mapped back.
func serverMessages(stderr, cand string, where []Entry) []string {
	levelPrefix := regexp.MustCompile(`^(LOG|WARNING|ERROR|FATAL|DETAIL|HINT):\s+`)
	ref := regexp.MustCompile(`in file "` + regexp.QuoteMeta(cand) + `" line (\d+)`)
	var msgs []string
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		m := levelPrefix.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		text := sc.Text()[len(m[0]):]
		switch {
		case m[1] == "FATAL" && strings.HasSuffix(text, "contains errors"),
			strings.HasPrefix(text, "skipping missing configuration file"):
			continue
		case m[1] == "DETAIL" || m[1] == "HINT":
			if len(msgs) > 0 {
				msgs[len(msgs)-1] += " (" + m[1] + ": " + text + ")"
			}
			continue
		}
		text = ref.ReplaceAllStringFunc(text, func(s string) string {
			n, _ := strconv.Atoi(ref.FindStringSubmatch(s)[1])
			if n < 1 || n > len(where) || where[n-1].File == "" {
				return s
			}
			e := where[n-1]
			return fmt.Sprintf("in file \"%s\" line %d", e.File, e.Line)
		})
		msgs = append(msgs, text)
	}
	return msgs
}

// Parameters lists, sorted, the parameters t's server binary knows (for
// shell completion).
func Parameters(ctx context.Context, t Target) ([]string, error) {
	m, err := describeConfig(ctx, t)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m))
	for name := range m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// describeConfig returns the context of every parameter the server binary
// knows, from "postgres --describe-config" (internal ones are not listed).
func describeConfig(ctx context.Context, t Target) (map[string]string, error) {
	res, err := t.runner().Run(ctx, run.Cmd{Args: []string{filepath.Join(t.BinDir, "postgres"), "--describe-config"}})
	if err != nil {
		return nil, fmt.Errorf("cannot list the parameters of %s: %w", t.BinDir, err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(res.Stdout, "\n") {
		if f := strings.Split(l, "\t"); len(f) > 2 {
			out[normName(f[0])] = f[1]
		}
	}
	return out, nil
}
