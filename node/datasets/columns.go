package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ColumnType is the type of a value or label column.
type ColumnType string

const (
	// TypeInteger holds whole numbers (int64).
	TypeInteger ColumnType = "integer"
	// TypeDecimal holds numbers with a fixed number of decimal places: a
	// value is stored and returned as an int64 scaled by 10^Scale.
	TypeDecimal ColumnType = "decimal"
	// TypeCategory holds text from a small set (segment, region, product).
	TypeCategory ColumnType = "category"
	// TypeLabel is the type of every label column: free text such as a risk
	// flag, level or date, carried with the identifier.
	TypeLabel ColumnType = "label"
)

// maxDigits bounds the digits of a numeric value so that any value
// rescaled to its column's scale still fits an int64.
const maxDigits = 18

// Column describes one stored value or label column.
type Column struct {
	Name  string     `json:"name"`
	Type  ColumnType `json:"type"`
	Scale int        `json:"scale,omitempty"` // decimal places of a decimal column
	// Inferred is true when the type was inferred from the data rather
	// than declared in ImportOptions.ValueColumns.
	Inferred bool `json:"inferred,omitempty"`
}

// String returns the column as it can be declared: "amount:decimal(2)".
func (c Column) String() string {
	if c.Type == TypeDecimal {
		return fmt.Sprintf("%s:decimal(%d)", c.Name, c.Scale)
	}
	return c.Name + ":" + string(c.Type)
}

// columnSpec is a parsed ImportOptions.ValueColumns entry.
type columnSpec struct {
	name     string
	typ      ColumnType // "" when the type is to be inferred
	scale    int        // -1 when a decimal's scale is to be inferred
	isLabel  bool
	declared bool
}

// parseValueColumn parses "name", "name:integer", "name:int",
// "name:decimal", "name:decimal(2)" or "name:category". A suffix after the
// last colon that is not a type is part of the name.
func parseValueColumn(s string) (columnSpec, error) {
	s = strings.TrimSpace(s)
	spec := columnSpec{name: s, scale: -1}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		name, typ := strings.TrimSpace(s[:i]), strings.ToLower(strings.TrimSpace(s[i+1:]))
		switch {
		case typ == "int" || typ == "integer":
			spec = columnSpec{name: name, typ: TypeInteger, scale: 0, declared: true}
		case typ == "decimal":
			spec = columnSpec{name: name, typ: TypeDecimal, scale: -1, declared: true}
		case strings.HasPrefix(typ, "decimal(") && strings.HasSuffix(typ, ")"):
			n, err := strconv.Atoi(typ[len("decimal(") : len(typ)-1])
			if err != nil || n < 0 || n > maxDigits {
				return spec, fmt.Errorf("value column %q: decimal scale must be 0 to %d, as in %s:decimal(2)", s, maxDigits, name)
			}
			spec = columnSpec{name: name, typ: TypeDecimal, scale: n, declared: true}
		case typ == "category":
			spec = columnSpec{name: name, typ: TypeCategory, declared: true}
		}
	}
	if spec.name == "" {
		return spec, fmt.Errorf("value column %q has no name", s)
	}
	return spec, nil
}

// number is a parsed decimal literal: mant × 10^-scale.
type number struct {
	mant      int64
	scale     int
	intDigits int // digits before the point, not counting a lone 0
}

var errNotNumber = errors.New("not a number")

// parseNumber accepts -?(0|[1-9][0-9]*)(\.[0-9]+)? with at most 18 digits.
// Negative zero and leading zeros are refused, so a number's text can be
// reproduced exactly from (mant, scale) — "007" stays a category value.
func parseNumber(s string) (number, error) {
	var n number
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	ip, fp, hasPoint := strings.Cut(s, ".")
	if ip == "" || (hasPoint && fp == "") || (len(ip) > 1 && ip[0] == '0') ||
		firstNonDigit(ip) >= 0 || firstNonDigit(fp) >= 0 {
		return n, errNotNumber
	}
	if ip != "0" {
		n.intDigits = len(ip)
	}
	if n.intDigits+len(fp) > maxDigits {
		return n, fmt.Errorf("has more than %d digits", maxDigits)
	}
	m, err := strconv.ParseInt(ip+fp, 10, 64)
	if err != nil {
		return n, errNotNumber
	}
	if neg {
		if m == 0 {
			return n, errNotNumber
		}
		m = -m
	}
	n.mant, n.scale = m, len(fp)
	return n, nil
}

