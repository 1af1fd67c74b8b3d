package fabric

import (
	"context"
	"testing"
	"time"
)

// TestAbandonedHellosHoldUpNobody: hellos of dialers that went away before their welcome (a
// dialer that timed out) cost the listener a welcome timeout each, but on the side: a dialer
// behind them is welcomed at once. Answered one by one, the four here would hold it up for
// 4 x welcomeTimeout.
func TestAbandonedHellosHoldUpNobody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, l, err := Listen(ctx, "ofi+tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	go func() {
		for {
			c, err := l.Accept(ctx)
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d, err := Open("ofi+tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b := d.b.(*ofiBackend)
	to, err := ParseAddr(l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	infos, err := b.getinfo(to, false)
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.endpointInfo()
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		gone, err := b.newConn(info) // the dialer's endpoint: closed before any welcome
		if err != nil {
			t.Fatal(err)
		}
		name, err := gone.name()
		gone.close()
		if err != nil {
			t.Fatal(err)
		}
		c, err := b.newConn(info)
		if err != nil {
			t.Fatal(err)
		}
		if c.peer, err = c.av.Insert(infos[0].DestAddr()); err != nil {
			t.Fatal(err)
		}
		err = c.send(ctx, handshake{kind: helloKind, name: name}.marshal())
		c.close()
		if err != nil {
			t.Fatal(err)
		}
	}
	dctx, dcancel := context.WithTimeout(ctx, 2*welcomeTimeout)
	defer dcancel()
	start := time.Now()
	c, err := d.Dial(dctx, l.Addr())
	if err != nil {
		t.Fatalf("dial behind 4 abandoned hellos: %v", err)
	}
	t.Logf("dialed in %v", time.Since(start).Round(time.Millisecond))
	c.Close()
}
