package pgconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxDepth is PostgreSQL's CONF_FILE_MAX_DEPTH.
const maxDepth = 10

// AutoConfName is the file ALTER SYSTEM writes, in the data directory. The
// server reads it after postgresql.conf, so what it sets wins.
const AutoConfName = "postgresql.auto.conf"

// Config is the configuration as the server reads it: the main file, the
// files it includes (in the order PostgreSQL visits them) and then
// postgresql.auto.conf. pgherd edits the main file and its includes and
// never postgresql.auto.conf, which belongs to ALTER SYSTEM.
type Config struct {
	Main     string // path of postgresql.conf
	AutoConf string // path of postgresql.auto.conf; "" when not known

	readFile func(string) ([]byte, error)
	readDir  func(string) ([]fs.DirEntry, error)
	files    map[string]*File  // every file read, by path
	original map[string][]byte // their bytes as read, to find what an edit touched
	entries  []placed          // assignments of the main tree, in processing order
	auto     []placed          // assignments of postgresql.auto.conf
	errs     []error           // syntax and include errors, PostgreSQL's messages
	tooDeep  bool              // the include nesting limit was hit
}

// placed is an assignment and the physical line holding it.
type placed struct {
	Entry
	file *File
	idx  int // 0-based line index in file
}

// Load reads the configuration whose main file is mainPath, following
// include, include_dir and include_if_exists as PostgreSQL does (relative
// paths are relative to the including file's directory). dataDir locates
// postgresql.auto.conf; it may be empty. A file PostgreSQL could not parse
// does not make Load fail: Errors reports it. Load fails when a file it must
// read cannot be read.
func Load(mainPath, dataDir string) (*Config, error) {
	c := &Config{Main: mainPath, readFile: readerFor(mainPath, dataDir), readDir: os.ReadDir,
		files: map[string]*File{}, original: map[string][]byte{}}
	if dataDir != "" {
		c.AutoConf = filepath.Join(dataDir, AutoConfName)
	}
	if err := c.read(mainPath, false); err != nil {
		return nil, err
	}
	if c.AutoConf != "" {
		if err := c.read(c.AutoConf, true); err != nil {
			return nil, err
		}
	}
	c.resolve()
	return c, nil
}

