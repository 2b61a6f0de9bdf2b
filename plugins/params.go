package plugins

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	paramRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	intRE     = regexp.MustCompile(`^-?[0-9]{1,18}$`)
	decimalRE = regexp.MustCompile(`^-?[0-9]{1,18}(\.[0-9]{1,18})?$`)
)

// CheckParams checks params against a descriptor's schema and returns them
// with defaults filled in. Hosts call it before a plugin sees the
// parameters, and plugins may call it at the top of Plan. The error wraps
// ErrInvalidParams and lists the accepted parameters.
func CheckParams(d Descriptor, params map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(d.Params))
	var problems []string
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.ContainsFunc(d.Params, func(p Param) bool { return p.Name == k }) {
			problems = append(problems, fmt.Sprintf("unknown parameter %q", k))
		}
	}
	for _, p := range d.Params {
		v, ok := params[p.Name]
		if !ok {
			if p.Required {
				problems = append(problems, fmt.Sprintf("missing required parameter %q", p.Name))
				continue
			}
			if p.Default == "" {
				continue
			}
			v = p.Default
		}
		if err := checkValue(p, v); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		out[p.Name] = v
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w for plugin %s: %s; %s", ErrInvalidParams, d.Name, strings.Join(problems, "; "), Accepted(d))
	}
	return out, nil
}

// Accepted describes the parameters a plugin accepts, for error messages:
// "accepted parameters: filter (string, optional) …".
func Accepted(d Descriptor) string {
	if len(d.Params) == 0 {
		return "plugin " + d.Name + " accepts no parameters"
	}
	parts := make([]string, len(d.Params))
	for i, p := range d.Params {
		typ := string(p.Type)
		if p.Type == ParamEnum {
			typ = "one of " + strings.Join(p.Enum, "|")
		}
		req := "optional"
		if p.Required {
			req = "required"
		} else if p.Default != "" {
			req = "default " + p.Default
		}
		parts[i] = fmt.Sprintf("%s (%s, %s)", p.Name, typ, req)
		if p.Description != "" {
			parts[i] += ": " + p.Description
		}
	}
	return "accepted parameters: " + strings.Join(parts, "; ")
}

func checkValue(p Param, v string) error {
	bad := func(want string) error {
		return fmt.Errorf("parameter %q is %q, want %s", p.Name, v, want)
	}
	switch p.Type {
	case ParamString:
		if len(v) > 4096 {
			return fmt.Errorf("parameter %q is %d bytes long, want at most 4096", p.Name, len(v))
		}
	case ParamInt:
		if !intRE.MatchString(v) {
			return bad("an integer")
		}
	case ParamDecimal:
		if !decimalRE.MatchString(v) {
			return bad("a decimal number such as 0.05")
		}
	case ParamBool:
		if v != "true" && v != "false" {
			return bad("true or false")
		}
	case ParamEnum:
		if !slices.Contains(p.Enum, v) {
			return bad("one of " + strings.Join(p.Enum, ", "))
		}
	default:
		return fmt.Errorf("parameter %q has unknown type %q", p.Name, p.Type)
	}
	return nil
}

