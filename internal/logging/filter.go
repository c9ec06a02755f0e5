package logging

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tidwall/gjson"
)

// Filter is a parsed query of the Logging query language: comparisons of
// a log entry's fields (= != < <= > >= : =~ !~), global restrictions (a
// bare value some field must have), AND, OR, NOT (or -), parentheses and
// implicit AND. As in Cloud Logging, OR binds tighter than AND: `a OR b
// AND c` is `(a OR b) AND c`.
type Filter struct{ root node }

// Match says whether the entry matches; an empty filter matches all.
func (f *Filter) Match(r *record) bool { return f == nil || f.root == nil || f.root.match(r) }

// ParseFilter parses a filter; the error says where it went wrong.
func ParseFilter(s string) (*Filter, error) {
	p := &parser{src: s}
	p.skip()
	if p.done() {
		return &Filter{}, nil
	}
	n, err := p.expression()
	if err != nil {
		return nil, err
	}
	if !p.done() {
		return nil, p.errorf("unexpected %q", p.rest(20))
	}
	return &Filter{root: n}, nil
}

type node interface{ match(*record) bool }

type and []node
type or []node
type not struct{ n node }

func (a and) match(r *record) bool {
	for _, n := range a {
		if !n.match(r) {
			return false
		}
	}
	return true
}

func (o or) match(r *record) bool {
	for _, n := range o {
		if n.match(r) {
			return true
		}
	}
	return false
}

func (n not) match(r *record) bool { return !n.n.match(r) }

