package compute

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/kubeyard/kubeyard/internal/status"
)

// filter is a Compute list filter as gcloud rewrites its --filter for the
// server: terms `field eq "RE2"` or `field ne "RE2"` (the expression must
// match the whole value), optionally in parentheses, all of which must hold.
// gcloud does not filter again what it sent, so a filter is applied or
// refused, never ignored.
type filter []term

type term struct {
	path []string
	re   *regexp.Regexp
	eq   bool
}

var termRE = regexp.MustCompile(`^\(?\s*([A-Za-z][\w.]*)\s+(eq|ne)\s+("(?:[^"\\]|\\.)*"|'[^']*'|[^\s()]+)\s*\)?`)

// parseFilter parses the filter query parameter ("" filters nothing).
func parseFilter(s string) (filter, error) {
	var f filter
	rest := strings.TrimSpace(s)
	for rest != "" {
		m := termRE.FindStringSubmatch(rest)
		if m == nil {
			return nil, status.Invalid("filter", "Invalid list filter expression %q: kubeyard understands terms of the form `field eq \"regexp\"` and `field ne \"regexp\"`, combined with AND.", s)
		}
		value := m[3]
		if strings.HasPrefix(value, `"`) {
			value = strings.ReplaceAll(value[1:len(value)-1], `\"`, `"`)
		} else if strings.HasPrefix(value, `'`) {
			value = value[1 : len(value)-1]
		}
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return nil, status.Invalid("filter", "Invalid regular expression %q in the list filter: %v", value, err)
		}
		f = append(f, term{path: strings.Split(m[1], "."), re: re, eq: m[2] == "eq"})
		rest = strings.TrimSpace(rest[len(m[0]):])
		rest = strings.TrimSpace(strings.TrimPrefix(rest, "AND"))
	}
	return f, nil
}

// match says whether a resource passes every term.
func (f filter) match(resource any) bool {
	if len(f) == 0 {
		return true
	}
	data, err := json.Marshal(resource)
	if err != nil {
		return false
	}
	var obj any
	if json.Unmarshal(data, &obj) != nil {
		return false
	}
	for _, t := range f {
		v := obj
		for _, seg := range t.path {
			m, _ := v.(map[string]any)
			v = m[seg]
		}
		s := ""
		if v != nil {
			s = fmt.Sprint(v)
		}
		if t.re.MatchString(s) != t.eq {
			return false
		}
	}
	return true
}

// keep returns the items that pass the filter.
func keep[T any](f filter, items []T) []T {
	out := items[:0:0]
	for _, it := range items {
		if f.match(it) {
			out = append(out, it)
		}
	}
	return out
}
