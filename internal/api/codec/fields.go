package codec

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"github.com/kubeyard/kubeyard/internal/status"
)

// Fields is the set of request fields an endpoint honours, as dotted paths:
// "cluster.name", "cluster.nodePools[].name" for array elements,
// "cluster.resourceLabels.*" for any key of a map.
type Fields []string

// Decode reads a JSON request body into v after checking that every field in
// it is one the engine honours: an unknown field, or one the engine does not
// carry out yet, is INVALID_ARGUMENT naming it, never silently dropped.
func Decode(r *http.Request, allowed Fields, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 4<<20))
	if err != nil {
		return status.Invalid("", "Could not read the request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		return status.Invalid("", "Invalid JSON payload received. %v", err)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return status.Invalid("", "Invalid JSON payload received: the body must be a JSON object.")
	}
	set := map[string]bool{}
	for _, f := range allowed {
		set[f] = true
	}
	if field := firstUnsupported(obj, "", set); field != "" {
		return status.Invalid(field, "Field %q is not supported by kubeyard yet.", field)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return status.Invalid("", "Invalid JSON payload received. %v", err)
	}
	return nil
}

// firstUnsupported returns the first field (in sorted order, for stable
// errors) under prefix that allowed does not cover.
func firstUnsupported(v any, prefix string, allowed map[string]bool) string {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			path := join(prefix, k)
			if allowed[join(prefix, "*")] {
				continue // a map of free-form keys (labels, metadata)
			}
			if !allowed[path] && !hasChild(allowed, path) {
				return displayPath(path)
			}
			if f := firstUnsupported(t[k], path, allowed); f != "" {
				return f
			}
		}
	case []any:
		for _, item := range t {
			if f := firstUnsupported(item, prefix+"[]", allowed); f != "" {
				return f
			}
		}
	}
	return ""
}

// hasChild reports whether some allowed field lies below path.
func hasChild(allowed map[string]bool, path string) bool {
	for f := range allowed {
		if strings.HasPrefix(f, path+".") || strings.HasPrefix(f, path+"[]") {
			return true
		}
	}
	return false
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func displayPath(p string) string { return strings.ReplaceAll(p, "[]", "[0]") }

// Missing returns the fields that msg, a request message type, does not
// have: a typo in an allowlist would refuse what clients send.
func (f Fields) Missing(msg any) []string {
	var out []string
	for _, path := range f {
		if !fieldExists(reflect.TypeOf(msg), path) {
			out = append(out, path)
		}
	}
	return out
}

func fieldExists(typ reflect.Type, path string) bool {
	for _, seg := range strings.Split(path, ".") {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if seg == "*" {
			return typ.Kind() == reflect.Map
		}
		seg = strings.TrimSuffix(seg, "[]")
		found := false
		for i := range typ.NumField() {
			if tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ","); tag == seg {
				typ, found = typ.Field(i).Type, true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
