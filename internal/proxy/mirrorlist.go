package proxy

import (
	"bytes"
	"io"
	"net/http"
	"regexp"

	"vzpkg2/internal/cache"
	"vzpkg2/internal/route"
	"vzpkg2/internal/store"
)

// maxMirrorList bounds the metalink or mirrorlist answer read into memory.
const maxMirrorList = 4 << 20

// mirrorURL is a mirror URL in a metalink's <url> element or on a
// mirrorlist's line of its own.
var mirrorURL = regexp.MustCompile(`(?m)(<url\b[^>]*>\s*|^)(https?)://([^/\s<>"']+)([^\s<>"']*)`)

// serveMirrorList answers a dnf metalink or mirrorlist with the mirrors it
// lists reached through this pkg-cacher, at the host the client used
// (https mirrors in the HTTPS/// form), so that a stock metalink= repo file
// is cached end to end. A client using the cache as its proxy gets it as it
// is: its requests to the mirrors come here anyway.
func (h *Handler) serveMirrorList(w http.ResponseWriter, r *http.Request, t route.Target, res *cache.Result) {
	var src io.Reader = res.Object
	if res.Object == nil {
		src = &fillReader{ctx: r.Context(), body: res.Body}
	}
	b, err := io.ReadAll(io.LimitReader(src, maxMirrorList))
	if err != nil {
		h.log.Warn("aborting response: upstream transfer failed", "url", t.Show, "err", err)
		panic(http.ErrAbortHandler)
	}
	var info store.Info
	if res.Object != nil {
		info = res.Object.Info()
	} else {
		info = res.Body.Info()
	}
	if !r.URL.IsAbs() {
		b = rewriteMirrors(b, r.Host)
	}
	setContentType(w, info)
	http.ServeContent(w, r, "", info.LastModified, bytes.NewReader(b))
}

// rewriteMirrors points the mirror URLs in a metalink or mirrorlist at the
// pkg-cacher at host.
func rewriteMirrors(b []byte, host string) []byte {
	return mirrorURL.ReplaceAllFunc(b, func(m []byte) []byte {
		s := mirrorURL.FindSubmatch(m)
		out := append([]byte(nil), s[1]...)
		out = append(out, "http://"+host+"/"...)
		if string(s[2]) == "https" {
			out = append(out, "HTTPS///"...)
		}
		out = append(out, s[3]...)
		return append(out, s[4]...)
	})
}
