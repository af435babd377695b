// Package names holds the one rule for the names pgherd builds paths, unit
// instances, DCS keys and cluster_name from: instances, Patroni clusters,
// Patroni members and DCS members (witnesses included). It imports nothing
// of pgherd's, so every package that takes such a name can check it here.
package names

import "fmt"

// Max is the longest name.
const Max = 32

// Pattern is a name without its length bound and without anchors, for
// patterns that embed one (a path template's {name}). A name is one path
// component that no dot can make special.
const Pattern = `[A-Za-z0-9][A-Za-z0-9_-]*`

// Rule says the rule as every refusal says it.
const Rule = "use 1 to 32 letters, digits, '_' or '-', starting with a letter or digit"

// Check returns nil when name follows the rule, else one line naming what
// is wrong and the rule: `invalid cluster name "a/b": use 1 to 32 ...`.
// kind is what the name names ("instance", "cluster", "member").
func Check(kind, name string) error {
	if len(name) > Max || !Valid(name) {
		return fmt.Errorf("invalid %s name %q: %s", kind, name, Rule)
	}
	return nil
}

// Valid reports whether s matches Pattern, whatever its length. It is
// Pattern written out by hand: every pgherd command checks a name, and
// compiling the pattern would cost each of them more than the check.
func Valid(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return s != ""
}
