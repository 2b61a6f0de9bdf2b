package synth

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Amount is a money amount in fen (hundredths of a yuan). It prints and
// parses as a decimal with exactly two places, e.g. "12345.67", and travels
// in JSON as that string, so no float ever touches it.
type Amount int64

// String formats a as a decimal with two places.
func (a Amount) String() string {
	sign, v := "", int64(a)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// ParseAmount parses a decimal with exactly two places ("12345.67").
func ParseAmount(s string) (Amount, error) {
	whole, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) != 2 || whole == "" || whole == "-" {
		return 0, fmt.Errorf("amount %q: want a decimal with two places, like 1234.50", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", s, err)
	}
	f, err := strconv.ParseUint(frac, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", s, err)
	}
	if strings.HasPrefix(whole, "-") {
		return Amount(w*100 - int64(f)), nil
	}
	return Amount(w*100 + int64(f)), nil
}

// MarshalJSON encodes a as a JSON string with two decimal places.
func (a Amount) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON decodes a JSON string written by MarshalJSON.
func (a *Amount) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("amount: want a JSON string: %w", err)
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
