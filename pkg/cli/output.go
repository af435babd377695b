package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/pgherd/pgherd/pkg/iostreams"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// outputFlag adds -o/--output to cmd and returns where its value lands.
func outputFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "output", "o", "", "output format: json or yaml (default: a table or text)")
}

func checkOutput(format string) error {
	switch format {
	case "", "json", "yaml":
		return nil
	}
	return usageError{fmt.Errorf("unknown output format %q: use json or yaml", format)}
}

// writeData prints v as JSON or YAML. YAML is derived from the JSON form so
// both carry the same names in the same order. Arrays and objects are never
// null (docs/json.md): a nil slice or map anywhere in v is written empty.
func writeData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(emptyNotNull(v), "", "  ")
	if err != nil {
		return err
	}
	if format == "json" {
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	return writeYAML(w, &n)
}

// writeYAML prints n in block style.
func writeYAML(w io.Writer, n *yaml.Node) error {
	blockStyle(n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return err
	}
	return enc.Close()
}

// writeTable prints rows under headers: styled with lipgloss on a color
// terminal, plain aligned columns otherwise.
func writeTable(ios *iostreams.IOStreams, headers []string, rows [][]string) error {
	if ios.ColorEnabled() {
		t := table.New().
			Border(lipgloss.NormalBorder()).
			BorderStyle(lipgloss.NewStyle().Foreground(lipgloss.Color("8"))).
			StyleFunc(func(row, _ int) lipgloss.Style {
				s := lipgloss.NewStyle().Padding(0, 1)
				if row == table.HeaderRow {
					return s.Bold(true)
				}
				return s
			}).
			Headers(headers...).
			Rows(rows...)
		_, err := fmt.Fprintln(ios.Out, t.Render())
		return err
	}
	tw := tabwriter.NewWriter(ios.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// blockStyle undoes the flow style that JSON input gives every node; an
// empty sequence stays [].
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// emptyNotNull returns v with every nil slice and map it reaches (through
// struct fields, pointers, slices and maps) replaced by an empty one.
func emptyNotNull(v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return v
	}
	p := reflect.New(rv.Type())
	p.Elem().Set(rv)
	fillNil(p.Elem())
	return p.Elem().Interface()
}

func fillNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			e := v.Elem()
			if v.Kind() == reflect.Interface && !e.CanSet() {
				c := reflect.New(e.Type()).Elem()
				c.Set(e)
				fillNil(c)
				v.Set(c)
				return
			}
			fillNil(e)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillNil(f)
			}
		}
	case reflect.Slice:
		if v.IsNil() {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		}
		for i := range v.Len() {
			fillNil(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
	}
}
