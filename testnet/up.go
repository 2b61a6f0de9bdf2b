package testnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"xnode/node"
	"xnode/node/api"
	"xnode/node/config"
	"xnode/node/datasets"
	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/policy"
	"xnode/node/registry"
	"xnode/testnet/synth"
)

// Defaults of Options.
const (
	DefaultNodes        = 3
	DefaultRecords      = 10_000
	DefaultOverlap      = 0.3
	DefaultSeed         = 1
	DefaultReadyTimeout = 60 * time.Second
	// MaxNodes bounds Options.Nodes: each node is a process on this machine.
	MaxNodes = 32
)

// ConsortiumName is the name of every testnet's consortium.
const ConsortiumName = "testnet"

// ErrRunning is returned (wrapped) by Up for a directory whose testnet runs.
var ErrRunning = errors.New("a testnet is already running in this directory")

// Options configure Up.
type Options struct {
	Dir string
	// Binary is the xnode executable each node runs as (`Binary run --dir
	// …`); the CLI passes os.Executable().
	Binary string
	Nodes  int
	// Records, Overlap, Seed and RiskRecords are synth.Params of the
	// synthetic data; RiskRecords 0 means Records/10.
	Records     int
	Overlap     float64
	Seed        int64
	RiskRecords int
	// NoData leaves the datasets out: no data dir, no imports.
	NoData bool
	// PSITimeout, if set, is every node's psi.timeout_seconds: the bound
	// on one protocol session, which 10M-item sets need raised.
	PSITimeout time.Duration
	// ReadyTimeout bounds the wait for every node's API and peer
	// connections (default DefaultReadyTimeout).
	ReadyTimeout time.Duration
	// Logf, if set, receives a progress line for each slow step.
	Logf func(format string, args ...any)
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

func (o *Options) params() synth.Params {
	risk := o.RiskRecords
	if risk == 0 {
		risk = o.Records / 10
	}
	return synth.Params{Seed: o.Seed, Nodes: o.Nodes, Records: o.Records, Overlap: o.Overlap, RiskRecords: risk}
}

func (o *Options) validate() error {
	switch {
	case o.Dir == "":
		return errors.New("name the testnet directory with --dir")
	case o.Binary == "":
		return errors.New("testnet: Options.Binary is empty")
	case o.Nodes < 1 || o.Nodes > MaxNodes:
		return fmt.Errorf("--nodes %d: want 1 to %d", o.Nodes, MaxNodes)
	case !o.NoData && (o.Records < 1 || o.Records > synth.MaxRecords):
		return fmt.Errorf("--records %d: want 1 to %d (or --no-data)", o.Records, synth.MaxRecords)
	case !o.NoData && !(o.Overlap >= 0 && o.Overlap <= 1):
		return fmt.Errorf("--overlap %v: want a fraction from 0 to 1", o.Overlap)
	}
	return nil
}

// Up creates the testnet in o.Dir if it has none, or restarts the stopped
// testnet it holds (reusing keys, certificates and data; ports are chosen
// again where the old ones are taken), starts every node, waits until all
// are connected to each other and imports the datasets. It refuses a
// directory whose testnet runs (ErrRunning) and a non-empty directory
// without testnet.json. On error it stops the nodes it started.
func Up(ctx context.Context, o Options) (*State, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	st, err := Load(dir)
	switch {
	case errors.Is(err, ErrNoTestnet):
		if err := checkEmpty(dir); err != nil {
			return nil, err
		}
		if st, err = create(o); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		if live := st.Live(); len(live) == len(st.Nodes) {
			return nil, fmt.Errorf("%w: %s (pid %s); use it (`xnode --dir %s …`), or stop it with `xnode testnet down --dir %s`",
				ErrRunning, dir, livePids(live), live[0].Dir, dir)
		} else if len(live) > 0 {
			return nil, fmt.Errorf("%w, in part: %d of %d nodes of %s run (pid %s), the others died (see their node.log); restart it with `xnode testnet down --dir %s` and `xnode testnet up --dir %s`",
				ErrRunning, len(live), len(st.Nodes), dir, livePids(live), dir, dir)
		}
		if err := st.matches(o); err != nil {
			return nil, err
		}
		o.logf("restarting the stopped testnet in %s", dir)
	}
	if err := configure(st, o.PSITimeout); err != nil {
		return nil, err
	}
	if err := start(ctx, st, o); err != nil {
		return nil, err
	}
	return st, nil
}

// checkEmpty accepts a missing or empty directory.
func checkEmpty(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(ents) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", dir, err)
	}
	return fmt.Errorf("%s is not empty and holds no %s: pick a new --dir, or remove it (an interrupted `testnet up` leaves such a directory)", dir, StateFile)
}

