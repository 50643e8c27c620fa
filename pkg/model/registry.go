package model

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Constructor builds an architecture from its config, taking its weights
// from w by checkpoint name.
type Constructor func(cfg *Config, w *Weights) (Model, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Constructor{}
)

// Register makes modelType loadable. Architectures call it from init (and
// RegisterSanitize for their checkpoint fix-ups); pkg/model/all imports
// them all.
func Register(modelType string, ctor Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[modelType]; dup {
		panic("model: Register called twice for " + modelType)
	}
	registry[modelType] = ctor
}

// Supported lists the registered model types and aliases, sorted.
func Supported() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var out []string
	for t := range registry {
		out = append(out, t)
	}
	for a, t := range aliases {
		if _, ok := registry[t]; ok {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func lookup(modelType string) (Constructor, error) {
	registryMu.RLock()
	ctor := registry[CanonicalType(modelType)]
	registryMu.RUnlock()
	if ctor == nil {
		sup := Supported()
		if len(sup) == 0 {
			return nil, fmt.Errorf("model type %q not supported (no architectures are linked in: import github.com/mlxgo/mlxgo/pkg/model/all)", modelType)
		}
		return nil, fmt.Errorf("model type %q not supported; supported: %s", modelType, strings.Join(sup, ", "))
	}
	return ctor, nil
}
