// Package vzpkgconf reads vzpkg's global configuration, vzpkg.conf: where
// pkg-cacher is, where built templates are kept, and where the template
// metadata trees are.
//
// Format: package keyvalue's, as pkg-cacher.conf (one `key = value` per
// line, `#` comments, `\` continues a line, the last of a key set twice
// wins). Unknown keys and bad values are errors naming the file and line.
// etc/vzpkg.conf in the source tree documents every key.
package vzpkgconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vzpkg2/internal/keyvalue"
	"vzpkg2/internal/suggest"
)

// DefaultFile is read when no --config is given and the file exists.
const DefaultFile = "/etc/vzpkg/vzpkg.conf"

// DefaultCacheDir is where built templates go unless cache_dir says otherwise.
const DefaultCacheDir = "/vz/template/cache"

// LocalTemplates is the tree of local additions and overrides, searched
// before the shipped tree.
const LocalTemplates = "/etc/vzpkg/templates"

// Config is vzpkg's effective global configuration.
type Config struct {
	CacherURL     string        // pkg-cacher's base URL, e.g. http://127.0.0.1:3142/; empty: no cacher
	CacheDir      string        // built templates: <CacheDir>/<name>.tar.{gz,xz,zst}
	TemplatesPath []string      // metadata tree roots, highest precedence first; nil: the default search path
	HookTimeout   time.Duration // how long a template's final hook may run; 0: no limit
}

// DefaultHookTimeout is how long a final hook may run unless hook_timeout
// says otherwise.
const DefaultHookTimeout = 10 * time.Minute

// Defaults returns the built-in configuration.
func Defaults() *Config {
	return &Config{CacheDir: DefaultCacheDir, HookTimeout: DefaultHookTimeout}
}

// Error is a problem at a line of a configuration file.
type Error = keyvalue.Error

var keys = []string{"cache_dir", "cacher_url", "hook_timeout", "templates_path"}

// Load reads file over the defaults. An empty file name means DefaultFile
// when it exists, the defaults otherwise.
func Load(file string) (*Config, error) {
	c := Defaults()
	if file == "" {
		if _, err := os.Stat(DefaultFile); errors.Is(err, fs.ErrNotExist) {
			return c, nil
		}
		file = DefaultFile
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read vzpkg configuration: %w", err)
	}
	defer f.Close()
	if err := c.Parse(file, f); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse applies the settings in r (called name in errors) to c.
func (c *Config) Parse(name string, r io.Reader) error {
	return keyvalue.Parse(name, r, c.set, nil)
}

func (c *Config) set(key, val string) error {
	switch key {
	case "cacher_url":
		if val == "" {
			c.CacherURL = ""
			return nil
		}
		u, err := url.Parse(val)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("cacher_url %q: want an http:// URL such as http://127.0.0.1:3142/", val)
		}
		c.CacherURL = val
	case "cache_dir":
		if !filepath.IsAbs(val) {
			return fmt.Errorf("cache_dir %q: want an absolute directory such as %s", val, DefaultCacheDir)
		}
		c.CacheDir = filepath.Clean(val)
	case "hook_timeout":
		d, err := time.ParseDuration(val)
		if val == "0" {
			d, err = 0, nil
		}
		if err != nil || d < 0 {
			return fmt.Errorf("hook_timeout %q: want a duration such as 10m or 90s, or 0 for no limit", val)
		}
		c.HookTimeout = d
	case "templates_path":
		c.TemplatesPath = SplitPath(val)
		if len(c.TemplatesPath) == 0 {
			c.TemplatesPath = nil // empty: the default search path
		}
	default:
		hint := ""
		if k := suggest.Nearest(key, keys); k != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", k)
		}
		return fmt.Errorf("unknown key %q%s (known: %s)", key, hint, strings.Join(keys, ", "))
	}
	return nil
}

// SplitPath splits a search path on ':' and ',' and drops empty entries.
func SplitPath(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ',' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// DefaultTemplatesPath is the search path when nothing sets one: the local
// tree, then the first shipped tree found: <prefix>/share/vzpkg/templates of
// an installed vzpkg at exe, /usr/share/vzpkg/templates, or templates/ of the
// source checkout exe was built in (next to it, or one directory up).
// Directories that do not exist are left out.
func DefaultTemplatesPath(exe string) []string {
	out := []string{}
	if isDir(LocalTemplates) {
		out = append(out, LocalTemplates)
	}
	var shipped []string
	if exe != "" {
		dir := filepath.Dir(exe)
		shipped = append(shipped, filepath.Join(dir, "..", "share", "vzpkg", "templates"))
	}
	shipped = append(shipped, "/usr/share/vzpkg/templates")
	if exe != "" {
		dir := filepath.Dir(exe)
		shipped = append(shipped, filepath.Join(dir, "templates"), filepath.Join(dir, "..", "templates"))
	}
	for _, d := range shipped {
		if isDir(d) {
			d = filepath.Clean(d)
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
			break
		}
	}
	return out
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
