package fabric

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// DefaultAddr is the embedded default transport: libfabric tcp on loopback.
const DefaultAddr = "ofi+tcp://127.0.0.1:7471"

// Addr is a parsed fabric address.
type Addr struct {
	Backend  string // "ofi" or "verbs"
	Provider string // ofi provider ("tcp", "sockets", "shm", "verbs"); empty for verbs
	Host     string // IP or host name; for shm the endpoint name
	Port     string // may be empty or "0" (any port)
	Options  url.Values
}

// ParseAddr parses "backend[+provider]://host[:port][?options]" (for shm "ofi+shm://name").
func ParseAddr(s string) (Addr, error) {
	if rest, ok := strings.CutPrefix(s, "ofi+shm://"); ok {
		return parseShm(s, rest)
	}
	u, err := url.Parse(s)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %q: %v", ErrBadAddress, s, err)
	}
	if u.Scheme == "" || u.Host == "" && u.Opaque == "" {
		return Addr{}, fmt.Errorf("%w: %q: want scheme://host[:port], e.g. %s", ErrBadAddress, s, DefaultAddr)
	}
	a := Addr{Options: u.Query()}
	a.Backend, a.Provider, _ = strings.Cut(u.Scheme, "+")
	switch a.Backend {
	case "ofi":
		switch a.Provider {
		case "tcp", "sockets", "shm", "verbs":
		default:
			return Addr{}, fmt.Errorf("%w: %q: unknown libfabric provider %q (tcp, sockets, shm, verbs)",
				ErrBadAddress, s, a.Provider)
		}
	case "verbs":
		if a.Provider != "" {
			return Addr{}, fmt.Errorf("%w: %q: verbs takes no provider", ErrBadAddress, s)
		}
	default:
		return Addr{}, fmt.Errorf("%w: %q: unknown backend %q (ofi, verbs)", ErrBadAddress, s, a.Backend)
	}
	if a.Provider == "shm" {
		return Addr{}, fmt.Errorf("%w: %q: shm wants ofi+shm://name", ErrBadAddress, s)
	}
	a.Host, a.Port = u.Hostname(), u.Port()
	if a.Host == "" {
		return Addr{}, fmt.Errorf("%w: %q: no host", ErrBadAddress, s)
	}
	return a, nil
}

// String formats the address back into its URL form.
func (a Addr) String() string {
	scheme := a.Backend
	if a.Provider != "" {
		scheme += "+" + a.Provider
	}
	host := a.Host
	if a.Port != "" {
		host = net.JoinHostPort(a.Host, a.Port)
	}
	s := scheme + "://" + host
	if len(a.Options) > 0 {
		s += "?" + a.Options.Encode()
	}
	return s
}

// resolve turns a Dial target into an Addr of the same transport as a: either a full URL of
// the same scheme, or just "host:port" (or a shm name).
func (a Addr) resolve(target string) (Addr, error) {
	if strings.Contains(target, "://") {
		t, err := ParseAddr(target)
		if err != nil {
			return Addr{}, err
		}
		if t.Backend != a.Backend || t.Provider != a.Provider {
			return Addr{}, fmt.Errorf("%w: %s cannot be reached from a %s fabric", ErrBadAddress, target, a)
		}
		return t, nil
	}
	t := a
	t.Options = nil
	if a.Provider == "shm" {
		t.Host, t.Port = target, ""
		return t, nil
	}
	h, p, err := net.SplitHostPort(target)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %q: %v", ErrBadAddress, target, err)
	}
	t.Host, t.Port = h, p
	return t, nil
}

// parseShm parses the name of "ofi+shm://name[?options]": letters, digits and ._:- only (shm
// names are file names in /dev/shm; the provider's own names carry ":uid:index").
func parseShm(s, rest string) (Addr, error) {
	name, query, _ := strings.Cut(rest, "?")
	opts, err := url.ParseQuery(query)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %q: %v", ErrBadAddress, s, err)
	}
	ok := name != "" && len(name) < 200
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			ok = false
		}
	}
	if !ok {
		return Addr{}, fmt.Errorf("%w: %q: shm wants ofi+shm://name (letters, digits, ._:-)", ErrBadAddress, s)
	}
	return Addr{Backend: "ofi", Provider: "shm", Host: name, Options: opts}, nil
}
