// Package slogadapter lets go-plugin, which logs through hclog, log to an
// injected *slog.Logger.
package slogadapter

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// New returns an hclog.Logger that writes to l.
func New(l *slog.Logger) hclog.Logger {
	return &logger{l: l}
}

type logger struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*logger)(nil)

func level(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (g *logger) Log(l hclog.Level, msg string, args ...any) {
	if l == hclog.Off || l == hclog.NoLevel {
		l = hclog.Info
	}
	all := append(append([]any{}, g.args...), args...)
	if g.name != "" {
		all = append(all, "logger", g.name)
	}
	g.l.Log(context.Background(), level(l), msg, all...)
}

func (g *logger) Trace(msg string, args ...any) { g.Log(hclog.Trace, msg, args...) }
func (g *logger) Debug(msg string, args ...any) { g.Log(hclog.Debug, msg, args...) }
func (g *logger) Info(msg string, args ...any)  { g.Log(hclog.Info, msg, args...) }
func (g *logger) Warn(msg string, args ...any)  { g.Log(hclog.Warn, msg, args...) }
func (g *logger) Error(msg string, args ...any) { g.Log(hclog.Error, msg, args...) }

func (g *logger) enabled(l hclog.Level) bool {
	return g.l.Enabled(context.Background(), level(l))
}

func (g *logger) IsTrace() bool { return g.enabled(hclog.Trace) }
func (g *logger) IsDebug() bool { return g.enabled(hclog.Debug) }
func (g *logger) IsInfo() bool  { return g.enabled(hclog.Info) }
func (g *logger) IsWarn() bool  { return g.enabled(hclog.Warn) }
func (g *logger) IsError() bool { return g.enabled(hclog.Error) }

func (g *logger) ImpliedArgs() []any { return g.args }

func (g *logger) With(args ...any) hclog.Logger {
	return &logger{l: g.l, name: g.name, args: append(append([]any{}, g.args...), args...)}
}

func (g *logger) Name() string { return g.name }

func (g *logger) Named(name string) hclog.Logger {
	if g.name != "" {
		name = g.name + "." + name
	}
	return &logger{l: g.l, name: name, args: g.args}
}

func (g *logger) ResetNamed(name string) hclog.Logger {
	return &logger{l: g.l, name: name, args: g.args}
}

// SetLevel is a no-op: the slog handler decides.
func (g *logger) SetLevel(hclog.Level) {}

func (g *logger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if g.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (g *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(g.StandardWriter(opts), "", 0)
}

func (g *logger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writer{g}
}

type writer struct{ g *logger }

func (w writer) Write(p []byte) (int, error) {
	w.g.Info(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
