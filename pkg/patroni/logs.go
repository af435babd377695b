package patroni

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// Log files are interleaved by the timestamp that starts their lines:
// Patroni writes "2026-11-24 05:19:50,123 INFO: ..." and PostgreSQL, with
// its default log_line_prefix, "2026-11-24 05:19:50.123 UTC [42] LOG: ...".
// Both use the machine's time zone unless log_timezone says otherwise; lines
// without a timestamp (continuations) stay after the line they follow.

// timestamp returns the sortable "YYYY-MM-DD HH:MM:SS.mmm" a line starts
// with, or "".
func timestamp(line string) string {
	if len(line) < 19 || line[4] != '-' || line[7] != '-' || line[10] != ' ' || line[13] != ':' || line[16] != ':' {
		return ""
	}
	ts := line[:19]
	if len(line) >= 23 && (line[19] == ',' || line[19] == '.') {
		ts += "." + line[20:23]
	} else {
		ts += ".000"
	}
	return ts
}

type stamped struct {
	ts   string
	file int
	seq  int
	text string
}

// merge orders the lines of several files by timestamp; a line without one
// inherits the previous line's, so continuations stay with their record.
func merge(files [][]string) []string {
	var all []stamped
	for f, lines := range files {
		last := ""
		for i, l := range lines {
			if ts := timestamp(l); ts != "" {
				last = ts
			}
			all = append(all, stamped{ts: last, file: f, seq: i, text: l})
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].ts != all[j].ts {
			return all[i].ts < all[j].ts
		}
		if all[i].file != all[j].file {
			return all[i].file < all[j].file
		}
		return all[i].seq < all[j].seq
	})
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.text
	}
	return out
}

// Tail returns the last n lines (all when n <= 0) of files interleaved by
// time. A missing file is an error naming it.
func Tail(files []string, n int) ([]string, error) {
	var per [][]string
	for _, f := range files {
		b, err := safefs.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("cannot read log: %w", err)
		}
		per = append(per, splitLines(b))
	}
	lines := merge(per)
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

func splitLines(b []byte) []string {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Follower reads the lines appended to a set of log files. A name may be a
// glob pattern (such as PostgreSQL's "15-pg1-*.log"): files that match it
// later are read from their start, as they are new.
type Follower struct {
	patterns []string
	files    []string // in the order first seen
	offsets  map[string]int64
	partial  map[string][]byte
}

// NewFollower starts following files: from their start when fromStart,
// otherwise from their current end (what is written after NewFollower
// returns). A file that does not exist yet is read once it appears.
func NewFollower(files []string, fromStart bool) *Follower {
	f := &Follower{patterns: files, offsets: map[string]int64{}, partial: map[string][]byte{}}
	f.expand()
	if !fromStart {
		for _, p := range f.files {
			if fi, err := os.Stat(p); err == nil {
				f.offsets[p] = fi.Size()
			}
		}
	}
	return f
}

// expand adds the files the patterns name now.
func (f *Follower) expand() {
	for _, pat := range f.patterns {
		matches := []string{pat}
		if strings.ContainsAny(pat, "*?[") {
			matches, _ = filepath.Glob(pat)
		}
		for _, m := range matches {
			if _, seen := f.offsets[m]; !seen {
				f.offsets[m] = 0
				f.files = append(f.files, m)
			}
		}
	}
}

// Run calls emit for every complete new line, interleaved by time within
// each poll, looking every interval, until ctx ends; it then returns nil. A
// file that shrinks (rotated or truncated) is read again from its start.
func (f *Follower) Run(ctx context.Context, interval time.Duration, emit func(line string)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f.expand()
		per := make([][]string, len(f.files))
		for i, p := range f.files {
			off, partial := f.offsets[p], f.partial[p]
			lines, err := readNew(p, &off, &partial)
			if err != nil {
				return err
			}
			f.offsets[p], f.partial[p] = off, partial
			per[i] = lines
		}
		for _, l := range merge(per) {
			emit(l)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// readNew returns the complete lines added to path since *off and keeps an
// unfinished last line in *partial for the next call.
func readNew(path string, off *int64, partial *[]byte) ([]string, error) {
	f, err := safefs.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read log: %w", err)
	}
	if fi.Size() < *off {
		*off, *partial = 0, nil
	}
	if _, err := f.Seek(*off, io.SeekStart); err != nil {
		return nil, fmt.Errorf("cannot read log: %w", err)
	}
	b, err := io.ReadAll(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("cannot read log: %w", err)
	}
	*off += int64(len(b))
	b = append(*partial, b...)
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		*partial = b
		return nil, nil
	}
	*partial = append([]byte(nil), b[end+1:]...)
	return splitLines(b[:end+1]), nil
}