// parser is a recursive-descent parser over the filter's text:
//
//	expression = sequence { "AND" sequence }
//	sequence   = factor { factor }          (implicit AND)
//	factor     = term { "OR" term }
//	term       = [ "NOT" | "-" ] primary
//	primary    = "(" expression ")" | field op argument | value
//	argument   = value | "(" value { ("OR" | "AND") value } ")"
type parser struct {
	src string
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("at character %d: %s", p.pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) done() bool { return p.pos >= len(p.src) }

func (p *parser) rest(n int) string {
	s := p.src[p.pos:]
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

func (p *parser) skip() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

// keyword consumes an upper-case keyword (AND, OR, NOT) standing alone.
func (p *parser) keyword(k string) bool {
	if !strings.HasPrefix(p.src[p.pos:], k) {
		return false
	}
	end := p.pos + len(k)
	if end < len(p.src) && !unicode.IsSpace(rune(p.src[end])) && p.src[end] != '(' && p.src[end] != '"' {
		return false
	}
	p.pos = end
	p.skip()
	return true
}

func (p *parser) expression() (node, error) {
	ns, err := p.list(p.sequence, func() bool { return p.keyword("AND") })
	if len(ns) == 1 || err != nil {
		return first(ns), err
	}
	return and(ns), nil
}

func (p *parser) sequence() (node, error) {
	ns, err := p.list(p.factor, func() bool { return !p.done() && p.src[p.pos] != ')' && !p.at("AND") })
	if len(ns) == 1 || err != nil {
		return first(ns), err
	}
	return and(ns), nil
}

func (p *parser) factor() (node, error) {
	ns, err := p.list(p.term, func() bool { return p.keyword("OR") })
	if len(ns) == 1 || err != nil {
		return first(ns), err
	}
	return or(ns), nil
}

// list parses one or more of item while more says another follows.
func (p *parser) list(item func() (node, error), more func() bool) ([]node, error) {
	var out []node
	for {
		n, err := item()
		if err != nil {
			return nil, err
		}
		if out = append(out, n); !more() {
			return out, nil
		}
	}
}

func first(ns []node) node {
	if len(ns) == 0 {
		return nil
	}
	return ns[0]
}

func (p *parser) at(k string) bool {
	save := p.pos
	ok := p.keyword(k)
	p.pos = save
	return ok
}

func (p *parser) term() (node, error) {
	if p.keyword("NOT") {
		n, err := p.primary()
		return not{n}, err
	}
	if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && !unicode.IsSpace(rune(p.src[p.pos+1])) {
		p.pos++
		n, err := p.primary()
		return not{n}, err
	}
	return p.primary()
}

func (p *parser) primary() (node, error) {
	if p.done() {
		return nil, p.errorf("the filter ends where a comparison was expected")
	}
	if p.src[p.pos] == '(' {
		p.pos++
		p.skip()
		n, err := p.expression()
		if err != nil {
			return nil, err
		}
		if p.done() || p.src[p.pos] != ')' {
			return nil, p.errorf("missing )")
		}
		p.pos++
		p.skip()
		return n, nil
	}
	if p.at("AND") || p.at("OR") {
		return nil, p.errorf("%q where a comparison was expected", p.rest(3))
	}
	path, quoted, err := p.path()
	if err != nil {
		return nil, err
	}
	if len(path) == 1 && !quoted && !p.done() && p.src[p.pos] == '(' {
		return p.function(path[0])
	}
	p.skip()
	op := p.operator()
	if op == "" {
		// A value standing alone: a global restriction.
		return global{value: strings.ToLower(strings.Join(path, "."))}, nil
	}
	p.skip()
	return p.argument(fieldOf(path), op)
}

// path reads a field path: segments separated by dots, each a bare word
// or a quoted string. quoted says whether it was one quoted string.
func (p *parser) path() (segments []string, quoted bool, err error) {
	for {
		if p.done() {
			return nil, false, p.errorf("the filter ends inside a field name")
		}
		if p.src[p.pos] == '"' {
			s, err := p.quoted()
			if err != nil {
				return nil, false, err
			}
			segments = append(segments, s)
			quoted = len(segments) == 1
		} else {
			start := p.pos
			for p.pos < len(p.src) && isWordChar(p.src[p.pos]) {
				p.pos++
			}
			if p.pos == start {
				return nil, false, p.errorf("unexpected %q", p.rest(10))
			}
			segments = append(segments, p.src[start:p.pos])
			quoted = false
		}
		if p.pos < len(p.src) && p.src[p.pos] == '.' {
			p.pos++
			quoted = false
			continue
		}
		return segments, quoted && len(segments) == 1, nil
	}
}

func isWordChar(c byte) bool {
	return c > ' ' && !strings.ContainsRune(`()"=!<>:.~,`, rune(c))
}

func (p *parser) quoted() (string, error) {
	start := p.pos
	p.pos++ // the opening quote
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch c {
		case '\\':
			if p.pos+1 >= len(p.src) {
				return "", p.errorf("the filter ends inside a string")
			}
			p.pos++
			switch e := p.src[p.pos]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(e)
			}
		case '"':
			p.pos++
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
		p.pos++
	}
	p.pos = start
	return "", p.errorf("unterminated string")
}

var operators = []string{"=~", "!~", "!=", "<=", ">=", "=", "<", ">", ":"}

func (p *parser) operator() string {
	for _, op := range operators {
		if strings.HasPrefix(p.src[p.pos:], op) {
			p.pos += len(op)
			return op
		}
	}
	return ""
}

// argument reads what a field is compared with: a value, or values in
// parentheses joined by OR or AND.
func (p *parser) argument(f field, op string) (node, error) {
	compare := func() (node, error) {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		c, err := newComparison(f, op, v)
		if err != nil {
			return nil, p.errorf("%v", err)
		}
		return c, nil
	}
	if p.done() || p.src[p.pos] != '(' {
		return compare()
	}
	p.pos++
	p.skip()
	joinAnd := false
	ns, err := p.list(compare, func() bool {
		if p.keyword("AND") {
			joinAnd = true
			return true
		}
		return p.keyword("OR")
	})
	if err != nil {
		return nil, err
	}
	if p.done() || p.src[p.pos] != ')' {
		return nil, p.errorf("missing ) after the values of %s", f.name)
	}
	p.pos++
	p.skip()
	if joinAnd {
		return and(ns), nil
	}
	return or(ns), nil
}

// value reads a quoted string or a bare word (which may hold colons, as
// an unquoted timestamp does).
func (p *parser) value() (string, error) {
	if p.done() {
		return "", p.errorf("the filter ends where a value was expected")
	}
	var v string
	if p.src[p.pos] == '"' {
		s, err := p.quoted()
		if err != nil {
			return "", err
		}
		v = s
	} else {
		start := p.pos
		for p.pos < len(p.src) && !unicode.IsSpace(rune(p.src[p.pos])) && p.src[p.pos] != ')' && p.src[p.pos] != '(' {
			p.pos++
		}
		if p.pos == start {
			return "", p.errorf("a value was expected, not %q", p.rest(10))
		}
		v = p.src[start:p.pos]
	}
	p.skip()
	return v, nil
}

// field is a path into a log entry.
type field struct {
	name string // as written, dotted
	path string // in gjson's syntax
}

func fieldOf(segments []string) field {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		var b strings.Builder
		for _, c := range s {
			if strings.ContainsRune(`.*?\|#@!=<>%`, c) {
				b.WriteByte('\\')
			}
			b.WriteRune(c)
		}
		escaped[i] = b.String()
	}
	return field{name: strings.Join(segments, "."), path: strings.Join(escaped, ".")}
}

