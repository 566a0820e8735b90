package plugins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// errNotListening says nothing listens on a registration socket: its plugin
// is starting (between bind and listen) or died and left it behind.
var errNotListening = errors.New("nothing listens on the socket")

// register asks the plugin at the registration socket path who it is,
// hands it to the handler of its type, and tells the plugin the outcome.
// It returns the plugin as far as it is known, and the handler that
// registered it. A plugin that answered GetInfo is told every failure,
// with the reason.
func (w *Watcher) register(ctx context.Context, path string) (Plugin, Handler, error) {
	// The dialer keeps its error: gRPC's status flattens it to a string.
	var (
		mu      sync.Mutex
		dialErr error
	)
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		mu.Lock()
		defer mu.Unlock()
		dialErr = err
		return c, err
	}
	conn, err := grpc.NewClient("passthrough:///"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dial),
		// What gRPC's own unix: resolver sends; the path is no host name.
		grpc.WithAuthority("localhost"))
	if err != nil {
		return Plugin{Socket: path}, nil, fmt.Errorf("connecting to the registration socket: %w", err)
	}
	defer func() { _ = conn.Close() }()
	client := registerapi.NewRegistrationClient(conn)
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	info, err := client.GetInfo(callCtx, &registerapi.InfoRequest{})
	cancel()
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(dialErr, syscall.ECONNREFUSED) {
			return Plugin{Socket: path}, nil, fmt.Errorf("%w: %w", errNotListening, dialErr)
		}
		return Plugin{Socket: path}, nil, fmt.Errorf("GetInfo (timeout %s): %w", w.cfg.Timeout, err)
	}
	p := Plugin{
		Type:     info.GetType(),
		Name:     info.GetName(),
		Endpoint: info.GetEndpoint(),
		Versions: info.GetSupportedVersions(),
		Socket:   path,
	}
	if p.Endpoint == "" {
		p.Endpoint = path
	}
	h, err := w.accept(ctx, p)
	notifyErr := w.notify(ctx, client, err)
	if err != nil {
		if notifyErr != nil {
			err = errors.Join(err, fmt.Errorf("telling the plugin: %w", notifyErr))
		}
		return p, nil, err
	}
	if notifyErr != nil {
		// A plugin that does not know it is registered may not serve:
		// undo, and try again later, as the kubelet does.
		h.Deregister(ctx, p)
		return p, nil, fmt.Errorf("registered, but telling the plugin failed, so deregistered again: %w", notifyErr)
	}
	return p, h, nil
}

// accept checks the plugin's GetInfo answer and registers it with the
// handler of its type.
func (w *Watcher) accept(ctx context.Context, p Plugin) (Handler, error) {
	h, ok := w.cfg.Handlers[p.Type]
	switch {
	case !ok:
		return nil, fmt.Errorf("no handler for plugin type %q (handled: %q)", p.Type, slices.Sorted(maps.Keys(w.cfg.Handlers)))
	case p.Name == "":
		return nil, fmt.Errorf("the plugin of type %q gave no name", p.Type)
	case len(p.Versions) == 0:
		return nil, fmt.Errorf("plugin %q gave no supported versions", p.Name)
	}
	if err := h.Validate(p); err != nil {
		return nil, fmt.Errorf("plugin validation failed: %w", err)
	}
	if err := h.Register(ctx, p); err != nil {
		return nil, fmt.Errorf("plugin registration failed: %w", err)
	}
	return h, nil
}

// notify tells the plugin whether it is registered, and if not why.
func (w *Watcher) notify(ctx context.Context, client registerapi.RegistrationClient, failure error) error {
	status := &registerapi.RegistrationStatus{PluginRegistered: failure == nil}
	if failure != nil {
		status.Error = failure.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	if _, err := client.NotifyRegistrationStatus(ctx, status); err != nil {
		return fmt.Errorf("NotifyRegistrationStatus (timeout %s): %w", w.cfg.Timeout, err)
	}
	return nil
}
