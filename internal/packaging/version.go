package packaging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Version returns the package version of the git checkout dir, from git
// describe (see describedVersion).
func Version(ctx context.Context, dir string) (string, error) {
	desc, err := git(ctx, dir, "describe", "--tags", "--long", "--dirty", "--always", "--match", "v[0-9]*")
	if err != nil {
		return "", fmt.Errorf("%w (outside a git checkout, give the version: make packages VERSION=1.0)", err)
	}
	count, err := git(ctx, dir, "rev-list", "--count", "HEAD")
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(count)
	if err != nil {
		return "", fmt.Errorf("git rev-list --count HEAD: %q", count)
	}
	return describedVersion(desc, n)
}

// SourceDate is the time every packaged file gets, so that one commit
// gives the same bytes: SOURCE_DATE_EPOCH when set, else the time of the
// last commit of the checkout dir.
func SourceDate(ctx context.Context, dir string) (time.Time, error) {
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		var err error
		if epoch, err = git(ctx, dir, "log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, fmt.Errorf("%w (outside a git checkout, set SOURCE_DATE_EPOCH)", err)
		}
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("source date %q is not seconds since 1970: %w", epoch, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// CheckVersion says whether v is a version dpkg and rpm both accept.
func CheckVersion(v string) error {
	if !validVersion.MatchString(v) {
		return fmt.Errorf("version %q is not a valid Debian and RPM version: digits first, then letters, digits, '.', '+' or '~'", v)
	}
	return nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

var (
	describeTagged = regexp.MustCompile(`^v([0-9][0-9A-Za-z.+~-]*)-([0-9]+)-g([0-9a-f]+)(-dirty)?$`)
	describeBare   = regexp.MustCompile(`^([0-9a-f]+)(-dirty)?$`)
	validVersion   = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
)

// describedVersion maps `git describe --tags --long --dirty --always` to a
// version dpkg and rpm both accept and order as the history does: the tag
// vX.Y.Z itself is X.Y.Z; N commits after it, X.Y.Z+gitN.HASH; with no tag,
// 0.0.0+gitN.HASH, N counting every commit (commits, the number of commits
// in the history). A '-' in the tag (v1.0-rc1) becomes '~', which sorts
// before the release; uncommitted changes add ".dirty".
func describedVersion(describe string, commits int) (string, error) {
	var v, dirty string
	if m := describeTagged.FindStringSubmatch(describe); m != nil {
		v, dirty = strings.ReplaceAll(m[1], "-", "~"), m[4]
		if m[2] != "0" {
			v += "+git" + m[2] + "." + m[3]
		}
	} else if m := describeBare.FindStringSubmatch(describe); m != nil {
		v, dirty = fmt.Sprintf("0.0.0+git%d.%s", commits, m[1]), m[2]
	} else {
		return "", fmt.Errorf("git describe says %q: not a tag vVERSION or a commit", describe)
	}
	if dirty != "" {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if err := CheckVersion(v); err != nil {
		return "", fmt.Errorf("git describe %q: %w (tag vX.Y.Z)", describe, err)
	}
	return v, nil
}
