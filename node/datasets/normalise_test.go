package datasets

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// residentID builds an 18-digit resident ID with a valid check character,
// computed here from the GB 11643-1999 definition (weights 2^(17-i) mod 11,
// check value (12 - sum mod 11) mod 11, 10 written X), independently of
// the package's table.
func residentID(region, birth, seq string) string {
	body := region + birth + seq
	if len(body) != 17 {
		panic("residentID: want 6+8+3 digits")
	}
	sum := 0
	for i := 0; i < 17; i++ {
		w := 1
		for j := 0; j < 17-i; j++ {
			w = w * 2 % 11
		}
		sum += int(body[i]-'0') * w
	}
	c := (12 - sum%11) % 11
	if c == 10 {
		return body + "X"
	}
	return body + fmt.Sprint(c)
}

// idWithCheck returns an ID born on birth whose check character is want.
func idWithCheck(t *testing.T, birth string, want byte) string {
	t.Helper()
	for seq := 0; seq < 1000; seq++ {
		id := residentID("110101", birth, fmt.Sprintf("%03d", seq))
		if id[17] == want {
			return id
		}
	}
	t.Fatalf("no sequence number gives check character %c", want)
	return ""
}

// wrongCheck replaces the check character with another valid-looking one.
func wrongCheck(id string) string {
	c := byte('0')
	if id[17] == '0' {
		c = '1'
	}
	return id[:17] + string(c)
}

