package datasets

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// Identifier kinds. The kind chooses the normaliser and is the namespace of
// every stored identifier, so values of different kinds never collide.
const (
	KindCNID  = "cn_id" // 18-digit PRC resident ID (15-digit legacy IDs converted)
	KindPhone = "phone" // mainland China mobile number, 11 digits
	KindEmail = "email" // e-mail address, lower-cased
	KindRaw   = "raw"   // any text, trimmed
)

// Kinds lists the identifier kinds Normalise accepts.
var Kinds = []string{KindCNID, KindPhone, KindEmail, KindRaw}

// ErrInvalidID is wrapped by every error Normalise returns for a bad value.
var ErrInvalidID = errors.New("invalid identifier")

// Normalise returns the canonical form of s as an identifier of the given
// kind, or an error wrapping ErrInvalidID that says what is wrong (without
// repeating the value, which is personal data).
//
//   - cn_id: surrounding spaces trimmed, full-width digits narrowed, a
//     lower-case check character x upper-cased; an 18-character ID must have
//     a valid ISO 7064 MOD 11-2 check character; a 15-digit legacy ID is
//     converted to 18 digits ("19" inserted before its 2-digit year, check
//     character computed), so both forms of one person's ID match; the
//     birth date must be a real date between 1900-01-01 and today.
//   - phone: spaces, dashes, dots and parentheses removed, full-width
//     characters narrowed, a +86, 0086 or 86 prefix stripped; the rest must
//     be 11 digits 1[3-9]xxxxxxxxx.
//   - email: trimmed and lower-cased; exactly one @ with non-empty parts and
//     no whitespace.
//   - raw: trimmed; must not be empty.
func Normalise(kind, s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid("is not valid UTF-8")
	}
	switch kind {
	case KindCNID:
		return normaliseCNID(s)
	case KindPhone:
		return normalisePhone(s)
	case KindEmail:
		return normaliseEmail(s)
	case KindRaw:
		s = strings.TrimSpace(s)
		if s == "" {
			return "", invalid("is empty")
		}
		return s, nil
	default:
		return "", fmt.Errorf("unknown identifier kind %q; use one of %s", kind, strings.Join(Kinds, ", "))
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidID}, args...)...)
}

// cnWeights are the ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 of the first
// 17 digits of a resident ID (GB 11643-1999).
var cnWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CNIDCheckChar returns the check character (0-9 or X) for the first 17
// digits of a resident ID. It panics if body is not 17 ASCII digits.
func CNIDCheckChar(body string) byte {
	if len(body) != 17 {
		panic("datasets: CNIDCheckChar needs 17 digits")
	}
	sum := 0
	for i := 0; i < 17; i++ {
		d := body[i]
		if d < '0' || d > '9' {
			panic("datasets: CNIDCheckChar needs 17 digits")
		}
		sum += int(d-'0') * cnWeights[i]
	}
	return "10X98765432"[sum%11]
}

func normaliseCNID(s string) (string, error) {
	s = width.Narrow.String(strings.TrimSpace(s))
	if s == "" {
		return "", invalid("is empty")
	}
	switch n := utf8.RuneCountInString(s); n {
	case 15:
		if i := firstNonDigit(s); i >= 0 {
			return "", invalid("character %d of a 15-digit legacy resident ID is not a digit", i+1)
		}
		body := s[:6] + "19" + s[6:]
		s = body + string(CNIDCheckChar(body))
	case 18:
		if i := firstNonDigit(s[:17]); i >= 0 {
			return "", invalid("character %d of the resident ID is not a digit", i+1)
		}
		c := s[17]
		if c == 'x' {
			c = 'X'
		}
		if c != 'X' && (c < '0' || c > '9') {
			return "", invalid("the last character of the resident ID must be a digit or X")
		}
		if want := CNIDCheckChar(s[:17]); c != want {
			return "", invalid("check character is %c, want %c: a digit is mistyped", c, want)
		}
		s = s[:17] + string(c)
	default:
		return "", invalid("resident ID has %d characters, want 18 (or 15 for a legacy ID)", n)
	}
	birth, err := time.Parse("20060102", s[6:14])
	if err != nil {
		return "", invalid("birth date %s-%s-%s is not a real date", s[6:10], s[10:12], s[12:14])
	}
	if birth.Year() < 1900 || birth.After(time.Now()) {
		return "", invalid("birth date %s is not plausible", birth.Format(time.DateOnly))
	}
	return s, nil
}

// firstNonDigit returns the index of the first byte that is not an ASCII
// digit, or -1.
func firstNonDigit(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return i
		}
	}
	return -1
}

func normalisePhone(s string) (string, error) {
	s = width.Narrow.String(s)
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsSpace(r), r == '-', r == '(', r == ')', r == '.':
		case r == '+' && b.Len() == 0, r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			return "", invalid("phone number contains %q; only digits, spaces, dashes, parentheses and a leading + are allowed", r)
		}
	}
	d := b.String()
	switch {
	case d == "":
		return "", invalid("is empty")
	case strings.HasPrefix(d, "+86"):
		d = d[3:]
	case strings.HasPrefix(d, "+"):
		return "", invalid("phone number is not a mainland China number (country code is not +86)")
	case strings.HasPrefix(d, "0086"):
		d = d[4:]
	case len(d) == 13 && strings.HasPrefix(d, "86"):
		d = d[2:]
	}
	if len(d) != 11 {
		return "", invalid("mobile number has %d digits, want 11", len(d))
	}
	if d[0] != '1' || d[1] < '3' || d[1] > '9' {
		return "", invalid("mobile number must start with 13-19")
	}
	return d, nil
}

func normaliseEmail(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", invalid("is empty")
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return "", invalid("e-mail address contains whitespace")
	}
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !ok:
		return "", invalid("e-mail address has no @")
	case strings.Contains(domain, "@"):
		return "", invalid("e-mail address has more than one @")
	case local == "":
		return "", invalid("e-mail address has nothing before the @")
	case domain == "":
		return "", invalid("e-mail address has nothing after the @")
	}
	return s, nil
}

// Key returns the namespaced identifier that the protocols hash:
// kind + ":" + the normalised parts. A single part is used as is (after
// escaping); the parts of a composite key are joined with "|", each part
// having "\" and "|" escaped with "\", so different splits of the same
// text never produce the same key. Parts must already be normalised.
func Key(kind string, parts ...string) string {
	return kind + ":" + joinParts(parts)
}

func joinParts(parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('|')
		}
		for j := 0; j < len(p); j++ {
			if p[j] == '\\' || p[j] == '|' {
				b.WriteByte('\\')
			}
			b.WriteByte(p[j])
		}
	}
	return b.String()
}

// SplitKey splits a namespaced identifier into its kind and its plain
// normalised value (the text after the kind's colon).
func SplitKey(key string) (kind, value string, ok bool) {
	return strings.Cut(key, ":")
}
