package node

import (
	"testing"
	"time"

	"xnode/node/p2p"
)

func TestStreamTimeoutCoversTheSession(t *testing.T) {
	for _, session := range []time.Duration{time.Second, 10 * time.Minute, 30 * time.Minute, 6 * time.Hour} {
		got := streamTimeout(session)
		if got <= session || got < p2p.DefaultStreamTimeout {
			t.Errorf("streamTimeout(%v) = %v, want more than the session and at least p2p's default %v", session, got, p2p.DefaultStreamTimeout)
		}
	}
}