func TestNormaliseCNID(t *testing.T) {
	valid := residentID("110101", "19900307", "123")
	withX := idWithCheck(t, "19851231", 'X')
	legacyFull := residentID("440301", "19750615", "271") // the 18-digit form of a 15-digit ID
	legacy := legacyFull[:6] + legacyFull[8:17]           // drop "19" and the check character
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "valid", in: valid, want: valid},
		{name: "surrounding spaces", in: "  " + valid + "\t", want: valid},
		{name: "lower-case x", in: strings.ToLower(withX), want: withX},
		{name: "upper-case X", in: withX, want: withX},
		{name: "full-width digits", in: "１１０１０１" + valid[6:], want: valid},
		{name: "legacy 15 digits", in: legacy, want: legacyFull},
		{name: "wrong check digit", in: wrongCheck(valid), wantErr: "check character is"},
		{name: "X where a digit belongs", in: strings.ToLower(wrongCheck(withX)), wantErr: "check character"},
		{name: "letter inside", in: valid[:5] + "A" + valid[6:], wantErr: "character 6"},
		{name: "bad last character", in: valid[:17] + "Y", wantErr: "digit or X"},
		{name: "17 characters", in: valid[:17], wantErr: "has 17 characters"},
		{name: "empty", in: "  ", wantErr: "empty"},
		{name: "no such date", in: residentID("110101", "19900230", "123"), wantErr: "not a real date"},
		{name: "before 1900", in: residentID("110101", "18991231", "123"), wantErr: "not plausible"},
		{name: "in the future", in: residentID("110101", "29990101", "123"), wantErr: "not plausible"},
		{name: "legacy with a letter", in: legacy[:14] + "X", wantErr: "not a digit"},
		{name: "legacy bad date", in: "110101901301123", wantErr: "not a real date"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalise(KindCNID, tc.in)
			checkNormalise(t, KindCNID, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestLegacyAndFullIDsMatch(t *testing.T) {
	for _, birth := range []string{"19000101", "19450815", "19991231"} {
		full := residentID("320102", birth, "045")
		legacy := full[:6] + full[8:17]
		a, err1 := Normalise(KindCNID, full)
		b, err2 := Normalise(KindCNID, legacy)
		if err1 != nil || err2 != nil || a != b {
			t.Errorf("Normalise(%s) = %q, %v and Normalise(%s) = %q, %v; want the same ID", full, a, err1, legacy, b, err2)
		}
		if Key(KindCNID, a) != "cn_id:"+full {
			t.Errorf("Key = %q, want cn_id:%s", Key(KindCNID, a), full)
		}
	}
}

func TestNormalisePhone(t *testing.T) {
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "plain", in: "13812345678", want: "13812345678"},
		{name: "spaces", in: " 138 1234 5678 ", want: "13812345678"},
		{name: "+86", in: "+8613812345678", want: "13812345678"},
		{name: "+86 with spaces", in: "+86 138 1234 5678", want: "13812345678"},
		{name: "0086 with dashes", in: "0086-138-1234-5678", want: "13812345678"},
		{name: "86 without plus", in: "86 19912345678", want: "19912345678"},
		{name: "parentheses", in: "(+86) 159-1234-5678", want: "15912345678"},
		{name: "full-width", in: "１３８１２３４５６７８", want: "13812345678"},
		{name: "other country", in: "+1 415 555 0100", wantErr: "not a mainland China number"},
		{name: "second digit 2", in: "12812345678", wantErr: "start with 13-19"},
		{name: "landline", in: "010-12345678", wantErr: "start with 13-19"},
		{name: "too short", in: "1381234567", wantErr: "has 10 digits, want 11"},
		{name: "too long", in: "138123456789", wantErr: "has 12 digits"},
		{name: "letter", in: "138a1234567", wantErr: `contains 'a'`},
		{name: "plus inside", in: "138+12345678", wantErr: `contains '+'`},
		{name: "empty", in: " - ", wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Normalise(KindPhone, tc.in)
			checkNormalise(t, KindPhone, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestNormaliseEmailAndRaw(t *testing.T) {
	tests := []struct {
		kind, in, want, wantErr string
	}{
		{KindEmail, " Alice.Wang@Example.COM ", "alice.wang@example.com", ""},
		{KindEmail, "a@b", "a@b", ""},
		{KindEmail, "no-at.example.com", "", "no @"},
		{KindEmail, "a@b@c", "", "more than one @"},
		{KindEmail, "@example.com", "", "nothing before the @"},
		{KindEmail, "alice@", "", "nothing after the @"},
		{KindEmail, "ali ce@example.com", "", "whitespace"},
		{KindEmail, "", "", "empty"},
		{KindRaw, "  张三|1990-03-07 ", "张三|1990-03-07", ""},
		{KindRaw, " \t ", "", "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.in, func(t *testing.T) {
			got, err := Normalise(tc.kind, tc.in)
			checkNormalise(t, tc.kind, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func checkNormalise(t *testing.T, kind, in, got string, err error, want, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Normalise(%s, %q) = %q, %v; want an error containing %q", kind, in, got, err, wantErr)
		}
		if !errors.Is(err, ErrInvalidID) {
			t.Errorf("Normalise(%s, %q) error %v does not wrap ErrInvalidID", kind, in, err)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("Normalise(%s, %q) = %q, %v; want %q", kind, in, got, err, want)
	}
	if again, err := Normalise(kind, got); err != nil || again != got {
		t.Errorf("Normalise(%s, %q) again = %q, %v; want it unchanged", kind, got, again, err)
	}
}

func TestNormaliseUnknownKind(t *testing.T) {
	_, err := Normalise("passport", "X")
	if err == nil || !strings.Contains(err.Error(), "cn_id, phone, email, raw") {
		t.Errorf("Normalise(passport) = %v, want an error listing the kinds", err)
	}
}

func TestKeyIsUnambiguous(t *testing.T) {
	tests := []struct {
		a, b []string
	}{
		{[]string{"a|b"}, []string{"a", "b"}},
		{[]string{`a\`, "b"}, []string{`a\|b`}},
		{[]string{"a", "|b"}, []string{"a|", "b"}},
		{[]string{""}, []string{"", ""}},
	}
	for _, tc := range tests {
		ka, kb := Key(KindRaw, tc.a...), Key(KindRaw, tc.b...)
		if ka == kb {
			t.Errorf("Key(%q) = Key(%q) = %q, want different keys", tc.a, tc.b, ka)
		}
	}
	if got := Key(KindRaw, "张三", "1990-03-07"); got != "raw:张三|1990-03-07" {
		t.Errorf("Key(张三, 1990-03-07) = %q, want raw:张三|1990-03-07", got)
	}
	if Key(KindPhone, "13812345678") == Key(KindRaw, "13812345678") {
		t.Error("a phone and a raw identifier with the same digits have the same key")
	}
}

func FuzzNormalise(f *testing.F) {
	for _, s := range []string{"110101199003071234", "11010119900307123x", "110101900307123", "+86 138 1234 5678", "A@B.c", "  ", "\xff", "１３８"} {
		for k := range Kinds {
			f.Add(uint8(k), s)
		}
	}
	f.Fuzz(func(t *testing.T, k uint8, s string) {
		kind := Kinds[int(k)%len(Kinds)]
		got, err := Normalise(kind, s)
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Normalise(%s, %q) error %v does not wrap ErrInvalidID", kind, s, err)
			}
			return
		}
		if got == "" {
			t.Fatalf("Normalise(%s, %q) = empty string without an error", kind, s)
		}
		again, err := Normalise(kind, got)
		if err != nil || again != got {
			t.Fatalf("Normalise(%s, %q) = %q, then %q, %v; want idempotent", kind, s, got, again, err)
		}
	})
}