// matches refuses options that contradict an existing testnet.
func (s *State) matches(o Options) error {
	var diffs []string
	if o.Nodes != len(s.Nodes) {
		diffs = append(diffs, fmt.Sprintf("--nodes %d (it has %d)", o.Nodes, len(s.Nodes)))
	}
	switch {
	case o.NoData && s.Data != nil:
		diffs = append(diffs, "--no-data (it has data)")
	case !o.NoData && s.Data == nil:
		diffs = append(diffs, "data (it was made with --no-data)")
	case s.Data != nil:
		p, want := s.Data.Params, o.params()
		if p.Records != want.Records || p.Overlap != want.Overlap || p.Seed != want.Seed || p.RiskRecords != want.RiskRecords {
			diffs = append(diffs, fmt.Sprintf("--records %d --overlap %v --seed %d (it has %d, %v, %d)",
				want.Records, want.Overlap, want.Seed, p.Records, p.Overlap, p.Seed))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the testnet in %s was made differently: %s; restart it without these flags, or pick a new --dir",
			s.Dir, strings.Join(diffs, ", "))
	}
	return nil
}

// create lays out a new testnet: consortium, node dirs, certificates and
// data. It writes testnet.json last, so a directory with testnet.json is
// complete.
func create(o Options) (*State, error) {
	o.logf("creating a testnet of %d nodes in %s", o.Nodes, o.Dir)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", o.Dir, err)
	}
	cdir := filepath.Join(o.Dir, "consortium")
	cons, err := membership.Init(cdir, ConsortiumName)
	if err != nil {
		return nil, err
	}
	st := &State{
		Version:    StateVersion,
		Dir:        o.Dir,
		Consortium: Consortium{Name: cons.Name, ID: cons.ID, Dir: cdir},
		Policy:     PolicyNote,
	}
	for i := range o.Nodes {
		name := "node" + strconv.Itoa(i+1)
		ndir := filepath.Join(o.Dir, name)
		// Ports are placeholders here; configure chooses the real ones.
		res, err := node.Init(ndir, node.InitOptions{Name: name, P2PPort: 1, APIAddr: net127(1)})
		if err != nil {
			return nil, err
		}
		id, err := identity.Load(ndir)
		if err != nil {
			return nil, err
		}
		org := fmt.Sprintf("Test Bank %d", i+1)
		cert, err := membership.Admit(cdir, id.ID(), name, org, membership.DefaultRoles(), time.Now().AddDate(1, 0, 0))
		if err != nil {
			return nil, fmt.Errorf("failed to admit %s: %w", name, err)
		}
		rl, err := membership.LoadRevocations(filepath.Join(cdir, membership.RevocationsFile))
		if err != nil {
			return nil, err
		}
		if err := membership.WriteNodeFiles(ndir, cons, cert, rl); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(ndir, policy.FileName), []byte(Policy), 0o644); err != nil {
			return nil, fmt.Errorf("failed to write %s's policy: %w", name, err)
		}
		st.Nodes = append(st.Nodes, NodeState{
			Name: name, Dir: ndir, PeerID: res.PeerID,
			Log: filepath.Join(ndir, "node.log"), Status: StatusStopped,
		})
	}
	if !o.NoData {
		p := o.params()
		o.logf("generating %d clients and %d risk-list rows per node (seed %d, overlap %v)", p.Records, p.RiskRecords, p.Seed, p.Overlap)
		c, err := synth.Generate(p)
		if err != nil {
			return nil, err
		}
		ddir := filepath.Join(o.Dir, "data")
		if err := c.WriteCSV(ddir); err != nil {
			return nil, err
		}
		st.Data = &DataState{Dir: ddir, Truth: filepath.Join(ddir, synth.TruthFile), Params: p}
	}
	return st, st.Save()
}

func net127(port int) string { return loopback + ":" + strconv.Itoa(port) }

