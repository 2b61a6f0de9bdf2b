package synth

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// ErrBadID is returned by CanonicalID for a string that is not an 18-digit
// resident ID with a correct check digit.
var ErrBadID = errors.New("not a valid 18-digit resident ID")

// areas are real county-level administrative division codes (GB/T 2260),
// two per province of Regions, so an ID's first six digits are plausible.
var areas = []struct {
	code     string
	province string
}{
	{"110101", "Beijing"}, {"110105", "Beijing"}, // Dongcheng, Chaoyang
	{"310101", "Shanghai"}, {"310115", "Shanghai"}, // Huangpu, Pudong
	{"440106", "Guangdong"}, {"440305", "Guangdong"}, // Tianhe (Guangzhou), Nanshan (Shenzhen)
	{"330106", "Zhejiang"}, {"330212", "Zhejiang"}, // Xihu (Hangzhou), Yinzhou (Ningbo)
	{"320102", "Jiangsu"}, {"320505", "Jiangsu"}, // Xuanwu (Nanjing), Huqiu (Suzhou)
	{"510107", "Sichuan"}, {"510104", "Sichuan"}, // Wuhou, Jinjiang (Chengdu)
	{"420106", "Hubei"}, {"420111", "Hubei"}, // Wuchang, Hongshan (Wuhan)
	{"370102", "Shandong"}, {"370202", "Shandong"}, // Lixia (Jinan), Shinan (Qingdao)
}

// Regions are the region categories of clients.csv, in a fixed order.
var Regions = []string{"Beijing", "Shanghai", "Guangdong", "Zhejiang", "Jiangsu", "Sichuan", "Hubei", "Shandong"}

// mobilePrefixes are three-digit mainland mobile prefixes in use (13x, 15x,
// 18x, 19x).
var mobilePrefixes = []string{
	"130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
	"150", "151", "152", "153", "155", "156", "157", "158", "159",
	"180", "181", "182", "183", "184", "185", "186", "187", "188", "189",
	"190", "191", "192", "193", "195", "196", "197", "198", "199",
}

// idWeights are the ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 of GB 11643.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CheckDigit returns the GB 11643 check character ('0'–'9' or 'X') of the
// first 17 digits of a resident ID. It panics if body is not 17 digits.
func CheckDigit(body string) byte {
	if len(body) != 17 {
		panic("synth: CheckDigit needs 17 digits")
	}
	sum := 0
	for i := range 17 {
		c := body[i]
		if c < '0' || c > '9' {
			panic("synth: CheckDigit needs 17 digits")
		}
		sum += int(c-'0') * idWeights[i]
	}
	return "10X98765432"[sum%11]
}

// CanonicalID returns the canonical form of an 18-digit resident ID: a
// lower-case check character 'x' becomes 'X'. It refuses anything else that
// is not 17 digits and a correct check character.
func CanonicalID(id string) (string, error) {
	if len(id) != 18 {
		return "", fmt.Errorf("%w: %q has %d characters", ErrBadID, id, len(id))
	}
	for i := range 17 {
		if id[i] < '0' || id[i] > '9' {
			return "", fmt.Errorf("%w: %q", ErrBadID, id)
		}
	}
	canon := strings.ToUpper(id)
	if want := CheckDigit(canon[:17]); canon[17] != want {
		return "", fmt.Errorf("%w: %q has check character %c, want %c", ErrBadID, id, id[17], want)
	}
	return canon, nil
}

var (
	birthFirst = dayNumber(1950, 1, 1)
	birthLast  = dayNumber(2005, 12, 31)
)

// newID draws a canonical resident ID and the province of its area code.
func newID(r *rand.Rand) (id, province string) {
	a := areas[r.IntN(len(areas))]
	y, m, d := civil(birthFirst + r.IntN(birthLast-birthFirst+1))
	body := fmt.Sprintf("%s%04d%02d%02d%03d", a.code, y, m, d, 1+r.IntN(999))
	return body + string(CheckDigit(body)), a.province
}

// newPhone draws an 11-digit mainland mobile number.
func newPhone(r *rand.Rand) string {
	return fmt.Sprintf("%s%08d", mobilePrefixes[r.IntN(len(mobilePrefixes))], r.IntN(100_000_000))
}
