package synth_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"xnode/testnet/synth"
)

func Example() {
	c, err := synth.Generate(synth.Params{Seed: 7, Nodes: 3, Records: 1000, Overlap: 0.25, RiskRecords: 100})
	if err != nil {
		log.Fatal(err)
	}
	tmp, err := os.MkdirTemp("", "synth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "testnet-data")
	if err := c.WriteCSV(dir); err != nil {
		log.Fatal(err)
	}
	truth, err := synth.ReadTruth(filepath.Join(dir, synth.TruthFile))
	if err != nil {
		log.Fatal(err)
	}
	pair, err := truth.Pair("node1", "node2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("nodes:", truth.Nodes)
	fmt.Println("ordered pairs:", len(truth.Pairs))
	fmt.Println("node1 ∩ node2 is about 250:", pair.Overlap > 200 && pair.Overlap < 300)
	fmt.Println("node1 clients on node2's risk list:", len(pair.RiskHits) > 0)
	// Output:
	// nodes: [node1 node2 node3]
	// ordered pairs: 6
	// node1 ∩ node2 is about 250: true
	// node1 clients on node2's risk list: true
}
