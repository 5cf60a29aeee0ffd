// Package memo is a bounded, concurrency-safe map for answers that are
// cheap to read again: past its bound, arbitrary entries make room, so a
// dropped entry costs one read on its next use. What it may hold — only
// facts that cannot change, or ones checked again where they matter — is
// the caller's decision, written where the caller keeps one.
package memo

import "sync"

// Map holds at most its bound of entries.
type Map[K comparable, V any] struct {
	mu    sync.RWMutex
	byKey map[K]V
	max   int
}

// New returns an empty Map of at most max entries.
func New[K comparable, V any](max int) *Map[K, V] {
	return &Map[K, V]{byKey: map[K]V{}, max: max}
}

// Get answers the entry of k.
func (m *Map[K, V]) Get(k K) (V, bool) {
	m.mu.RLock()
	v, ok := m.byKey[k]
	m.mu.RUnlock()
	return v, ok
}

// Put keeps v as k's entry; a full map first drops a tenth of its entries.
func (m *Map[K, V]) Put(k K, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.byKey) >= m.max {
		for old := range m.byKey {
			delete(m.byKey, old)
			if len(m.byKey) < m.max*9/10 {
				break
			}
		}
	}
	m.byKey[k] = v
}

// Delete drops k's entry.
func (m *Map[K, V]) Delete(k K) {
	m.mu.Lock()
	delete(m.byKey, k)
	m.mu.Unlock()
}

// Len is how many entries the map holds.
func (m *Map[K, V]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byKey)
}
