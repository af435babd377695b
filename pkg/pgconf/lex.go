package pgconf

import "strings"

// The lexer reproduces PostgreSQL's guc-file.l token by token, because the
// only way to agree with the server about what a line means is to cut it the
// way flex does: longest match first, ties to the rule listed first (ID,
// QUALIFIED_ID, STRING, UNQUOTED_STRING, INTEGER, REAL). A configuration line
// never spans two physical lines, so the lexer works on one line at a time.

type tokKind int

const (
	tokEOL tokKind = iota // end of the line: '\n' or end of input
	tokID
	tokQualifiedID
	tokString
	tokUnquoted
	tokInteger
	tokReal
	tokEquals
	tokError // any other single byte
)

type token struct {
	kind       tokKind
	start, end int // byte offsets in the line
}

func isLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isLetterOrDigit(c byte) bool { return isLetter(c) || isDigit(c) }

func isHexDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isUnitLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// span returns how many bytes of s from i on satisfy ok.
func span(s string, i int, ok func(byte) bool) int {
	n := 0
	for i+n < len(s) && ok(s[i+n]) {
		n++
	}
	return n
}

// matchID matches {LETTER}{LETTER_OR_DIGIT}*.
func matchID(s string, i int) int {
	if i >= len(s) || !isLetter(s[i]) {
		return 0
	}
	return 1 + span(s, i+1, isLetterOrDigit)
}

// matchQualifiedID matches {ID}"."{ID}.
func matchQualifiedID(s string, i int) int {
	n := matchID(s, i)
	if n == 0 || i+n >= len(s) || s[i+n] != '.' {
		return 0
	}
	m := matchID(s, i+n+1)
	if m == 0 {
		return 0
	}
	return n + 1 + m
}

// matchUnquoted matches {LETTER}({LETTER_OR_DIGIT}|[-._:/])*.
func matchUnquoted(s string, i int) int {
	if i >= len(s) || !isLetter(s[i]) {
		return 0
	}
	return 1 + span(s, i+1, func(c byte) bool {
		return isLetterOrDigit(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '/'
	})
}

// matchString matches \'([^'\\\n]|\\.|\'\')*\' and returns the longest
// match: every quote reached outside an escape is a possible end.
func matchString(s string, i int) int {
	if i >= len(s) || s[i] != '\'' {
		return 0
	}
	longest := 0
	j := i + 1
	for j < len(s) && s[j] != '\n' {
		switch s[j] {
		case '\\':
			if j+1 >= len(s) || s[j+1] == '\n' {
				return longest
			}
			j += 2
		case '\'':
			longest = j + 1 - i
			if j+1 < len(s) && s[j+1] == '\'' {
				j += 2
				continue
			}
			return longest
		default:
			j++
		}
	}
	return longest
}

// matchInteger matches {SIGN}?({DIGIT}+|0x{HEXDIGIT}+){UNIT_LETTER}*.
func matchInteger(s string, i int) int {
	j := i
	if j < len(s) && (s[j] == '-' || s[j] == '+') {
		j++
	}
	best := 0
	if d := span(s, j, isDigit); d > 0 {
		best = j + d - i
		best += span(s, i+best, isUnitLetter)
	}
	if strings.HasPrefix(s[j:], "0x") {
		if h := span(s, j+2, isHexDigit); h > 0 {
			n := j + 2 + h - i
			n += span(s, i+n, isUnitLetter)
			best = max(best, n)
		}
	}
	return best
}

// matchReal matches {SIGN}?{DIGIT}*"."{DIGIT}*([Ee]{SIGN}?{DIGIT}+)?.
func matchReal(s string, i int) int {
	j := i
	if j < len(s) && (s[j] == '-' || s[j] == '+') {
		j++
	}
	j += span(s, j, isDigit)
	if j >= len(s) || s[j] != '.' {
		return 0
	}
	j++
	j += span(s, j, isDigit)
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '-' || s[k] == '+') {
			k++
		}
		if d := span(s, k, isDigit); d > 0 {
			j = k + d
		}
	}
	return j - i
}

// lexLine cuts one line (without its newline) into tokens. It skips blanks
// ([ \t\r]) and returns where a comment starts (len(s) when there is none);
// the comment runs to the end of the line.
func lexLine(s string) (toks []token, comment int) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' {
			i++
			continue
		}
		if c == '#' {
			return toks, i
		}
		kind, n := tokError, 1
		for _, m := range []struct {
			kind  tokKind
			match func(string, int) int
		}{
			{tokID, matchID},
			{tokQualifiedID, matchQualifiedID},
			{tokString, matchString},
			{tokUnquoted, matchUnquoted},
			{tokInteger, matchInteger},
			{tokReal, matchReal},
		} {
			if l := m.match(s, i); l > 0 && (kind == tokError || l > n) {
				kind, n = m.kind, l
			}
		}
		if kind == tokError && c == '=' {
			kind = tokEquals
		}
		toks = append(toks, token{kind: kind, start: i, end: i + n})
		i += n
	}
	return toks, len(s)
}

// deescape turns a quoted STRING token into its value the way PostgreSQL's
// DeescapeQuotedString does: \b \f \n \r \t, octal \ooo, \x for any other
// x, and a doubled quote for one. The server keeps values as C strings, so a
// \0 ends the value.
func deescape(tok string) string {
	s := tok[1 : len(tok)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := int(e - '0')
				for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
					i++
					v = v*8 + int(s[i]-'0')
				}
				c = byte(v)
			default:
				c = e
			}
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		}
		if c == 0 {
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}

// quote renders v as a STRING token that deescape turns back into v.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// renderValue writes v the way a person would: bare when it is one plain
// word or number the lexer reads back unchanged, quoted otherwise (and always
// when quoted is true, to keep the style of the line being replaced).
func renderValue(v string, quoted bool) string {
	if !quoted && v != "" {
		if toks, c := lexLine(v); c == len(v) && len(toks) == 1 && toks[0].start == 0 && toks[0].end == len(v) {
			switch toks[0].kind {
			case tokID, tokInteger, tokReal:
				return v
			}
		}
	}
	return quote(v)
}
