package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"xnode/node/api"
	"xnode/node/api/apitest"
)

// A Client talks to a node's API; here the node is a fake served in process.
func ExampleClient() {
	srv := httptest.NewServer(api.NewServer(apitest.NewFake(), "secret", nil))
	defer srv.Close()

	c := api.NewClient(srv.URL, "secret")
	info, err := c.NodeInfo(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Name, info.Consortium)

	_, err = c.ShowDataset(context.Background(), "loans")
	fmt.Println(err)
	// Output:
	// alpha pilot
	// dataset "loans" not found; `xnode dataset list` shows the datasets
}
