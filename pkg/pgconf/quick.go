package pgconf

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// A fast path for running instances. "postgres -C" costs a process start
// and a full read of the configuration, tens of milliseconds; most changes
// are plain numbers, booleans and enum words that pg_settings describes
// completely (vartype, unit, min_val, max_val, enumvals). quickAccept
// accepts a change only when it is certain PostgreSQL's parser takes the
// value and the range allows it. It never refuses: anything it is not sure
// of (strings, units it would have to round, octal-looking numbers, unknown
// names) goes to postgres -C, so every refusal carries the server's own
// message.
//
// What pg_settings cannot tell is a check hook (max_stack_depth above the
// stack limit is in range but refused). So the fast path is only taken
// when a reload follows, whose pg_file_settings verdict rolls the change
// back, and only for parameters that reload really applies: sighup,
// superuser and user. A postmaster parameter is judged at the next start,
// against the other values of the files, which a reload cannot show;
// existing sessions skip backend parameters at reload without parsing
// them. Dry runs and stopped instances always use postgres -C.

// quickAccept reports whether every change is certainly valid.
func quickAccept(res *Result, settings map[string]pgSetting) bool {
	for _, ch := range res.Changes {
		if ch.New == nil {
			continue // a removal falls back to the default or another file
		}
		s, ok := settings[ch.Name]
		if !ok || !quickValue(s, *ch.New) {
			return false
		}
		switch s.context {
		case "sighup", "superuser", "user":
		default:
			return false
		}
	}
	return true
}

// digits returns the length of the number at the start of s written the
// one way no parser reads differently: 0, or digits without a leading zero
// (strtol would read 010 as octal). It is 0 when s starts otherwise.
func digits(s string) int {
	if s == "" || !isDigit(s[0]) {
		return 0
	}
	if s[0] == '0' {
		return 1
	}
	return span(s, 0, isDigit)
}

// plainInt is -?(0|[1-9][0-9]*).
func plainInt(v string) bool {
	v = strings.TrimPrefix(v, "-")
	n := digits(v)
	return n > 0 && n == len(v)
}

// plainReal is -?(0|[1-9][0-9]*)(\.[0-9]+)?.
func plainReal(v string) bool {
	v = strings.TrimPrefix(v, "-")
	n := digits(v)
	if n == 0 || n == len(v) {
		return n > 0
	}
	frac := v[n:]
	return frac[0] == '.' && len(frac) > 1 && span(frac, 1, isDigit) == len(frac)-1
}

// intUnit splits (0|[1-9][0-9]*) ?([A-Za-z]+) into number and unit.
func intUnit(v string) (num, unit string, ok bool) {
	n := digits(v)
	if n == 0 {
		return "", "", false
	}
	unit = strings.TrimPrefix(v[n:], " ")
	return v[:n], unit, unit != "" && span(unit, 0, isUnitLetter) == len(unit)
}

// Sizes of PostgreSQL's memory units in bytes and time units in microseconds.
var unitSize = map[string]float64{
	"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40,
	"us": 1, "ms": 1e3, "s": 1e6, "min": 60e6, "h": 3600e6, "d": 86400e6,
}

func quickValue(s pgSetting, v string) bool {
	switch s.vartype {
	case "bool":
		switch strings.ToLower(v) {
		case "on", "off", "true", "false", "yes", "no", "1", "0":
			return true
		}
	case "enum":
		return slices.ContainsFunc(s.enumvals, func(e string) bool { return strings.EqualFold(e, v) })
	case "integer":
		n, ok := quickInt(s.unit, v)
		return ok && inRange(n, s.min, s.max)
	case "real":
		if s.unit != "" || !plainReal(v) {
			return false
		}
		f, err := strconv.ParseFloat(v, 64)
		return err == nil && inRange(f, s.min, s.max)
	}
	return false
}

// quickInt converts v to the parameter's base unit when that is exact.
func quickInt(base, v string) (float64, bool) {
	if plainInt(v) {
		n, err := strconv.ParseInt(v, 10, 32)
		return float64(n), err == nil
	}
	num, unit, ok := intUnit(v)
	if !ok || base == "" {
		return 0, false
	}
	// The base unit may carry a multiple, as "8kB" for shared_buffers.
	baseN, baseUnit := 1.0, base
	if i := strings.IndexFunc(base, func(r rune) bool { return r < '0' || r > '9' }); i > 0 {
		baseN, _ = strconv.ParseFloat(base[:i], 64)
		baseUnit = base[i:]
	}
	from, ok1 := unitSize[unit]
	to, ok2 := unitSize[baseUnit]
	if !ok1 || !ok2 || isMemory(unit) != isMemory(baseUnit) {
		return 0, false
	}
	n, _ := strconv.ParseFloat(num, 64)
	x := n * from / (to * baseN)
	if x != math.Trunc(x) || x > math.MaxInt32 {
		return 0, false // PostgreSQL would round: let it say what it thinks
	}
	return x, true
}

func isMemory(unit string) bool { return strings.HasSuffix(unit, "B") }

func inRange(x float64, min, max string) bool {
	lo, err1 := strconv.ParseFloat(min, 64)
	hi, err2 := strconv.ParseFloat(max, 64)
	return err1 == nil && err2 == nil && x >= lo && x <= hi
}
