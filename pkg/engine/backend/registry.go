package backend

import (
	"fmt"
	"sort"
	"sync"
)

var (
	regMu    sync.Mutex
	registry = map[string]func() (Backend, error){}
)

// Register makes a backend constructor available by name (called from the
// backend package's init; cuda and metal register themselves where they
// build).
func Register(name string, ctor func() (Backend, error)) {
	regMu.Lock()
	registry[name] = ctor
	regMu.Unlock()
}

// Open constructs the named backend; the error says why it is unavailable.
func Open(name string) (Backend, error) {
	regMu.Lock()
	ctor, ok := registry[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("backend %q not registered (have %v)", name, Names())
	}
	b, err := ctor()
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", name, err)
	}
	return b, nil
}

// Names lists the registered backends, sorted.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
