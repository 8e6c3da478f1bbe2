package suggest

import "testing"

func TestNearest(t *testing.T) {
	known := []string{"cache_dir", "daemon_port", "daemon_addr", "logdir"}
	for _, tc := range []struct{ w, want string }{
		{"cahce_dir", "cache_dir"},
		{"daemon_prot", "daemon_port"},
		{"deamon_addr", "daemon_addr"},
		{"logdirs", "logdir"},
		{"nothing_like_it", ""},
		{"", ""},
	} {
		if got := Nearest(tc.w, known); got != tc.want {
			t.Errorf("Nearest(%q) = %q, want %q", tc.w, got, tc.want)
		}
	}
}
