package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xnode/node/api"
	"xnode/node/audit"
	"xnode/node/config"
	"xnode/node/datasets"
	"xnode/node/identity"
	"xnode/node/membership"
	"xnode/node/p2p"
	"xnode/node/policy"
	"xnode/node/queries"
	"xnode/node/registry"
	"xnode/node/store"
)

// Version is the xnode release this build reports.
var Version = "0.1.0-dev"

// InitOptions configure a new data dir.
type InitOptions struct {
	Name string // display name; default: the host name
	// P2PPort and APIAddr override the defaults (0 / "" keep them).
	P2PPort int
	APIAddr string
}

// InitResult says what Init created.
type InitResult struct {
	Dir    string `json:"dir"`
	Name   string `json:"name"`
	PeerID string `json:"peer_id"`
	API    string `json:"api"`
}

// ErrAlreadyInitialised is returned by Init for a dir that has a config.
var ErrAlreadyInitialised = errors.New("data dir already initialised")

// Init creates a node's data dir: identity key, config, API token, store.
func Init(dir string, o InitOptions) (InitResult, error) {
	if _, err := os.Stat(filepath.Join(dir, config.FileName)); err == nil {
		return InitResult{}, fmt.Errorf("%w: %s has a %s; use it, or pick another --dir", ErrAlreadyInitialised, dir, config.FileName)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("failed to create %s: %w", dir, err)
	}
	id, err := identity.LoadOrCreate(dir)
	if err != nil {
		return InitResult{}, err
	}
	name := o.Name
	if name == "" {
		name, _ = os.Hostname()
		if name == "" {
			name = "xnode"
		}
	}
	cfg := config.Default(name)
	if o.P2PPort != 0 {
		cfg.Listen = []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", o.P2PPort),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", o.P2PPort),
		}
	}
	if o.APIAddr != "" {
		cfg.API = o.APIAddr
	}
	if err := cfg.Validate(); err != nil {
		return InitResult{}, err
	}
	if _, err := config.NewToken(dir); err != nil {
		return InitResult{}, err
	}
	st, err := store.Open(filepath.Join(dir, config.StoreFile))
	if err != nil {
		return InitResult{}, err
	}
	if err := st.Close(); err != nil {
		return InitResult{}, err
	}
	if err := config.Save(dir, cfg); err != nil {
		return InitResult{}, err
	}
	return InitResult{Dir: dir, Name: name, PeerID: id.ID().String(), API: cfg.API}, nil
}

// Node is a running xnode.
type Node struct {
	dir   string
	log   *slog.Logger
	token string
	id    *identity.Identity
	cons  *membership.Consortium

	st     *store.Store
	data   *datasets.Service
	host   *p2p.Node
	query  *queries.Service
	audit  *audit.Log
	policy *policy.Watcher
	plugs  *registry.Registry
	http   *http.Server
	ln     net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards cfg (peers change at run time) and peerErr.
	mu      sync.Mutex
	cfg     config.Config
	peerErr map[string]string

	closeOnce sync.Once
	closeErr  error
}

// Options configure Open.
type Options struct {
	Dir    string
	Logger *slog.Logger
}

