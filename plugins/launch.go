package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"xnode/plugins/internal/slogadapter"
	"xnode/plugins/pb"
)

// ProtocolVersion is the version of this contract. A host and a plugin
// negotiate it in go-plugin's handshake; a plugin built against another
// version is refused at launch.
const ProtocolVersion = 1

// Handshake is go-plugin's handshake for xnode query plugins. The magic
// cookie only stops a plugin binary run by hand from waiting for a host;
// it is not security: the SHA-256 pin and mutual TLS are.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "XNODE_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "xnode-query-plugin",
}

// pluginKey is the name under which the query plugin is dispensed.
const pluginKey = "query"

// maxMessage bounds one gRPC message either way; chunks of MaxChunk rows
// stay far below it unless cells are huge.
const maxMessage = 64 << 20

// grpcPlugin binds Plugin to go-plugin's gRPC plugin interface.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Plugin // server side only
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterQueryPluginServer(s, &server{impl: p.impl})
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &remote{c: pb.NewQueryPluginClient(c)}, nil
}

func pluginSets(impl Plugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {pluginKey: &grpcPlugin{impl: impl}}}
}

// Serve serves impl as a plugin process: call it from main and return.
// Started by hand rather than by a host, it prints a notice and exits.
func Serve(impl Plugin) {
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		fmt.Fprintln(os.Stderr, "This is an xnode query plugin. Install it with `xnode plugin install PATH`; the node starts it.")
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(impl),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage))
			return grpc.NewServer(opts...)
		},
	})
}

// Digest returns the SHA-256 digest of the file at path, the pin Launch
// checks.
func Digest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open plugin %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("failed to read plugin %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// Client is a running plugin process. It implements Plugin; Close stops the
// process.
type Client struct {
	*remote
	desc Descriptor
	path string
	pc   *plugin.Client
}

var _ Plugin = (*Client)(nil)

// Launch starts the plugin executable at path, after checking that its
// SHA-256 digest is sum (an error wrapping ErrDigestMismatch if not; go-plugin
// checks it again as it starts the process), negotiates mutual TLS with it,
// and checks its descriptor. log receives go-plugin's and the plugin's
// stderr logs (nil: discard). ctx bounds the start only.
func Launch(ctx context.Context, path string, sum []byte, log *slog.Logger) (*Client, error) {
	return LaunchCommand(ctx, path, nil, sum, log)
}

// LaunchCommand is Launch with arguments for the executable, for a binary
// that serves several plugins (the xnode binary serves its built-ins with
// `xnode plugin serve NAME`). The digest pins the executable at path.
func LaunchCommand(ctx context.Context, path string, args []string, sum []byte, log *slog.Logger) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to start plugin %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("failed to resolve plugin path %s: %w", path, err)
	}
	if len(sum) != sha256.Size {
		return nil, fmt.Errorf("plugin %s: pinned digest has %d bytes, want a %d-byte SHA-256", abs, len(sum), sha256.Size)
	}
	got, err := Digest(abs)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, sum) {
		return nil, digestMismatch(abs, got, sum)
	}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(nil),
		Cmd:              exec.Command(abs, args...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		Logger:           slogadapter.New(log.With("plugin", filepath.Base(abs))),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage))},
	})
	type started struct {
		r   *remote
		err error
	}
	done := make(chan started, 1)
	go func() {
		rpc, err := pc.Client()
		if err != nil {
			done <- started{err: err}
			return
		}
		raw, err := rpc.Dispense(pluginKey)
		if err != nil {
			done <- started{err: err}
			return
		}
		r, ok := raw.(*remote)
		if !ok {
			done <- started{err: fmt.Errorf("dispensed %T, want a query plugin", raw)}
			return
		}
		done <- started{r: r}
	}()
	var s started
	select {
	case s = <-done:
	case <-ctx.Done():
		pc.Kill()
		<-done
		return nil, fmt.Errorf("failed to start plugin %s: %w", abs, ctx.Err())
	}
	if s.err != nil {
		pc.Kill()
		if errors.Is(s.err, plugin.ErrChecksumsDoNotMatch) {
			got, _ := Digest(abs)
			return nil, digestMismatch(abs, got, sum)
		}
		return nil, fmt.Errorf("failed to start plugin %s: %w", abs, s.err)
	}
	c := &Client{remote: s.r, path: abs, pc: pc}
	c.desc, err = s.r.Describe(ctx)
	if err == nil {
		err = ValidateDescriptor(c.desc)
	}
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("plugin %s: %w", abs, err)
	}
	s.r.name = c.desc.Name
	return c, nil
}

func digestMismatch(path string, got, want []byte) error {
	return fmt.Errorf("%w: %s has SHA-256 %x but %x was pinned; the binary changed since it was installed, so reinstall it if the change is intended",
		ErrDigestMismatch, path, got, want)
}

// Descriptor returns the descriptor the plugin gave at launch.
func (c *Client) Descriptor() Descriptor { return c.desc }

// Path is the plugin executable's absolute path.
func (c *Client) Path() string { return c.path }

// Plan checks params against the descriptor's schema on the host side
// first, then asks the plugin.
func (c *Client) Plan(ctx context.Context, params map[string]string) (Plan, error) {
	if _, err := CheckParams(c.desc, params); err != nil {
		return Plan{}, err
	}
	return c.remote.Plan(ctx, params)
}

// Close stops the plugin process. Safe to call twice.
func (c *Client) Close() error {
	c.pc.Kill()
	return nil
}
