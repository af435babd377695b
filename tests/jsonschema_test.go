package tests

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pgherd/pgherd/pkg/cli"
	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/spf13/cobra"
)

// schemaDir holds one JSON Schema per output shape, named after the shape:
// pgherd.instance/v1 is pgherd.instance.v1.json.
var schemaDir = filepath.Join("..", "docs", "schemas")

var (
	schemasOnce sync.Once
	schemas     *jsonschema.Compiler
	schemaIDs   map[string]string // shape name → $id
	schemasErr  error
)

// loadSchemas reads every schema file once, so that their $refs resolve
// among them without any network.
func loadSchemas() (*jsonschema.Compiler, map[string]string, error) {
	schemasOnce.Do(func() {
		schemas, schemaIDs = jsonschema.NewCompiler(), map[string]string{}
		files, _ := filepath.Glob(filepath.Join(schemaDir, "*.json"))
		for _, file := range files {
			f, err := os.Open(file)
			if err != nil {
				schemasErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(f)
			f.Close()
			if err != nil {
				schemasErr = fmt.Errorf("%s: %w", file, err)
				return
			}
			m, _ := doc.(map[string]any)
			id, _ := m["$id"].(string)
			title, _ := m["title"].(string)
			if id == "" || strings.ReplaceAll(title, "/", ".")+".json" != filepath.Base(file) {
				schemasErr = fmt.Errorf("%s: want a $id and a title naming the shape as the file does", file)
				return
			}
			if err := schemas.AddResource(id, doc); err != nil {
				schemasErr = err
				return
			}
			schemaIDs[title] = id
		}
	})
	return schemas, schemaIDs, schemasErr
}

// validateJSON checks data against the schema of shape name.
func validateJSON(name, data string) error {
	c, ids, err := loadSchemas()
	if err != nil {
		return err
	}
	id, ok := ids[name]
	if !ok {
		return fmt.Errorf("no schema %s in docs/schemas", name)
	}
	sch, err := c.Compile(id)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(data))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(v)
}

// jsonSchemaCmd validates stdout (or FILE) against a schema of docs/schemas:
// jsonschema NAME [FILE], NAME such as pgherd.instance/v1.
func jsonSchemaCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: jsonschema NAME [FILE]")
	}
	name := "stdout"
	if len(args) == 2 {
		name = args[1]
	}
	if err := validateJSON(args[0], ts.ReadFile(name)); err != nil {
		ts.Fatalf("%s does not match %s: %v", name, args[0], err)
	}
}

// TestSchemasCompile: every schema file is a valid JSON Schema.
func TestSchemasCompile(t *testing.T) {
	c, ids, err := loadSchemas()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 {
		t.Fatal("no schema in docs/schemas")
	}
	for name, id := range ids {
		if _, err := c.Compile(id); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestJSONContract: every command with -o is listed in docs/json.md with
// its schema, and some script runs it with -o json and validates what it
// prints against that schema (the next command after it is 'jsonschema').
func TestJSONContract(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The mapping table: | `pgherd instance get` | `pgherd.instance/v1` |
	row := regexp.MustCompile("(?m)^\\| `(pgherd [a-z -]+?)` \\| `(pgherd\\.[a-z-]+/v\\d+)` \\|")
	documented := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = append(documented[m[1]], m[2])
	}
	ios, _, _, _ := iostreams.Test()
	root := cli.NewCmdRoot(cli.NewFactory(ios))
	validated := scriptValidations(t, root)
	if _, ids, err := loadSchemas(); err == nil {
		for name := range ids {
			if !strings.Contains(string(doc), "`"+name+"`") {
				t.Errorf("docs/schemas has %s, which docs/json.md does not describe", name)
			}
		}
	}
	var cmds []string
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("output") != nil {
			cmds = append(cmds, c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	sort.Strings(cmds)
	for _, c := range cmds {
		names, ok := documented[c]
		if !ok {
			t.Errorf("%s has -o but no row in docs/json.md's table of schemas", c)
			continue
		}
		for _, name := range names {
			if _, ids, err := loadSchemas(); err == nil && ids[name] == "" {
				t.Errorf("%s: docs/json.md names %s, which docs/schemas lacks", c, name)
			}
			if !validated[c+" "+name] {
				t.Errorf("no script runs '%s ... -o json' and then 'jsonschema %s'", c, name)
			}
		}
	}
}

// scriptValidations returns "COMMAND PATH SCHEMA" for every script line that
// runs a pgherd command with -o json and is followed, before the next exec,
// by 'jsonschema SCHEMA'.
func scriptValidations(t *testing.T, root *cobra.Command) map[string]bool {
	files, _ := filepath.Glob(filepath.Join("testdata", "script", "*.txtar"))
	out := map[string]bool{}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		var last string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fields := strings.Fields(strings.TrimPrefix(line, "! "))
			if len(fields) > 2 && fields[0] == "exec" && fields[1] == "pgherd" && strings.Contains(line, "-o json") {
				if c, _, err := root.Find(fields[2:]); err == nil {
					last = c.CommandPath()
				}
				continue
			}
			if len(fields) == 2 && fields[0] == "jsonschema" && last != "" {
				out[last+" "+fields[1]] = true
			}
			if fields[0] == "exec" {
				last = ""
			}
		}
		f.Close()
	}
	return out
}
