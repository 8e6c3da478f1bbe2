package cacheconf

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"vzpkg2/internal/keyvalue"
)

// Clients says who may use the cache, as the original pkg-cacher's
// allowed_hosts, denied_hosts, allowed_hosts_6 and denied_hosts_6 do: an
// IPv4 client must be in allowed_hosts and not in denied_hosts, an IPv6
// client likewise in the _6 lists; an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) is an IPv4 client; 127.0.0.1 is always allowed.
type Clients struct {
	Allow, Deny   []AddrRange // IPv4
	Allow6, Deny6 []AddrRange // IPv6
}

// AddrRange is the addresses from Lo to Hi, both included: one address, a
// CIDR network, an a-b range, or * (every address of its family).
type AddrRange struct {
	Lo, Hi netip.Addr
}

func (r AddrRange) contains(a netip.Addr) bool { return r.Lo.Compare(a) <= 0 && a.Compare(r.Hi) <= 0 }

// every is the range * stands for in an IPv4 (v6 false) or IPv6 list.
func every(v6 bool) AddrRange {
	if v6 {
		return AddrRange{netip.IPv6Unspecified(), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}
	}
	return AddrRange{netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255")}
}

var localhost = netip.MustParseAddr("127.0.0.1")

// ClientAllowed reports whether a client at ip may use the cache.
func (c *Config) ClientAllowed(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	if a == localhost {
		return true
	}
	allow, deny := c.Clients.Allow, c.Clients.Deny
	if a.Is6() {
		allow, deny = c.Clients.Allow6, c.Clients.Deny6
	}
	in := func(rs []AddrRange) bool {
		for _, r := range rs {
			if r.contains(a) {
				return true
			}
		}
		return false
	}
	return in(allow) && !in(deny)
}

// parseRanges parses a list of addresses, CIDR networks, a-b ranges and *
// for the IPv4 (v6 false) or IPv6 list key.
func parseRanges(val string, v6 bool) ([]AddrRange, error) {
	var out []AddrRange
	for _, item := range splitList(val) {
		r, err := parseRange(item, v6)
		if err != nil {
			return nil, keyvalue.Item(item, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRange(item string, v6 bool) (AddrRange, error) {
	family := "IPv4"
	example := "10.0.0.0/8, 192.168.0.3-192.168.0.56 or 192.168.1.7"
	if v6 {
		family, example = "IPv6", "fd00::/8 or 2001:db8::1"
	}
	wrong := func(a netip.Addr) bool { return a.Unmap().Is6() != v6 }
	bad := fmt.Errorf("%q is not an %s address, CIDR network, a-b range or * (e.g. %s)", item, family, example)
	switch {
	case item == "*":
		return every(v6), nil
	case strings.Contains(item, "/"):
		p, err := netip.ParsePrefix(item)
		if err != nil || wrong(p.Addr()) {
			return AddrRange{}, fmt.Errorf("%q is not an %s CIDR network (e.g. %s)", item, family, map[bool]string{false: "10.0.0.0/8", true: "fd00::/8"}[v6])
		}
		p = p.Masked()
		lo := p.Addr()
		hi := lo
		for i := p.Bits(); i < lo.BitLen(); i++ {
			hi = setBit(hi, i)
		}
		return AddrRange{lo.Unmap(), hi.Unmap()}, nil
	case strings.Contains(item, "-"):
		a, b, _ := strings.Cut(item, "-")
		lo, err1 := netip.ParseAddr(strings.TrimSpace(a))
		hi, err2 := netip.ParseAddr(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || wrong(lo) || wrong(hi) || hi.Unmap().Less(lo.Unmap()) {
			return AddrRange{}, bad
		}
		return AddrRange{lo.Unmap(), hi.Unmap()}, nil
	}
	a, err := netip.ParseAddr(item)
	if err != nil || wrong(a) {
		return AddrRange{}, bad
	}
	return AddrRange{a.Unmap(), a.Unmap()}, nil
}

// setBit sets bit i (0 is the most significant) of a.
func setBit(a netip.Addr, i int) netip.Addr {
	if a.Is4() {
		b := a.As4()
		b[i/8] |= 0x80 >> (i % 8)
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	b[i/8] |= 0x80 >> (i % 8)
	return netip.AddrFrom16(b)
}
