package patroni

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"

	"gopkg.in/yaml.v3"
)

// ConfigYAML renders the cluster-wide (dynamic) configuration of GET
// /config as YAML with sorted keys, the form edit-config hands to an editor.
func ConfigYAML(cfg map[string]any) ([]byte, error) {
	if len(cfg) == 0 {
		return []byte("{}\n"), nil
	}
	return yaml.Marshal(wholeNumbers(cfg))
}

// wholeNumbers returns v with whole float64s (JSON numbers) as int64, so
// that YAML shows 1048576, not 1.048576e+06.
func wholeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = wholeNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = wholeNumbers(e)
		}
		return out
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	}
	return v
}

// ParseConfigYAML reads an edited configuration back, with the types GET
// /config has (numbers as JSON numbers), so that it compares equal to the
// original where nothing changed. The document must be a mapping.
func ParseConfigYAML(b []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("the edited configuration is not YAML: %w", err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("the edited configuration is a %T, not a mapping of settings", v)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("the edited configuration cannot be sent to Patroni: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// MergePatch returns the JSON merge patch (RFC 7386, what PATCH /config
// takes) that turns old into new: removed keys are null, changed values are
// new's, nested mappings are patched key by key. It is empty when old and
// new are equal.
func MergePatch(old, new map[string]any) map[string]any {
	patch := map[string]any{}
	for k := range old {
		if _, ok := new[k]; !ok {
			patch[k] = nil
		}
	}
	for k, nv := range new {
		ov, ok := old[k]
		om, oIsMap := ov.(map[string]any)
		nm, nIsMap := nv.(map[string]any)
		switch {
		case ok && oIsMap && nIsMap:
			if sub := MergePatch(om, nm); len(sub) > 0 {
				patch[k] = sub
			}
		case !ok || !reflect.DeepEqual(ov, nv):
			patch[k] = nv
		}
	}
	return patch
}
