package proxy

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

// usageStatus is apt-cacher-ng's answer on "/": auto-apt-proxy detects a
// compatible cache by this status line, so pkg-cacher gives the same.
const usageStatus = "406 Usage Information"

var usageTmpl = template.Must(template.New("usage").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pkg-cacher: {{.Status}}</title></head>
<body>
<h1>pkg-cacher: {{.Status}}</h1>
<p>This is pkg-cacher, a caching proxy for apt and yum/dnf repositories
(apt-cacher-ng compatible). Point your clients at it in one of these ways.</p>

<h2>apt (Debian, Ubuntu)</h2>
<p>As a proxy, in <code>/etc/apt/apt.conf.d/01proxy</code>:</p>
<pre>Acquire::http::Proxy "http://{{.Host}}/";</pre>
<p>Or with the cache's address in <code>/etc/apt/sources.list</code>:</p>
<pre>deb http://{{.Host}}/deb.debian.org/debian bookworm main</pre>
<p>HTTPS repositories: the client speaks http to the cache, the cache https upstream:</p>
<pre>deb http://{{.Host}}/HTTPS///repo.example.org/debian bookworm main</pre>
{{if .Maps}}<p>Mirror groups configured here (path_map), tried in order:</p>
<pre>{{range .Maps}}deb http://{{$.Host}}/{{.Name}} SUITE COMPONENTS     # {{.Mirrors}}
{{end}}</pre>{{end}}

<h2>dnf / yum (Fedora, AlmaLinux, Rocky, CentOS Stream)</h2>
<p>As a proxy, in <code>/etc/dnf/dnf.conf</code> under <code>[main]</code> (or per repository),
for repositories with an <code>http://</code> baseurl, metalink or mirrorlist:</p>
<pre>proxy=http://{{.Host}}</pre>
<p>Or with the cache's address in the repository file (<code>baseurl=http://{{.Host}}/HOST/PATH</code>):</p>
<pre>baseurl=http://{{.Host}}/dl.fedoraproject.org/pub/fedora/linux/releases/$releasever/Everything/$basearch/os/</pre>
<p>HTTPS repositories: the client speaks http to the cache, the cache https upstream:</p>
<pre>baseurl=http://{{.Host}}/HTTPS///dl.fedoraproject.org/pub/fedora/linux/releases/$releasever/Everything/$basearch/os/</pre>
<p>An <code>https://</code> metalink or mirrorlist cannot go through <code>proxy=</code> (it would need
CONNECT, which a cache refuses): replace it by a <code>baseurl=</code> in one of the forms above.
Packages and checksum-named repodata are cached for good, <code>repomd.xml</code> is revalidated,
multi-range (zchunk) requests are answered, and mirror redirects are followed by the cache.</p>
{{if .Maps}}<p>Mirror groups configured here (path_map), tried in order:</p>
<pre>{{range .Maps}}baseurl=http://{{$.Host}}/{{.Name}}/PATH     # {{.Mirrors}}
{{end}}</pre>{{end}}

{{if .Admin}}<p>Administrator: {{.Admin}}</p>
{{end}}<h2>Allowed upstreams</h2>
<pre>{{.Allowed}}</pre>
</body></html>
`))

type usageMap struct {
	Name    string
	Mirrors string
}

// usage answers "/" with the usage page and apt-cacher-ng's status line. The
// reason phrase is not settable through http.ResponseWriter, so the answer is
// written on the hijacked connection.
func (h *Handler) usage(w *countingWriter, r *http.Request) {
	data := struct {
		Status, Host, Allowed, Admin string
		Maps                         []usageMap
	}{Status: usageStatus, Host: r.Host, Allowed: h.allowedText(), Admin: h.pol.AdminEmail}
	if data.Host == "" {
		data.Host = "cacher:3142"
	}
	for _, pm := range h.pol.Routes.PathMap {
		var ms []string
		for _, m := range pm.Mirrors {
			ms = append(ms, m.String())
		}
		data.Maps = append(data.Maps, usageMap{Name: pm.Name, Mirrors: strings.Join(ms, " ")})
	}
	var body bytes.Buffer
	if err := usageTmpl.Execute(&body, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.status = http.StatusNotAcceptable
	conn, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): the standard reason phrase will do.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotAcceptable)
		w.Write(body.Bytes())
		return
	}
	defer conn.Close()
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", usageStatus, body.Len())
	if r.Method != http.MethodHead {
		n, _ := bw.Write(body.Bytes())
		w.n = int64(n)
	}
	bw.Flush()
}

func (h *Handler) allowedText() string {
	if h.pol.Routes.AllowAll {
		return "* (any host: this cache is an open proxy)"
	}
	var hosts []string
	for _, l := range h.pol.Routes.AllowedLocations {
		hosts = append(hosts, l.Host+l.Path)
	}
	return strings.Join(hosts, "\n")
}
