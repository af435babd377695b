package instance

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pgherd/pgherd/pkg/safefs"
)

// currentLogFile is the file the server writes to: what current_logfiles
// says while it runs, else the newest log file of the instance.
func currentLogFile(i *Instance) string {
	if b, err := safefs.ReadFile(filepath.Join(i.DataDir, "current_logfiles")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f, ok := strings.CutPrefix(line, "stderr "); ok {
				if !filepath.IsAbs(f) {
					f = filepath.Join(i.DataDir, f)
				}
				return f
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(i.LogDir, i.serviceName()+"-*.log"))
	var logs []string
	for _, f := range files {
		if !strings.HasSuffix(f, "-start.log") {
			logs = append(logs, f)
		}
	}
	if len(logs) == 0 {
		return ""
	}
	sort.Strings(logs)
	return logs[len(logs)-1]
}

// Logs copies the instance's current log file to w (with lines > 0, only
// its last lines lines); with follow it goes on copying what is appended,
// across log rotations, until ctx ends.
func Logs(ctx context.Context, i *Instance, w io.Writer, lines int, follow bool) error {
	path := currentLogFile(i)
	if path == "" {
		return fmt.Errorf("instance %s has no log file yet in %s", i.ID(), i.LogDir)
	}
	for {
		f, err := openServerLog(i, path)
		if err != nil {
			return fmt.Errorf("reading the log of %s: %w", i.ID(), err)
		}
		if lines > 0 {
			err = copyLastLines(w, f, lines)
			lines = 0 // a rotated file is new: all of it follows
		} else {
			_, err = io.Copy(w, f)
		}
		if err != nil || !follow {
			f.Close()
			return err
		}
		for path == currentLogFile(i) {
			select {
			case <-ctx.Done():
				f.Close()
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := io.Copy(w, f); err != nil {
				f.Close()
				return err
			}
		}
		_, _ = io.Copy(w, f)
		f.Close()
		path = currentLogFile(i)
	}
}

// copyLastLines copies the last n lines of r to w.
func copyLastLines(w io.Writer, r io.Reader, n int) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, err = w.Write(lastLines(b, n))
	return err
}

// lastLines returns the last n lines of b (a final line without a newline
// counts as one).
func lastLines(b []byte, n int) []byte {
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if b[i] == '\n' {
			if n--; n == 0 {
				return b[i+1:]
			}
		}
	}
	return b
}

// openServerLog opens a log file of the instance's server for root to
// print: no symbolic link, a regular file, and owned by the account that
// owns the data directory (current_logfiles, which that account can write,
// could name any file).
func openServerLog(i *Instance, path string) (*os.File, error) {
	f, err := safefs.Open(path)
	if err != nil {
		return nil, err
	}
	dd, err := os.Lstat(i.DataDir)
	fi, ferr := f.Stat()
	if err == nil {
		err = ferr
	}
	if err == nil && fi.Sys().(*syscall.Stat_t).Uid != dd.Sys().(*syscall.Stat_t).Uid {
		err = fmt.Errorf("%s does not belong to the owner of %s: not a log of this instance", path, i.DataDir)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
