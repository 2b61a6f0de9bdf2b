package synth

import "time"

// dayNumber counts days since 1970-01-01 (UTC).
func dayNumber(y, m, d int) int {
	return int(time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// civil is the inverse of dayNumber.
func civil(n int) (y, m, d int) {
	t := time.Unix(int64(n)*86400, 0).UTC()
	return t.Year(), int(t.Month()), t.Day()
}

// isoDate formats a day number as YYYY-MM-DD.
func isoDate(n int) string {
	return time.Unix(int64(n)*86400, 0).UTC().Format(time.DateOnly)
}