// ValidateDescriptor checks that a descriptor is well formed: a valid
// name and version, a known protocol, unique well-typed parameters whose
// defaults fit their types, column uses that name declared parameters, and
// unique result columns. Hosts refuse plugins whose descriptor fails it.
func ValidateDescriptor(d Descriptor) error {
	var problems []string
	if !nameRE.MatchString(d.Name) {
		problems = append(problems, fmt.Sprintf("name %q is not lower-case letters, digits and dashes", d.Name))
	}
	if d.Version == "" || strings.ContainsAny(d.Version, " \t\n") {
		problems = append(problems, fmt.Sprintf("version %q is empty or has spaces", d.Version))
	}
	if !slices.Contains(Protocols, d.Protocol) {
		problems = append(problems, fmt.Sprintf("protocol %q is not one of %v", d.Protocol, Protocols))
	}
	seen := map[string]bool{}
	for _, p := range d.Params {
		if !paramRE.MatchString(p.Name) {
			problems = append(problems, fmt.Sprintf("parameter name %q is not lower-case letters, digits and underscores", p.Name))
		}
		if seen[p.Name] {
			problems = append(problems, fmt.Sprintf("parameter %q declared twice", p.Name))
		}
		seen[p.Name] = true
		if p.Type == ParamEnum && len(p.Enum) == 0 {
			problems = append(problems, fmt.Sprintf("enum parameter %q lists no values", p.Name))
		}
		if p.Type != ParamEnum && len(p.Enum) > 0 {
			problems = append(problems, fmt.Sprintf("parameter %q of type %s lists enum values", p.Name, p.Type))
		}
		if p.Required && p.Default != "" {
			problems = append(problems, fmt.Sprintf("required parameter %q has a default", p.Name))
		}
		if p.Default != "" {
			if err := checkValue(p, p.Default); err != nil {
				problems = append(problems, "default: "+err.Error())
			}
		} else if err := checkValue(p, ""); err != nil && strings.Contains(err.Error(), "unknown type") {
			problems = append(problems, err.Error())
		}
	}
	for _, u := range d.Reads {
		if !seen[u.Param] {
			problems = append(problems, fmt.Sprintf("reads columns named by undeclared parameter %q", u.Param))
		}
		if u.Side != Querier && u.Side != Responder && u.Side != Both {
			problems = append(problems, fmt.Sprintf("reads columns on side %q, want querier, responder or both", u.Side))
		}
	}
	cols := map[string]bool{}
	for _, c := range d.ResultColumns {
		if c == "" || cols[c] {
			problems = append(problems, fmt.Sprintf("result column %q is empty or repeated", c))
		}
		cols[c] = true
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid descriptor of plugin %q: %s", d.Name, strings.Join(problems, "; "))
	}
	return nil
}

// Format formats a cell of column c as it appeared in the dataset file (""
// for null).
func (c Column) Format(v Value) string {
	switch {
	case v.Null:
		return ""
	case c.Type == ColumnInteger:
		return strconv.FormatInt(v.Int, 10)
	case c.Type == ColumnDecimal:
		s := strconv.FormatInt(v.Int, 10)
		if c.Scale <= 0 {
			return s
		}
		neg := v.Int < 0
		if neg {
			s = s[1:]
		}
		if len(s) <= c.Scale {
			s = strings.Repeat("0", c.Scale-len(s)+1) + s
		}
		s = s[:len(s)-c.Scale] + "." + s[len(s)-c.Scale:]
		if neg {
			s = "-" + s
		}
		return s
	}
	return v.Text
}

// ColumnIndex returns the index of the column named name, or an error
// saying the dataset view has no such (allowed) column.
func ColumnIndex(cols []Column, name string) (int, error) {
	for i, c := range cols {
		if c.Name == name {
			return i, nil
		}
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return -1, fmt.Errorf("the dataset view has no column %q (it has: %s); check the dataset's columns and the policy that allows them", name, strings.Join(names, ", "))
}

// ListParam splits a comma-separated parameter value into trimmed,
// non-empty entries.
func ListParam(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// PrepareRows is the loop of a typical Prepare: it reads rows chunk by
// chunk until the end, stops when ctx ends, turns each row into at most one
// item with item (keep false skips the row), and emits the items of every
// chunk that has some. The items slice is reused between chunks; Values
// that item returns are the host's to keep.
func PrepareRows(ctx context.Context, rows RowReader, emit func([]Item) error, item func(Row) (it Item, keep bool, err error)) error {
	items := make([]Item, 0, MaxChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk, err := rows.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		items = items[:0]
		for _, r := range chunk {
			it, keep, err := item(r)
			if err != nil {
				return err
			}
			if keep {
				items = append(items, it)
			}
		}
		if len(items) > 0 {
			if err := emit(items); err != nil {
				return err
			}
		}
	}
}
