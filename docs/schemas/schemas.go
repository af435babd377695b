// Package schemas carries the JSON Schemas of pgherd's -o json shapes
// (docs/json.md) inside the binary, for 'pgherd schema'. Shape NAME/vN is
// the file NAME.vN.json.
package schemas

import (
	"embed"
	"sort"
	"strings"
)

//go:embed *.json
var files embed.FS

// Names lists the shapes, sorted.
func Names() []string {
	entries, _ := files.ReadDir(".")
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		base := strings.TrimSuffix(e.Name(), ".json")
		if i := strings.LastIndex(base, ".v"); i > 0 {
			out = append(out, base[:i]+"/"+base[i+1:])
		}
	}
	sort.Strings(out)
	return out
}

// Get returns the JSON Schema of shape name (such as pgherd.instance/v1);
// ok is false when there is no such shape.
func Get(name string) (schema []byte, ok bool) {
	b, err := files.ReadFile(strings.ReplaceAll(name, "/", ".") + ".json")
	return b, err == nil && strings.Count(name, "/") == 1
}