// comparison is field op value, with the value prepared for the field's
// kind: a time for timestamps, a level for severity, a number where it
// reads as one, a regular expression for =~ and !~.
type comparison struct {
	f      field
	op     string
	value  string
	lower  string
	number float64
	isNum  bool
	at     time.Time
	level  int
	re     *regexp.Regexp
}

func newComparison(f field, op, value string) (node, error) {
	c := &comparison{f: f, op: op, value: value, lower: strings.ToLower(value)}
	c.number, c.isNum = parseNumber(value)
	switch {
	case op == "=~" || op == "!~":
		re, err := regexp.Compile(value)
		if err != nil {
			return nil, fmt.Errorf("%s: bad regular expression %q: %v", f.name, value, err)
		}
		c.re = re
	case f.name == "timestamp" || f.name == "receiveTimestamp":
		if op == ":" {
			break
		}
		t, err := parseTime(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a timestamp", f.name, value)
		}
		c.at = t
	case f.name == "severity":
		if op == ":" {
			break
		}
		l, ok := severityLevel(value)
		if !ok {
			return nil, fmt.Errorf("severity: %q is not a severity", value)
		}
		c.level = l
	}
	if op == "!=" || op == "!~" {
		positive := *c
		positive.op = map[string]string{"!=": "=", "!~": "=~"}[op]
		return not{&positive}, nil
	}
	return c, nil
}

func parseNumber(s string) (float64, bool) {
	n, err := strconv.ParseFloat(s, 64)
	return n, err == nil && !math.IsNaN(n)
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp")
}

func (c *comparison) match(r *record) bool {
	switch c.f.name {
	case "timestamp":
		if c.op != ":" && c.re == nil {
			return compareOrder(c.op, r.at.Compare(c.at))
		}
	case "logName":
		return c.matchString(r.logName)
	case "severity":
		if c.op != ":" && c.re == nil {
			return compareOrder(c.op, severityOf(r)-c.level)
		}
	}
	v := gjson.GetBytes(r.raw, c.f.path)
	if c.op == ":" && c.value == "*" {
		return v.Exists()
	}
	return c.matchValue(v)
}

func (c *comparison) matchValue(v gjson.Result) bool {
	switch {
	case !v.Exists():
		return false
	case v.IsArray():
		for _, e := range v.Array() {
			if c.matchValue(e) {
				return true
			}
		}
		return false
	case v.IsObject():
		// `jsonPayload:robot` looks in every field under jsonPayload.
		if c.op != ":" {
			return false
		}
		found := false
		v.ForEach(func(_, e gjson.Result) bool {
			found = c.matchValue(e)
			return !found
		})
		return found
	case v.Type == gjson.Number && c.isNum && c.re == nil && c.op != ":":
		return compareOrder(c.op, cmpFloat(v.Num, c.number))
	}
	return c.matchString(v.String())
}

