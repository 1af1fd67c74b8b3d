package raid

import "sync"

// groupSync makes writes durable with as few sync calls as concurrent writers allow: a caller
// waits for a sync that starts after its call, and every caller waiting when a sync starts
// shares it (group commit).
type groupSync struct {
	sync func() error

	mu   sync.Mutex
	busy bool       // a sync is running
	next *syncRound // the round the next sync serves, nil when nobody waits
}

// syncRound is one sync call and the callers it serves.
type syncRound struct {
	done chan struct{}
	err  error
}

// wait returns once a sync that started after the call has finished, with its error.
func (g *groupSync) wait() error {
	g.mu.Lock()
	if g.next == nil {
		g.next = &syncRound{done: make(chan struct{})}
	}
	r := g.next
	if !g.busy {
		g.lead() // unlocks
	} else {
		g.mu.Unlock()
	}
	<-r.done
	return r.err
}

// lead runs the waiting round's sync on the calling goroutine, then hands the next round (if
// callers came meanwhile) to a goroutine of its own. g.mu is held on entry and released.
func (g *groupSync) lead() {
	r := g.next
	g.next, g.busy = nil, true
	g.mu.Unlock()
	r.err = g.sync()
	close(r.done)
	g.mu.Lock()
	g.busy = false
	if g.next != nil {
		g.busy = true
		go func() {
			g.mu.Lock()
			g.lead()
		}()
	}
	g.mu.Unlock()
}
