package cachercli

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// dropPrivileges makes the process run as the user name (and group, or
// the user's own group when group is ""), with that user's supplementary
// groups: pkg-cacher binds a port below 1024 as root, then serves as its
// own user.
func dropPrivileges(name, group string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("group %q: %w", group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil && n != gid {
				groups = append(groups, n)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("run as user %s: set groups: %w (start pkg-cacher as root to use user =)", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("run as group %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("run as user %s: %w", name, err)
	}
	return nil
}
