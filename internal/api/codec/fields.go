package codec

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kubeyard/kubeyard/internal/status"
)

// Fields is the set of request fields an endpoint honours, as dotted paths:
// "cluster.name", "cluster.nodePools[].name" for array elements,
// "cluster.resourceLabels.*" for any key of a map. A field the engine does
// not carry out may still come at the value that means the same as leaving
// it out (off, or GKE's default), as real clients always send some: such a
// field is listed with that value in JSON, "cluster.legacyAbac.enabled=false",
// once for each such value.
type Fields []string

// rules are Fields parsed: the paths honoured, and the values accepted of
// the others.
type rules struct {
	honoured map[string]bool
	defaults map[string][]any
}

func (f Fields) rules() rules {
	r := rules{honoured: map[string]bool{}, defaults: map[string][]any{}}
	for _, field := range f {
		path, value, ok := strings.Cut(field, "=")
		if !ok {
			r.honoured[path] = true
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(value), &v); err != nil {
			panic("codec: the default of " + path + " is not JSON: " + value)
		}
		r.defaults[path] = append(r.defaults[path], v)
	}
	return r
}

// accepts says whether value, at a path not honoured, means the same as
// leaving it out: a listed default, or an object or list that sets
// nothing.
func (r rules) accepts(path string, value any) bool {
	if empty(value) {
		return true
	}
	for _, d := range r.defaults[path] {
		if reflect.DeepEqual(d, value) {
			return true
		}
	}
	return false
}

// empty says whether v sets nothing: an empty list, or an object whose
// fields are all empty ({"window": {}}).
func empty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for _, f := range t {
			if !empty(f) {
				return false
			}
		}
		return true
	case []any:
		return len(t) == 0
	}
	return false
}

// Decode reads a JSON request body into v after checking that every field in
// it is one the engine honours, or at a value that means the same as leaving
// it out: any other field, or a value the engine does not carry out, is
// INVALID_ARGUMENT naming it, never silently dropped.
//
// The body is decoded into v, and into each of more: shapes with pointer
// fields tell a field at its zero value from one left out.
func Decode(r *http.Request, allowed Fields, v any, more ...any) error {
	return DecodeMessage(r, allowed, nil, v, more...)
}

// DecodeMessage is Decode for a request whose proto message is md: enums
// given as numbers (as the clients generated from the protos send them)
// are read as their names.
func DecodeMessage(r *http.Request, allowed Fields, md protoreflect.MessageDescriptor, v any, more ...any) error {
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
	if md != nil {
		enumNames(obj, md)
		if body, err = json.Marshal(obj); err != nil {
			return err
		}
	}
	if field := firstUnsupported(obj, "", allowed.rules()); field != "" {
		return status.Invalid(field, "Field %q is not supported by kubeyard yet.", field)
	}
	for _, target := range append([]any{v}, more...) {
		if err := json.Unmarshal(body, target); err != nil {
			return status.Invalid("", "Invalid JSON payload received. %v", err)
		}
	}
	return nil
}

// firstUnsupported returns the first field (in sorted order, for stable
// errors) under prefix that the rules do not accept.
func firstUnsupported(v any, prefix string, r rules) string {
	allowed := r.honoured
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
			if !allowed[path] && r.accepts(path, t[k]) {
				continue
			}
			if !allowed[path] && !r.hasChild(path) {
				return displayPath(path)
			}
			if f := firstUnsupported(t[k], path, r); f != "" {
				return f
			}
		}
	case []any:
		for _, item := range t {
			if f := firstUnsupported(item, prefix+"[]", r); f != "" {
				return f
			}
		}
	}
	return ""
}

// hasChild reports whether some field honoured, or with a default, lies
// below path.
func (r rules) hasChild(path string) bool {
	below := func(f string) bool { return strings.HasPrefix(f, path+".") || strings.HasPrefix(f, path+"[]") }
	for f := range r.honoured {
		if below(f) {
			return true
		}
	}
	for f := range r.defaults {
		if below(f) {
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
	for _, field := range f {
		path, _, _ := strings.Cut(field, "=")
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