// Open starts a node from its data dir: store, p2p host, queries and the
// local API. Close stops it.
func Open(ctx context.Context, o Options) (_ *Node, err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := config.Load(o.Dir)
	if err != nil {
		return nil, err
	}
	id, err := identity.Load(o.Dir)
	if err != nil {
		return nil, err
	}
	mem, err := membership.LoadNode(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("this node is not a consortium member yet (%v); the consortium operator admits it with `xnode consortium admit --dir CONSORTIUM_DIR --node %s`", err, o.Dir)
	}
	if err := membership.Verify(mem.Cert, mem.Consortium, time.Now(), mem.Revocations); err != nil {
		return nil, fmt.Errorf("this node's membership certificate is not usable: %w; ask the consortium operator to admit it again", err)
	}
	if mem.Cert.PeerID != id.ID() {
		return nil, fmt.Errorf("the membership certificate in %s names peer %s, but this node is %s; admit this node again", o.Dir, mem.Cert.PeerID, id.ID())
	}
	token, err := config.Token(o.Dir)
	if err != nil {
		return nil, err
	}
	n := &Node{dir: o.Dir, log: log, token: token, id: id, cons: mem.Consortium, cfg: cfg, peerErr: map[string]string{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	// The API port is taken first: if another node runs on this dir or port,
	// fail before touching the store.
	if n.ln, err = net.Listen("tcp", cfg.API); err != nil {
		return nil, fmt.Errorf("failed to listen for the local API on %s: %w (is another xnode running? set `api` in %s)", cfg.API, err, filepath.Join(o.Dir, config.FileName))
	}
	if n.st, err = store.Open(filepath.Join(o.Dir, config.StoreFile), store.WithLogger(log.With("svc", "store"))); err != nil {
		return nil, err
	}
	n.data = datasets.New(n.st, log.With("svc", "datasets"))
	n.audit = audit.New(n.st, id, log.With("svc", "audit"))
	n.plugs = registry.New(n.st, log.With("svc", "plugins"))
	n.policy, err = policy.Watch(o.Dir, policy.WatchOptions{
		Log: log.With("svc", "policy"),
		OnChange: func(_, p *policy.Policy) {
			n.auditf(audit.KindPolicyChange, "", audit.ActorLocal, map[string]any{"source": p.Source(), "digest": p.Digest(), "default": p.IsDefault()})
		},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to load the policy: %w (see docs/POLICY.md)", err)
	}
	if n.policy.Current().IsDefault() {
		log.Warn("no policy.toml: this node refuses every query from peers until one allows them (see docs/POLICY.md)")
	}
	n.host, err = p2p.New(ctx, p2p.Config{
		Identity: id, ListenAddrs: cfg.Listen,
		Consortium: mem.Consortium, Cert: mem.Cert, Revocations: mem.Revocations,
		Logger:        log.With("svc", "p2p"),
		StreamTimeout: streamTimeout(time.Duration(cfg.PSI.TimeoutSeconds) * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to start the p2p host: %w (check `listen` in %s)", err, filepath.Join(o.Dir, config.FileName))
	}
	n.query, err = queries.New(queries.Config{
		Store: n.st, Datasets: datasetAdapter{n.data}, Network: n.host, Peers: n, Name: cfg.Name,
		Identity: id, Registry: n.plugs, Policy: n.policy, Audit: n.audit,
		Limiter: policy.NewLimiter(n.st, n.policy.Current().Location()),
		Logger:  log.With("svc", "queries"), Suite: cfg.PSI.Suite,
		Timeout:  time.Duration(cfg.PSI.TimeoutSeconds) * time.Second,
		EpochTTL: time.Duration(cfg.PSI.OPRFEpochDays) * 24 * time.Hour,
	})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	n.registerMetrics(reg)
	n.http = &http.Server{
		Handler:           api.NewServer(n, token, log.With("svc", "api"), api.WithRegistry(reg)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("local API stopped", "err", err)
		}
	}()
	go func() { defer n.wg.Done(); n.dialPeers() }()
	go func() { defer n.wg.Done(); n.watchRevocations() }()
	if err := os.WriteFile(filepath.Join(o.Dir, config.PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("failed to write pid file: %w", err)
	}
	log.Info("node started", "name", cfg.Name, "peer_id", id.ID(), "api", n.ln.Addr().String(), "addrs", n.host.Addrs())
	return n, nil
}

// APIAddr is the address the local API listens on.
func (n *Node) APIAddr() string { return n.ln.Addr().String() }

// Close stops the node: API, queries, host, store. Safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.http.Shutdown(ctx)
			cancel()
		} else if n.ln != nil {
			_ = n.ln.Close()
		}
		n.wg.Wait()
		var errs []error
		if n.query != nil {
			errs = append(errs, n.query.Close())
		}
		if n.policy != nil {
			errs = append(errs, n.policy.Close())
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.st != nil {
			errs = append(errs, n.st.Close())
		}
		if err := os.Remove(filepath.Join(n.dir, config.PIDFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// streamTimeout is the absolute deadline of a peer's protocol stream: long
// enough for a whole session under psi.timeout_seconds (which bounds each
// side's session itself) and the plugin work around it, and never below
// p2p's default. Without it a 10M-item session raised to hours by
// psi.timeout_seconds was cut at p2p's 30 minutes.
func streamTimeout(session time.Duration) time.Duration {
	return max(p2p.DefaultStreamTimeout, session+10*time.Minute)
}
