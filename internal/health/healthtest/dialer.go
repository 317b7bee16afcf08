package healthtest

import (
	"context"
	"net"

	"github.com/xkeep/xkeep/internal/health"
	"github.com/xkeep/xkeep/internal/testnet"
)

// NamespaceDialer is a health.Dialer that opens its sockets inside a test
// network namespace: each dial runs on a thread that entered NS, and the
// socket stays there.
type NamespaceDialer struct{ NS *testnet.Namespace }

var _ health.Dialer = NamespaceDialer{}

// DialContext implements health.Dialer with health.NetDialer inside NS.
func (d NamespaceDialer) DialContext(ctx context.Context, network string, ep health.Endpoint) (net.Conn, error) {
	var c net.Conn
	err := d.NS.Do(func() (err error) {
		c, err = health.NetDialer{}.DialContext(ctx, network, ep)
		return err
	})
	return c, err
}
