package secagg

// InputBound is the largest magnitude each of n inputs (per element, after
// fixed-point scaling) may have so that the sum of n of them, read back with
// Signed, is exact: (2^63 − 1) / n. Unsigned inputs (counts) may each go up
// to (2^64 − 1) / n and are read back as they are.
func InputBound(n int) int64 {
	if n < 1 {
		return 0
	}
	return (1<<63 - 1) / int64(n)
}

// Signed reads a sum of two's-complement inputs back as signed integers.
func Signed(sum []uint64) []int64 {
	out := make([]int64, len(sum))
	for i, x := range sum {
		out[i] = int64(x)
	}
	return out
}
