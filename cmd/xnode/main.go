// Command xnode is the one binary of an xnode deployment: the node daemon,
// its command-line client, the consortium tools, the local testnet and the
// benchmarks. Run `xnode --help` for the tour.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command failed; the message says why
	exitUsage   = 2 // bad flags or arguments
	exitWrong   = 3 // a checked answer differs from the ground truth
)

// exitError carries an exit code through cobra to main's one exit point.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and maps its error to an exit code. Only it
// turns signals into cancellation.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "xnode:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isFlagError(err) {
		return exitUsage
	}
	return exitFailure
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "xnode",
		Short: "A consortium node for private set intersection and secure aggregation",
		Long: `xnode answers joint questions between the institutions of a consortium —
overlaps, risk-list hits, sums — without any client record leaving its owner.

Benchmarks:
  xnode bench psi-ecdh --n 100000 --m 100000   ECDH-PSI end to end against the curve-arithmetic floor`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	addDirFlag(root)
	root.AddCommand(newInitCmd(), newRunCmd(), newConsortiumCmd(), newBenchCmd(), newTestnetCmd())
	addClientCommands(root)
	return root
}

// isFlagError reports errors cobra raises for unknown commands and bad
// argument counts, which are usage errors too.
func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "invalid argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