func (c *comparison) matchString(s string) bool {
	switch c.op {
	case ":":
		return strings.Contains(strings.ToLower(s), c.lower)
	case "=~":
		return c.re.MatchString(s)
	case "=":
		if s == c.value {
			return true
		}
	}
	// Numbers written as strings (int64 fields) compare as numbers.
	if n, ok := parseNumber(s); ok && c.isNum {
		return compareOrder(c.op, cmpFloat(n, c.number))
	}
	return c.op != "=" && compareOrder(c.op, strings.Compare(s, c.value))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareOrder(op string, cmp int) bool {
	switch op {
	case "=":
		return cmp == 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

// global is a value standing alone: some field of the entry has it.
type global struct{ value string }

func (g global) match(r *record) bool {
	if strings.Contains(strings.ToLower(r.logName), g.value) {
		return true
	}
	found := false
	var walk func(v gjson.Result) bool
	walk = func(v gjson.Result) bool {
		if v.IsObject() || v.IsArray() {
			v.ForEach(func(_, e gjson.Result) bool { return walk(e) })
			return !found
		}
		found = strings.Contains(strings.ToLower(v.String()), g.value)
		return !found
	}
	walk(gjson.ParseBytes(r.raw))
	return found
}

// severities in order, as LogSeverity numbers them.
var severities = map[string]int{
	"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400,
	"ERROR": 500, "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800,
}

// ValidSeverity says whether s names a LogSeverity.
func ValidSeverity(s string) bool {
	_, ok := severities[strings.ToUpper(s)]
	return ok
}

func severityLevel(s string) (int, bool) {
	if l, ok := severities[strings.ToUpper(s)]; ok {
		return l, true
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func severityOf(r *record) int {
	l, _ := severityLevel(gjson.GetBytes(r.raw, "severity").String())
	return l
}

// function is one of the query language's functions: ip_in_net(field,
// "range") and log_id("name").
func (p *parser) function(name string) (node, error) {
	p.pos++ // (
	p.skip()
	var args []string
	for !p.done() && p.src[p.pos] != ')' {
		var arg string
		if p.src[p.pos] == '"' {
			s, err := p.quoted()
			if err != nil {
				return nil, err
			}
			arg = s
		} else {
			segments, _, err := p.path()
			if err != nil {
				return nil, err
			}
			arg = fieldOf(segments).path
		}
		args = append(args, arg)
		p.skip()
		if !p.done() && p.src[p.pos] == ',' {
			p.pos++
			p.skip()
		}
	}
	if p.done() {
		return nil, p.errorf("missing ) after the arguments of %s", name)
	}
	p.pos++
	p.skip()
	switch {
	case name == "ip_in_net" && len(args) == 2:
		prefix, err := netip.ParsePrefix(args[1])
		if err != nil {
			return nil, p.errorf("ip_in_net: %q is not an IP range", args[1])
		}
		return ipInNet{path: args[0], prefix: prefix.Masked()}, nil
	case name == "log_id" && len(args) == 1:
		return logID(args[0]), nil
	}
	return nil, p.errorf("unknown function %s with %d arguments (ip_in_net(field, range) and log_id(name) are known)", name, len(args))
}

// ipInNet is ip_in_net(field, range): the field holds an address in the
// range.
type ipInNet struct {
	path   string
	prefix netip.Prefix
}

func (f ipInNet) match(r *record) bool {
	a, err := netip.ParseAddr(gjson.GetBytes(r.raw, f.path).String())
	return err == nil && f.prefix.Contains(a)
}

// logID is log_id(name): the entry's log is name, in any project.
type logID string

func (l logID) match(r *record) bool {
	_, id, ok := strings.Cut(r.logName, "/logs/")
	return ok && (id == string(l) || id == strings.ReplaceAll(string(l), "/", "%2F"))
}