// read loads one file into the cache, from disk, once. An optional file
// that does not exist is remembered as nil.
func (c *Config) read(path string, optional bool) error {
	if _, ok := c.files[path]; ok {
		return nil
	}
	data, err := c.readFile(path)
	if err != nil {
		if optional && errors.Is(err, fs.ErrNotExist) {
			c.files[path] = nil
			return nil
		}
		return fmt.Errorf("could not open configuration file \"%s\": %w", path, unwrapPathErr(err))
	}
	c.files[path] = Parse(path, data)
	c.original[path] = data
	return nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Replace puts data in place of the file at path (which must be part of the
// configuration, such as the main file after "pgconf edit") and walks the
// tree again, so that new include lines are followed.
func (c *Config) Replace(path string, data []byte) error {
	if f, ok := c.files[path]; !ok || f == nil {
		return fmt.Errorf("%s is not part of the configuration", path)
	}
	c.files[path] = Parse(path, data)
	c.resolve()
	return nil
}

// resolve recomputes the processing order of assignments, reading the
// files the tree includes that are not cached yet.
func (c *Config) resolve() {
	c.entries, c.auto, c.errs, c.tooDeep = nil, nil, nil, false
	c.walkFile(c.Main, 0, false)
	if f := c.files[c.AutoConf]; f != nil {
		c.collect(f, 0)
	}
}

// walkFile visits one file like ParseConfigFile.
func (c *Config) walkFile(path string, depth int, optional bool) {
	if c.tooDeep {
		return
	}
	if depth > maxDepth {
		// PostgreSQL goes on after this error, which costs exponential
		// time on a file that includes itself twice; the configuration is
		// refused either way, so stop here.
		c.tooDeep = true
		c.errs = append(c.errs, fmt.Errorf("could not open configuration file \"%s\": maximum nesting depth exceeded", path))
		return
	}
	if err := c.read(path, optional); err != nil {
		c.errs = append(c.errs, err)
		return
	}
	if f := c.files[path]; f != nil {
		c.collect(f, depth)
	}
}

// collect appends the assignments of f and follows its include directives.
func (c *Config) collect(f *File, depth int) {
	for _, e := range f.SyntaxErrors() {
		c.errs = append(c.errs, e)
	}
	isAuto := f.Path == c.AutoConf
	for _, e := range f.Entries() {
		p := placed{Entry: e, file: f, idx: e.Line - 1}
		switch {
		case isAuto:
			c.auto = append(c.auto, p)
		case sameName(e.Name, "include"):
			c.walkFile(relativeTo(f.Path, e.Value), depth+1, false)
		case sameName(e.Name, "include_if_exists"):
			c.walkFile(relativeTo(f.Path, e.Value), depth+1, true)
		case sameName(e.Name, "include_dir"):
			c.walkDir(relativeTo(f.Path, e.Value), depth+1)
		default:
			c.entries = append(c.entries, p)
		}
	}
}

// walkDir follows include_dir.
func (c *Config) walkDir(dir string, depth int) {
	names, err := c.listDir(dir)
	if err != nil {
		c.errs = append(c.errs, err)
		return
	}
	for _, n := range names {
		c.walkFile(n, depth, false)
	}
}

// listDir returns what include_dir reads: the directory's regular files
// whose names end in ".conf" and do not start with ".", in byte order.
func (c *Config) listDir(dir string) ([]string, error) {
	des, err := c.readDir(dir)
	if err != nil {
		return nil, fmt.Errorf("could not open configuration directory \"%s\": %w", dir, unwrapPathErr(err))
	}
	var names []string
	for _, de := range des {
		n := de.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".conf") {
			continue
		}
		if de.IsDir() || de.Type()&fs.ModeSymlink != 0 && isDir(filepath.Join(dir, n)) {
			continue
		}
		names = append(names, filepath.Join(dir, n))
	}
	sort.Strings(names)
	return names, nil
}

// dirFiles is listDir for a directory the tree already read.
func (c *Config) dirFiles(dir string) []string {
	names, _ := c.listDir(dir)
	return names
}

// relativeTo resolves an include path like AbsoluteConfigLocation.
func relativeTo(from, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(from), path)
}

// Errors lists what PostgreSQL would refuse in the configuration: syntax
// errors, missing included files, too deep nesting, each once. The messages
// are the server's own.
func (c *Config) Errors() []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range c.errs {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return out
}

// Lookup returns the assignment of name that wins in the main tree (the
// last one) and, separately, the one in postgresql.auto.conf, which wins
// over it when present. Names compare case-insensitively, as in PostgreSQL.
func (c *Config) Lookup(name string) (conf, auto *Entry) {
	return last(c.entries, name), last(c.auto, name)
}

func last(ps []placed, name string) *Entry {
	for i := len(ps) - 1; i >= 0; i-- {
		if sameName(ps[i].Name, name) {
			e := ps[i].Entry
			return &e
		}
	}
	return nil
}

// Names lists, in lower case and sorted, every parameter assigned in the
// main tree or in postgresql.auto.conf.
func (c *Config) Names() []string {
	seen := map[string]bool{}
	var out []string
	for _, ps := range [][]placed{c.entries, c.auto} {
		for _, p := range ps {
			if n := normName(p.Name); !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Entries lists the assignments of the main tree in processing order.
func (c *Config) Entries() []Entry {
	out := make([]Entry, len(c.entries))
	for i, p := range c.entries {
		out[i] = p.Entry
	}
	return out
}

// Changed returns the files whose bytes an edit changed, with their new and
// original contents.
func (c *Config) Changed() []FileChange {
	var out []FileChange
	for path, f := range c.files {
		if f == nil || path == c.AutoConf {
			continue
		}
		if nb := f.Bytes(); !bytes.Equal(nb, c.original[path]) {
			out = append(out, FileChange{Path: path, Old: c.original[path], New: nb})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// FileChange is a file an edit rewrote.
type FileChange struct {
	Path     string
	Old, New []byte
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// sameName compares parameter names like guc_name_compare: ASCII letters
// fold, nothing else does.
func sameName(a, b string) bool { return normName(a) == normName(b) }

// normName folds ASCII upper case letters to lower case.
func normName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