// configure gives every node free loopback ports (keeping the ones that are
// still free) and writes each node's config: listen and API on loopback,
// every other node as a peer, and the session timeout if psiTimeout is set.
func configure(st *State, psiTimeout time.Duration) error {
	var need []int
	used := map[int]bool{}
	for i, n := range st.Nodes {
		apiPort := 0
		if _, p, err := splitPort(n.API); err == nil {
			apiPort = p
		}
		if n.P2PPort == 0 || used[n.P2PPort] || !portFree(n.P2PPort) {
			need = append(need, 2*i)
		} else {
			used[n.P2PPort] = true
		}
		if apiPort == 0 || used[apiPort] || !portFree(apiPort) {
			need = append(need, 2*i+1)
		} else {
			used[apiPort] = true
		}
	}
	if len(need) > 0 {
		ports, err := FreePorts(len(need) + len(used))
		if err != nil {
			return err
		}
		ports = slices.DeleteFunc(ports, func(p int) bool { return used[p] })
		for k, slot := range need {
			n := &st.Nodes[slot/2]
			if slot%2 == 0 {
				n.P2PPort = ports[k]
			} else {
				n.API = net127(ports[k])
			}
		}
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		n.P2PAddr = fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", loopback, n.P2PPort, n.PeerID)
	}
	for _, n := range st.Nodes {
		cfg, err := config.Load(n.Dir)
		if err != nil {
			return err
		}
		cfg.Listen = []string{
			fmt.Sprintf("/ip4/%s/tcp/%d", loopback, n.P2PPort),
			fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", loopback, n.P2PPort),
		}
		cfg.API = n.API
		if psiTimeout > 0 {
			cfg.PSI.TimeoutSeconds = int(psiTimeout.Round(time.Second) / time.Second)
		}
		cfg.Peers = nil
		for _, m := range st.Nodes {
			if m.Name != n.Name {
				cfg.Peers = append(cfg.Peers, config.Peer{Name: m.Name, Addr: m.P2PAddr})
			}
		}
		if err := config.Save(n.Dir, cfg); err != nil {
			return err
		}
	}
	return st.Save()
}

func splitPort(hostport string) (string, int, error) {
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("no port in %q", hostport)
	}
	p, err := strconv.Atoi(hostport[i+1:])
	return hostport[:i], p, err
}

