// Package templates holds the text templates of the files pgherd generates
// whole (systemd units and drop-ins), embedded in the binary. Each template is
// parsed once, on the first Render (most runs of pgherd render none), and is
// named after the file it produces: "pgherd-postgresql@.service.tmpl" renders
// "pgherd-postgresql@.service".
// A missing key in the data is an error, never an empty string.
package templates

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var set = sync.OnceValue(mustParse)

func mustParse() map[string]*template.Template {
	names, err := fs.Glob(files, "*.tmpl")
	if err != nil {
		panic(err)
	}
	m := make(map[string]*template.Template, len(names))
	for _, n := range names {
		m[strings.TrimSuffix(n, ".tmpl")] = template.Must(template.New(n).Option("missingkey=error").ParseFS(files, n))
	}
	return m
}

// Render writes the file called name (e.g. "pgherd-patroni@.service") from
// its template and data.
func Render(w io.Writer, name string, data any) error {
	t, ok := set()[name]
	if !ok {
		return fmt.Errorf("no template for %s", name)
	}
	if err := t.Execute(w, data); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	return nil
}
