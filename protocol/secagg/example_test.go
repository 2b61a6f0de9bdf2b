package secagg_test

import (
	"fmt"

	"xnode/protocol/secagg"
	"xnode/protocol/secagg/secaggtest"
)

// Example runs a session of three clients by hand: the caller routes each
// client's messages to the server and the server's Outgoing back.
func Example() {
	ids := secaggtest.NewIdentities(3)
	cfg := secagg.Config{
		Session:   []byte("query-42"),
		Clients:   ids.Clients,
		Threshold: 2,
		VectorLen: 2,
		Verify:    ids.Verify,
	}
	srv, _ := secagg.NewServer(secagg.ServerConfig{Config: cfg})
	minus5 := int64(-5) // negatives travel in two's complement
	inputs := [][]uint64{{1, uint64(minus5)}, {20, 7}, {300, 0}}
	clients := map[secagg.ClientID]*secagg.Client{}
	var toServer []secagg.Outgoing // To names the sender here
	for i, id := range ids.Clients {
		c, _ := secagg.NewClient(secagg.ClientConfig{Config: cfg, Self: id, Signer: ids.Signer(id)}, inputs[i])
		clients[id] = c
		msg, _ := c.Start()
		toServer = append(toServer, secagg.Outgoing{To: id, Msg: msg})
	}
	for !srv.Done() {
		var toClients []secagg.Outgoing
		for _, m := range toServer {
			out, err := srv.Deliver(m.To, m.Msg)
			if err != nil {
				fmt.Println(err)
			}
			toClients = append(toClients, out...)
		}
		toServer = nil
		for _, m := range toClients {
			replies, _ := clients[m.To].Deliver(m.Msg)
			for _, r := range replies {
				toServer = append(toServer, secagg.Outgoing{To: m.To, Msg: r})
			}
		}
	}
	sum, survivors, err := srv.Result()
	fmt.Println(secagg.Signed(sum), len(survivors), err)
	// Output: [321 2] 3 <nil>
}