var pow10 = func() [maxDigits + 1]int64 {
	var p [maxDigits + 1]int64
	p[0] = 1
	for i := 1; i <= maxDigits; i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// formatNumber renders mant × 10^-scale with exactly scale decimals.
func formatNumber(mant int64, scale int) string {
	s := strconv.FormatInt(mant, 10)
	if scale <= 0 {
		return s
	}
	neg := mant < 0
	if neg {
		s = s[1:]
	}
	if len(s) <= scale {
		s = strings.Repeat("0", scale-len(s)+1) + s
	}
	s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	if neg {
		s = "-" + s
	}
	return s
}

// Value is one cell of a row.
type Value struct {
	Type ColumnType `json:"type"`
	Null bool       `json:"null,omitempty"` // the cell was empty
	// Int is the value of an integer column, or a decimal column's value
	// × 10^Scale.
	Int   int64 `json:"int,omitempty"`
	Scale int   `json:"scale,omitempty"`
	// Text is the value of a category or label column.
	Text string `json:"text,omitempty"`
}

// String formats the value as it appeared in the file ("" for null).
func (v Value) String() string {
	switch {
	case v.Null:
		return ""
	case v.Type == TypeInteger || v.Type == TypeDecimal:
		return formatNumber(v.Int, v.Scale)
	default:
		return v.Text
	}
}

// Cell encoding inside a stored row record: one tag byte, then
// tagNum: zig-zag varint mantissa and one scale byte; tagText: uvarint
// length and bytes; tagNull: nothing.
const (
	tagNull byte = 0
	tagNum  byte = 1
	tagText byte = 2
)

func appendNull(b []byte) []byte { return append(b, tagNull) }

func appendNum(b []byte, n number) []byte {
	b = append(b, tagNum)
	b = binary.AppendVarint(b, n.mant)
	return append(b, byte(n.scale))
}

func appendText(b []byte, s string) []byte {
	b = append(b, tagText)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorruptRow = errors.New("corrupt row record")

// decodeCells decodes a row record into one Value per column; want[i]
// reports whether column i is returned (nil: all). out receives the values
// of the wanted columns in column order.
func decodeCells(rec []byte, cols []Column, want []bool, out []Value) ([]Value, error) {
	out = out[:0]
	for i, c := range cols {
		if len(rec) == 0 {
			return out, errCorruptRow
		}
		tag := rec[0]
		rec = rec[1:]
		v := Value{Type: c.Type, Scale: c.Scale}
		switch tag {
		case tagNull:
			v.Null = true
		case tagNum:
			m, n := binary.Varint(rec)
			if n <= 0 || len(rec) < n+1 {
				return out, errCorruptRow
			}
			sc := int(rec[n])
			rec = rec[n+1:]
			switch c.Type {
			case TypeInteger, TypeDecimal:
				if sc > c.Scale {
					return out, errCorruptRow
				}
				v.Int = m * pow10[c.Scale-sc]
			default:
				v.Text = formatNumber(m, sc)
			}
		case tagText:
			l, n := binary.Uvarint(rec)
			if n <= 0 || l > uint64(len(rec)-n) {
				return out, errCorruptRow
			}
			v.Text = string(rec[n : n+int(l)])
			rec = rec[n+int(l):]
		default:
			return out, errCorruptRow
		}
		if want == nil || want[i] {
			out = append(out, v)
		}
	}
	return out, nil
}

// quote shows a cell value in an error, shortened.
func quote(s string) string {
	if utf8.RuneCountInString(s) > 40 {
		r := []rune(s)
		s = string(r[:40]) + "…"
	}
	return strconv.Quote(s)
}
