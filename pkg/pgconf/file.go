package pgconf

import (
	"fmt"
	"strings"
)

// File is one configuration file as a person wrote it: its lines are kept
// byte for byte, and only the lines an edit touches are rewritten, so
// formatting an unchanged File gives back exactly the bytes it was parsed from.
type File struct {
	Path  string
	lines []line
	// noFinalNewline is set when the last line has no '\n' after it.
	noFinalNewline bool
}

// line is one physical line and what PostgreSQL reads in it.
type line struct {
	text string // without the '\n'
	// For an assignment or an include directive:
	name       string // the name as written
	value      string // the value after unquoting
	valStart   int    // byte offsets of the value token in text
	valEnd     int
	quoted     bool   // the value is a quoted string
	syntaxErr  string // PostgreSQL's message, without file and line, when the line is not valid
	assignment bool
}

// Entry is one assignment (or include directive) in a file.
type Entry struct {
	File  string `json:"file"`
	Line  int    `json:"line"` // 1-based, as PostgreSQL counts
	Name  string `json:"name"` // as written
	Value string `json:"value"`
}

// SyntaxError is a line PostgreSQL would refuse; Msg is the server's own text.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return e.Msg }

// Parse reads data as a postgresql.conf file. It never fails: lines that
// PostgreSQL would reject are kept as they are and reported by SyntaxErrors.
func Parse(path string, data []byte) *File {
	f := &File{Path: path}
	s := string(data)
	if s == "" {
		return f
	}
	parts := strings.Split(s, "\n")
	if parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	} else {
		f.noFinalNewline = true
	}
	f.lines = make([]line, len(parts))
	for i, p := range parts {
		f.lines[i] = parseLine(p)
	}
	return f
}

// parseLine follows ParseConfigFp: a name (ID or QUALIFIED_ID), an optional
// '=', one value token, then the end of the line.
func parseLine(text string) line {
	l := line{text: text}
	toks, _ := lexLine(text)
	if len(toks) == 0 {
		return l
	}
	next := func(i int) token {
		if i < len(toks) {
			return toks[i]
		}
		return token{kind: tokEOL}
	}
	fail := func(t token) line {
		if t.kind == tokEOL {
			l.syntaxErr = "near end of line"
		} else {
			l.syntaxErr = fmt.Sprintf("near token \"%s\"", text[t.start:t.end])
		}
		return l
	}
	t := next(0)
	if t.kind != tokID && t.kind != tokQualifiedID {
		return fail(t)
	}
	l.name = text[t.start:t.end]
	i := 1
	if next(i).kind == tokEquals {
		i++
	}
	v := next(i)
	switch v.kind {
	case tokID, tokString, tokInteger, tokReal, tokUnquoted:
	default:
		return fail(v)
	}
	if e := next(i + 1); e.kind != tokEOL {
		return fail(e)
	}
	l.assignment = true
	l.valStart, l.valEnd = v.start, v.end
	l.quoted = v.kind == tokString
	if l.quoted {
		l.value = deescape(text[v.start:v.end])
	} else {
		l.value = text[v.start:v.end]
	}
	return l
}

// Bytes formats the file.
func (f *File) Bytes() []byte {
	if len(f.lines) == 0 {
		return nil
	}
	n := 0
	for _, l := range f.lines {
		n += len(l.text) + 1
	}
	b := make([]byte, 0, n)
	for i, l := range f.lines {
		b = append(b, l.text...)
		if i < len(f.lines)-1 || !f.noFinalNewline {
			b = append(b, '\n')
		}
	}
	return b
}

// Entries lists the assignments and include directives in file order.
func (f *File) Entries() []Entry {
	var es []Entry
	for i, l := range f.lines {
		if l.assignment {
			es = append(es, Entry{File: f.Path, Line: i + 1, Name: l.name, Value: l.value})
		}
	}
	return es
}

// SyntaxErrors lists the lines PostgreSQL would refuse, with its messages
// ("syntax error in file "..." line N, near token "MB"").
func (f *File) SyntaxErrors() []*SyntaxError {
	var errs []*SyntaxError
	for i, l := range f.lines {
		if l.syntaxErr != "" {
			errs = append(errs, &SyntaxError{File: f.Path, Line: i + 1,
				Msg: fmt.Sprintf("syntax error in file \"%s\" line %d, %s", f.Path, i+1, l.syntaxErr)})
		}
	}
	return errs
}

// setValue replaces the value of assignment line n (0-based) in place,
// keeping the name, the separator and any trailing comment.
func (f *File) setValue(n int, value string) {
	l := f.lines[n]
	f.lines[n] = parseLine(l.text[:l.valStart] + renderValue(value, l.quoted) + l.text[l.valEnd:])
}

// commentOut turns line n into a comment, keeping its text.
func (f *File) commentOut(n int) {
	f.lines[n] = parseLine("#" + f.lines[n].text)
}

// appendAssignment adds "name = value" at the end of the file.
func (f *File) appendAssignment(name, value string) int {
	f.noFinalNewline = false
	f.lines = append(f.lines, parseLine(name+" = "+renderValue(value, false)))
	return len(f.lines) - 1
}

// commentedAssignment returns the last line that is a commented-out
// assignment of name, such as "#work_mem = 4MB		# min 64kB" in the sample
// file, and the line's text without the comment mark.
func (f *File) commentedAssignment(name string) (int, string) {
	for n := len(f.lines) - 1; n >= 0; n-- {
		t := f.lines[n].text
		if !strings.HasPrefix(t, "#") {
			continue
		}
		u := strings.TrimLeft(t[1:], " \t")
		if l := parseLine(u); l.assignment && sameName(l.name, name) {
			return n, u
		}
	}
	return -1, ""
}

// uncomment replaces line n with text (an assignment) holding value.
func (f *File) uncomment(n int, text, value string) {
	f.lines[n] = parseLine(text)
	f.setValue(n, value)
}
