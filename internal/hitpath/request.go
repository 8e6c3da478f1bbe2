package hitpath

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
)

// peekHead returns the request head at the start of br's buffer, up to and
// including the empty line that ends it, without consuming it. It returns
// bufio.ErrBufferFull when the head is longer than the buffer.
func peekHead(br *bufio.Reader) ([]byte, error) {
	scanned := 0 // bytes of whole lines already looked at
	for {
		buf, _ := br.Peek(br.Buffered())
		for {
			i := bytes.IndexByte(buf[scanned:], '\n')
			if i < 0 {
				break
			}
			line := buf[scanned : scanned+i]
			scanned += i + 1
			if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
				return buf[:scanned], nil
			}
		}
		if br.Buffered() == br.Size() {
			return nil, bufio.ErrBufferFull
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

// hitRequest is a request the hit path may answer.
type hitRequest struct {
	head  bool // HEAD, not GET
	close bool // the client asked to close the connection
	url   *url.URL
	show  string // the URL to log
}

// parse reads head into r. It reports false for anything but GET or HEAD
// over HTTP/1.1 with CRLF line ends, a Host header and only headers that do
// not change the answer; net/http answers those requests.
func (r *hitRequest) parse(head []byte) bool {
	line, rest, ok := cutLine(head)
	if !ok {
		return false
	}
	method, line, _ := bytes.Cut(line, []byte{' '})
	switch string(method) {
	case http.MethodGet:
	case http.MethodHead:
		r.head = true
	default:
		return false
	}
	uri, proto, _ := bytes.Cut(line, []byte{' '})
	if string(proto) != "HTTP/1.1" || len(uri) == 0 {
		return false
	}
	host := false
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || !validToken(name) || !validValue(value) {
			return false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case equalFoldASCII(name, "Host"):
			if host || !validHost(value) {
				return false
			}
			host = true
		case equalFoldASCII(name, "Connection"):
			for _, opt := range bytes.Split(value, []byte{','}) {
				switch opt = bytes.Trim(opt, " \t"); {
				case equalFoldASCII(opt, "close"):
					r.close = true
				case !equalFoldASCII(opt, "keep-alive"):
					return false
				}
			}
		case ignorable(name):
		default:
			return false
		}
	}
	u, err := url.ParseRequestURI(string(uri))
	if err != nil || !host {
		return false
	}
	r.url = u
	return true
}

// ignorable reports whether a request header changes nothing about the
// answer of a whole cached file.
func ignorable(name []byte) bool {
	for _, h := range []string{"User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Cache-Control", "Pragma", "Proxy-Connection"} {
		if equalFoldASCII(name, h) {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether b is s but for the case of ASCII letters.
// Header names and connection options are ASCII: bytes.EqualFold's Unicode
// folding would take "Hoſt" (U+017F) for Host, which net/http refuses.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lowerASCII(b[i]) != lowerASCII(s[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// validToken reports whether b is an RFC 9110 token, the syntax of a header
// name.
func validToken(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0:
		default:
			return false
		}
	}
	return len(b) > 0
}

// cutLine cuts a CRLF-terminated line off head.
func cutLine(head []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(head, '\n')
	if i < 1 || head[i-1] != '\r' {
		return nil, nil, false
	}
	return head[:i-1], head[i+1:], true
}

// validValue reports whether v may be a header's value: no control bytes
// but tab.
func validValue[T string | []byte](v T) bool {
	for i := range len(v) {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case bytes.IndexByte([]byte("-._~:[]"), c) >= 0:
		default:
			return false
		}
	}
	return len(v) > 0
}
