package synth

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// File names written by WriteCSV.
const (
	ClientsFile  = "clients.csv"
	RiskListFile = "risklist.csv"
	TruthFile    = "truth.json"
)

// Header rows of the CSV files.
var (
	ClientsHeader  = []string{"id", "phone", "amount", "overdue_days", "region"}
	RiskListHeader = []string{"id", "risk_level", "listed_date", "source"}
)

// WriteCSV writes dir/<node>/clients.csv and dir/<node>/risklist.csv for
// every node, and dir/truth.json. It creates dir as needed and overwrites
// files of the same names.
func (c *Consortium) WriteCSV(dir string) error {
	if c.Truth == nil {
		return errNoTruth
	}
	for _, n := range c.Nodes {
		nd := filepath.Join(dir, n.Name)
		if err := os.MkdirAll(nd, 0o755); err != nil {
			return fmt.Errorf("failed to create node data dir: %w", err)
		}
		err := writeCSV(filepath.Join(nd, ClientsFile), ClientsHeader, len(n.Clients), func(i int) []string {
			cl := n.Clients[i]
			return []string{cl.ID, cl.Phone, cl.Amount.String(), strconv.Itoa(cl.OverdueDays), cl.Region}
		})
		if err != nil {
			return err
		}
		err = writeCSV(filepath.Join(nd, RiskListFile), RiskListHeader, len(n.RiskList), func(i int) []string {
			e := n.RiskList[i]
			return []string{e.ID, e.Level, e.ListedDate, e.Source}
		})
		if err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, TruthFile), func(w *bufio.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(c.Truth)
	})
}

func writeCSV(path string, header []string, n int, row func(int) []string) error {
	return writeFile(path, func(w *bufio.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(header); err != nil {
			return err
		}
		for i := range n {
			if err := cw.Write(row(i)); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

func writeFile(path string, fill func(*bufio.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("failed to write %s: %w", path, cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if err := fill(w); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
