package memo

import (
	"strconv"
	"sync"
	"testing"
)

func TestMapKeepsItsBound(t *testing.T) {
	m := New[string, int](100)
	for i := range 1000 {
		m.Put(strconv.Itoa(i), i)
		if n := m.Len(); n > 100 {
			t.Fatalf("after %d puts the map holds %d entries, bound 100", i+1, n)
		}
	}
	if v, ok := m.Get("999"); !ok || v != 999 {
		t.Fatalf("the last entry put: %d, %v", v, ok)
	}
	m.Delete("999")
	if _, ok := m.Get("999"); ok {
		t.Fatal("a deleted entry is still there")
	}
}

// Run with -race (make test does): readers and writers at once.
func TestMapIsSafeForConcurrentUse(t *testing.T) {
	m := New[int, int](64)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := (g*2000 + i) % 200
				m.Put(k, i)
				if v, ok := m.Get(k); ok && v < 0 {
					t.Error("impossible value")
				}
				if i%7 == 0 {
					m.Delete(k)
				}
			}
		})
	}
	wg.Wait()
	if m.Len() > 64 {
		t.Fatalf("%d entries, bound 64", m.Len())
	}
}
