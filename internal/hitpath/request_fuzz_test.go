package hitpath

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// FuzzHitRequest checks the hit path's request reader against net/http's:
// a head the hit path answers must be one net/http reads as the same GET or
// HEAD of the same URL, with the same keep-alive choice and no header that
// would change a whole file's answer.
func FuzzHitRequest(f *testing.F) {
	for _, s := range []string{
		"GET /local/pool/a_1_all.deb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://deb.debian.org/debian/pool/main/a/a_1_all.deb HTTP/1.1\r\nHost: deb.debian.org\r\nUser-Agent: Debian APT-HTTP/1.3 (2.6.1)\r\n\r\n",
		"HEAD /local/x.rpm HTTP/1.1\r\nHost: [::1]:3142\r\nConnection: close\r\nAccept: */*\r\n\r\nGET / HTTP/1.1\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n",
		"GET /a HTTP/1.1\nHost: x\n\n",
		"GET /a HTTP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(raw), 4<<10)
		if _, err := br.Peek(1); err != nil {
			return
		}
		head, err := peekHead(br)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(raw, head) || !bytes.HasSuffix(head, []byte("\n")) {
			t.Fatalf("head %q is not the start of the input up to an empty line", head)
		}
		var r hitRequest
		if !r.parse(head) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("the hit path answers %q, which net/http refuses: %v", head, err)
		}
		if req.Method != map[bool]string{false: "GET", true: "HEAD"}[r.head] || req.URL.String() != r.url.String() || req.Close != r.close || req.Host == "" {
			t.Fatalf("%q: hit path reads %v %v close=%v; net/http %s %v close=%v host %q", head, r.head, r.url, r.close, req.Method, req.URL, req.Close, req.Host)
		}
		for name := range req.Header {
			switch name {
			case "Host", "Connection":
			default:
				if !ignorable([]byte(name)) {
					t.Fatalf("%q: the hit path answers a request with header %s", head, name)
				}
			}
			if strings.HasPrefix(name, "If-") || name == "Range" || name == "Content-Length" || name == "Transfer-Encoding" {
				t.Fatalf("%q: the hit path answers a request with header %s", head, name)
			}
		}
	})
}
