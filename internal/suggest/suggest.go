// Package suggest finds the known word a mistyped one was probably meant to
// be, for "did you mean" hints in error messages.
package suggest

// Nearest returns the word of known within two edits of w (the first of
// the nearest), or "" when none is that close.
func Nearest(w string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := distance(w, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
