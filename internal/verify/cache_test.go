package verify

import (
	"fmt"
	"testing"
)

func TestMappingCacheIsBounded(t *testing.T) {
	c := newMappingCache(3)
	for i := range 10 {
		c.put(fmt.Sprint(i), tokenRef{userID: "u", tokenID: int64(i + 1)})
		if n := len(c.refs); n > 3 {
			t.Fatalf("after %d puts: %d entries, want at most 3", i+1, n)
		}
	}
	if got, ok := c.get("9"); !ok || got.tokenID != 10 {
		t.Errorf("the newest entry: %+v %v, want token 10", got, ok)
	}
	c.remove("9")
	if _, ok := c.get("9"); ok {
		t.Error("removed entry still cached")
	}
}
