package packaging

import (
	"os/exec"
	"strings"
	"testing"
)

func TestDescribedVersion(t *testing.T) {
	for _, tt := range []struct {
		describe string
		want     string // empty: an error
	}{
		{"v1.2.3-0-gabc1234", "1.2.3"},
		{"v1.2.3-5-gabc1234", "1.2.3+git5.abc1234"},
		{"v1.2.3-0-gabc1234-dirty", "1.2.3+dirty"},
		{"v1.2.3-5-gabc1234-dirty", "1.2.3+git5.abc1234.dirty"},
		{"v1.2.0-rc1-0-gabc1234", "1.2.0~rc1"},
		{"v1.2.0-rc1-2-gabc1234", "1.2.0~rc1+git2.abc1234"},
		{"abc1234", "0.0.0+git196.abc1234"},
		{"abc1234-dirty", "0.0.0+git196.abc1234.dirty"},
		{"vnext-0-gabc1234", ""},
		{"v1.2_3-0-gabc1234", ""},
		{"release-1-0-gabc1234", ""},
	} {
		t.Run(tt.describe, func(t *testing.T) {
			got, err := describedVersion(tt.describe, 196)
			if got != tt.want || (err == nil) != (tt.want != "") {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// The versions sort as the history does, for dpkg and for rpm: a release
// candidate, its release, commits after it, the next release.
func TestVersionsSortAsHistory(t *testing.T) {
	order := []string{"0.0.0+git196.abc1234", "1.2.0~rc1", "1.2.0~rc1+git2.abc1234", "1.2.0", "1.2.0+git3.abc1234", "1.2.0+git12.abc1234", "1.2.1"}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg: %s is not older than %s", a, b)
		}
		out, err := exec.Command("rpm", "--eval", `%{lua: print(rpm.vercmp("`+a+`", "`+b+`"))}`).Output()
		if err != nil || strings.TrimSpace(string(out)) != "-1" {
			t.Errorf("rpm: %s is not older than %s (vercmp %q %v)", a, b, out, err)
		}
	}
}
