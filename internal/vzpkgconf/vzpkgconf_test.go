package vzpkgconf

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr string
	}{
		{
			name: "every key",
			in: `# comment
cacher_url = http://10.0.0.1:3142/   # trailing comment
cache_dir = /srv/templates/
templates_path = /etc/vzpkg/templates:/opt/vzpkg/templates, /usr/share/vzpkg/templates
hook_timeout = 90s
`,
			want: Config{
				CacherURL:     "http://10.0.0.1:3142/",
				CacheDir:      "/srv/templates",
				TemplatesPath: []string{"/etc/vzpkg/templates", "/opt/vzpkg/templates", "/usr/share/vzpkg/templates"},
				HookTimeout:   90 * time.Second,
			},
		},
		{
			name: "empty values keep the defaults",
			in:   "cacher_url =\ntemplates_path =\n",
			want: Config{CacheDir: DefaultCacheDir, HookTimeout: DefaultHookTimeout},
		},
		{
			name: "no hook timeout",
			in:   "hook_timeout = 0\n",
			want: Config{CacheDir: DefaultCacheDir},
		},
		{
			name:    "bad hook timeout",
			in:      "hook_timeout = 10\n",
			wantErr: `vzpkg.conf:1: hook_timeout "10": want a duration such as 10m or 90s, or 0 for no limit`,
		},
		{
			name:    "unknown key",
			in:      "\ncache_directory = /x\n",
			wantErr: `vzpkg.conf:2: unknown key "cache_directory" (known: cache_dir, cacher_url, hook_timeout, templates_path)`,
		},
		{
			name:    "not a URL",
			in:      "cacher_url = localhost:3142\n",
			wantErr: `vzpkg.conf:1: cacher_url "localhost:3142": want an http:// URL such as http://127.0.0.1:3142/`,
		},
		{
			name:    "relative cache dir",
			in:      "cache_dir = cache\n",
			wantErr: `vzpkg.conf:1: cache_dir "cache": want an absolute directory such as /vz/template/cache`,
		},
		{
			// One rule for vzpkg.conf and pkg-cacher.conf: the last wins, as
			// in the original pkg-cacher's configuration.
			name: "key twice: the last wins",
			in:   "cache_dir = /a\ncache_dir = /b\n",
			want: Config{CacheDir: "/b", HookTimeout: DefaultHookTimeout},
		},
		{
			name:    "near miss",
			in:      "cacher_ulr = http://x/\n",
			wantErr: `vzpkg.conf:1: unknown key "cacher_ulr" (did you mean "cacher_url"?) (known: cache_dir, cacher_url, hook_timeout, templates_path)`,
		},
		{
			name: "continued line",
			in:   "templates_path = /a:\\\n  /b\n",
			want: Config{CacheDir: DefaultCacheDir, TemplatesPath: []string{"/a", "/b"}, HookTimeout: DefaultHookTimeout},
		},
		{
			name:    "not key = value",
			in:      "cache_dir /a\n",
			wantErr: "vzpkg.conf:1: \"cache_dir /a\" is not a `key = value` line",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			err := c.Parse("vzpkg.conf", strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.CacherURL != tt.want.CacherURL || c.CacheDir != tt.want.CacheDir || !slices.Equal(c.TemplatesPath, tt.want.TemplatesPath) || c.HookTimeout != tt.want.HookTimeout {
				t.Errorf("got %+v, want %+v", *c, tt.want)
			}
		})
	}
}

// TestShippedExampleParses keeps etc/vzpkg.conf, the documented example, valid.
func TestShippedExampleParses(t *testing.T) {
	c, err := Load("../../etc/vzpkg.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.CacheDir != DefaultCacheDir {
		t.Errorf("example cache_dir: got %q, want the default %q", c.CacheDir, DefaultCacheDir)
	}
}

func TestDefaultTemplatesPathFindsTheCheckout(t *testing.T) {
	if isDir("/usr/share/vzpkg/templates") || isDir(LocalTemplates) {
		t.Skip("an installed vzpkg tree takes precedence on this machine")
	}
	checkout := t.TempDir()
	if err := os.MkdirAll(filepath.Join(checkout, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, exe := range []string{filepath.Join(checkout, "vzpkg"), filepath.Join(checkout, "bin", "vzpkg")} {
		got := DefaultTemplatesPath(exe)
		want := []string{filepath.Join(checkout, "templates")}
		if !slices.Equal(got, want) {
			t.Errorf("DefaultTemplatesPath(%s): got %q, want %q", exe, got, want)
		}
	}
}