// start starts every node, waits for them and imports the data. On error
// it stops what it started.
func start(ctx context.Context, st *State, o Options) (err error) {
	o.logf("starting %d nodes", len(st.Nodes))
	t0 := time.Now()
	procs := make([]*process, len(st.Nodes))
	defer func() {
		if err == nil {
			return
		}
		var pids []int
		for _, p := range procs {
			if p != nil {
				pids = append(pids, p.pid)
			}
		}
		stopGroups(context.Background(), pids, 10*time.Second)
		st.markStopped()
		_ = st.Save()
	}()
	for i := range st.Nodes {
		n := &st.Nodes[i]
		p, err := startNode(o.Binary, n.Dir, n.Log)
		if err != nil {
			return fmt.Errorf("failed to start %s: %w", n.Name, err)
		}
		procs[i] = p
		n.Pid, n.Status = p.pid, StatusRunning
	}
	st.Started, st.Stopped = time.Now().UTC(), time.Time{}
	if err := st.Save(); err != nil {
		return err
	}
	timeout := o.ReadyTimeout
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	if err := waitReady(ctx, st, procs, timeout); err != nil {
		return err
	}
	o.logf("all %d nodes are up and connected (%.1fs)", len(st.Nodes), time.Since(t0).Seconds())
	if err := installPlugins(ctx, st); err != nil {
		return err
	}
	if st.Data != nil && !st.Data.Imported {
		if err := importData(ctx, st, o); err != nil {
			return err
		}
		st.Data.Imported = true
		if err := st.Save(); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) markStopped() {
	for i := range s.Nodes {
		s.Nodes[i].Pid, s.Nodes[i].Status = 0, StatusStopped
	}
	s.Stopped = time.Now().UTC()
}

// waitReady polls every node until its API answers and it reports every
// other node connected and verified.
func waitReady(ctx context.Context, st *State, procs []*process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	clients := make([]*api.Client, len(st.Nodes))
	for i, n := range st.Nodes {
		c, err := api.ClientForDir(n.Dir)
		if err != nil {
			return err
		}
		clients[i] = c
	}
	problem := make([]string, len(st.Nodes)) // why node i is not ready, "" once it is
	for {
		ready := 0
		for i, n := range st.Nodes {
			if procs[i] != nil && procs[i].exited() {
				return fmt.Errorf("%s exited while starting (%v); see %s:\n%s", n.Name, procs[i].err, n.Log, logTail(n.Log, 8))
			}
			problem[i] = nodeProblem(ctx, clients[i], n)
			if problem[i] == "" {
				ready++
			}
		}
		if ready == len(st.Nodes) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				var msgs []string
				for i, n := range st.Nodes {
					if problem[i] != "" {
						msgs = append(msgs, fmt.Sprintf("%s: %s (see %s)", n.Name, problem[i], n.Log))
					}
				}
				return fmt.Errorf("the testnet was not ready within %s:\n  %s", timeout, strings.Join(msgs, "\n  "))
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// nodeProblem says why n is not ready, or "" if it is.
func nodeProblem(ctx context.Context, c *api.Client, n NodeState) string {
	peers, err := c.Peers(ctx)
	if err != nil {
		return "its API does not answer: " + err.Error()
	}
	var missing []string
	for _, p := range peers {
		if !p.Connected || !p.Verified {
			m := p.Name + " not connected"
			if p.Error != "" {
				m += " (" + p.Error + ")"
			}
			missing = append(missing, m)
		}
	}
	return strings.Join(missing, "; ")
}

// logTail returns the last n lines of a log file, indented.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// installPlugins installs (again, which pins the current binary) the
// built-in plugins at every node; the testnet policy approves them.
func installPlugins(ctx context.Context, st *State) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range st.Nodes {
		g.Go(func() error {
			c, err := api.ClientForDir(n.Dir)
			if err != nil {
				return err
			}
			for _, name := range registry.Builtins {
				if _, err := c.InstallPlugin(gctx, api.InstallPluginRequest{Builtin: name}); err != nil {
					return fmt.Errorf("%s: failed to install the built-in plugin %s: %w (see %s)", n.Name, name, err, n.Log)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// importData imports clients and risklist into every node that lacks them.
func importData(ctx context.Context, st *State, o Options) error {
	o.logf("importing %s and %s into %d nodes", DatasetClients, DatasetRiskList, len(st.Nodes))
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, n := range st.Nodes {
		g.Go(func() error {
			c, err := api.ClientForDir(n.Dir)
			if err != nil {
				return err
			}
			have, err := c.ListDatasets(gctx)
			if err != nil {
				return fmt.Errorf("%s: failed to list datasets: %w", n.Name, err)
			}
			for _, req := range ImportRequests(st.Data.Dir, n.Name) {
				if slices.ContainsFunc(have, func(d datasets.Info) bool { return d.Name == req.Name }) {
					continue
				}
				if _, err := c.ImportDataset(gctx, req, nil); err != nil {
					return fmt.Errorf("%s: failed to import %s from %s: %w (see %s)", n.Name, req.Name, req.File, err, n.Log)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	o.logf("imported the datasets (%.1fs)", time.Since(t0).Seconds())
	return nil
}

// ImportRequests are the imports of node name's synthetic data in dataDir:
// clients (resident ID; amount, overdue days and region as typed values)
// and risklist (resident ID; level, date and source as labels).
func ImportRequests(dataDir, name string) []api.ImportRequest {
	return []api.ImportRequest{
		{
			Name: DatasetClients, File: filepath.Join(dataDir, name, synth.ClientsFile), Format: string(datasets.FormatCSV),
			IDColumns: []string{"id"}, IDKind: datasets.KindCNID,
			ValueColumns: []string{"amount:decimal(2)", "overdue_days:integer", "region:category"},
			Strict:       true,
		},
		{
			Name: DatasetRiskList, File: filepath.Join(dataDir, name, synth.RiskListFile), Format: string(datasets.FormatCSV),
			IDColumns: []string{"id"}, IDKind: datasets.KindCNID,
			LabelColumns: []string{"risk_level", "listed_date", "source"},
			Strict:       true,
		},
	}
}

// Live returns the nodes whose recorded process (or the process in their
// node.pid) is running.
func (s *State) Live() []NodeState {
	var live []NodeState
	for _, n := range s.Nodes {
		if pids := n.pids(); len(pids) > 0 {
			n.Pid = pids[0]
			live = append(live, n)
		}
	}
	return live
}

// pids returns the live node processes of n: the recorded pid and the one
// in node.pid (a node started by hand), each only if it runs `run --dir
// n.Dir`.
func (n NodeState) pids() []int {
	var out []int
	if isNode(n.Pid, n.Dir) {
		out = append(out, n.Pid)
	}
	if b, err := os.ReadFile(filepath.Join(n.Dir, config.PIDFile)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != n.Pid && isNode(pid, n.Dir) {
			out = append(out, pid)
		}
	}
	return out
}

func livePids(nodes []NodeState) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = strconv.Itoa(n.Pid)
	}
	return strings.Join(s, ", ")
}
