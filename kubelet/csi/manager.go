package csi

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/berthnode/berth/kubelet/plugins"
)

// Defaults of Config.
const (
	// DefaultCallTimeout bounds one CSI call, as the kubelet's csiTimeout.
	DefaultCallTimeout = 2 * time.Minute
	// DefaultSetUpWait is how long SetUp waits for a driver's answer before
	// it returns an error to be retried, leaving the call running.
	DefaultSetUpWait = 10 * time.Second
)

// Config says what a Manager needs.
type Config struct {
	// NodeName is the node's name, as drivers and VolumeAttachments know it.
	NodeName string
	// Client has the node's credentials.
	Client kubernetes.Interface
	// RootDir is the kubelet root directory (/var/lib/kubelet).
	RootDir string
	// Recorder records the claims' resize Events; nil records none.
	Recorder record.EventRecorder
	// Clock tells the time.
	Clock clock.Clock
	// CallTimeout bounds each CSI call; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// InUseChanged, if set, is called when VolumesInUse gains or loses a
	// volume, so that the node status reports it soon (the node
	// controller's Kick): an attachable volume is mounted only once the
	// node status says it is in use.
	InUseChanged func()
	// SetUpWait bounds how long SetUp waits for a running stage or publish
	// before it returns a retriable error; zero means DefaultSetUpWait.
	SetUpWait time.Duration
}

// Validate reports every problem of c.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("node name: required"))
	}
	if c.Client == nil || c.Clock == nil {
		errs = append(errs, errors.New("client and clock: required"))
	}
	if c.RootDir == "" {
		errs = append(errs, errors.New("root dir: required"))
	}
	if c.CallTimeout < 0 || c.SetUpWait < 0 {
		errs = append(errs, errors.New("call timeout and set-up wait: must not be negative"))
	}
	return errors.Join(errs...)
}

// Manager is the node side of CSI. It takes the CSI drivers found by plugin
// registration (it is their plugins.Handler), keeps the CSINode object and
// the Node's CSI annotation and topology labels, and stages, publishes,
// unpublishes and unstages CSI volumes for the volume manager.
type Manager struct {
	cfg       Config
	factory   informers.SharedInformerFactory
	csiDriver storagelisters.CSIDriverLister
	synced    cache.InformerSynced

	mu      sync.Mutex
	drivers map[string]*driver // by name
	ops     map[string]*operation
	// inUse are the volumes SetUp was asked for since the last TearDown of
	// the pod's volume, by pod volume key; see VolumesInUse.
	inUse map[string]inUseVolume
	// published are the pod volumes published since berth started, by pod
	// volume key.
	published map[string]published
	// statsTargets are the published volumes VolumeStats reports, by pod
	// volume key.
	statsTargets map[string]*statsTarget
	// staged are the volumes staged since berth started, by unique name.
	staged map[string]bool
	// attached caches the publish context of attached volumes by unique name.
	attached map[string]map[string]string

	volLocks keyedLocks
	// nodeInfo serialises the updates of the CSINode and the Node.
	nodeInfo sync.Mutex
}

var _ plugins.Handler = (*Manager)(nil)

// New returns a Manager for cfg. Run starts its informer.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("csi config: %w", err)
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.SetUpWait == 0 {
		cfg.SetUpWait = DefaultSetUpWait
	}
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	inf := factory.Storage().V1().CSIDrivers()
	return &Manager{
		cfg:       cfg,
		factory:   factory,
		csiDriver: inf.Lister(),
		synced:    inf.Informer().HasSynced,
		drivers:   map[string]*driver{},
		ops:       map[string]*operation{},
		inUse:     map[string]inUseVolume{},
		published: map[string]published{},
		staged:    map[string]bool{},

		statsTargets: map[string]*statsTarget{},
		attached:     map[string]map[string]string{},
	}, nil
}

// Run starts the CSIDriver informer, creates the node's CSINode object once
// the Node exists (retrying until it does) and returns when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("csi")
	ctx = klog.NewContext(ctx, logger)
	m.factory.Start(ctx.Done())
	defer m.factory.Shutdown()
	for {
		err := m.initCSINode(ctx)
		if err == nil {
			break
		}
		logger.V(2).Info("Creating the CSINode object failed; will retry", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-m.cfg.Clock.After(2 * time.Second):
		}
	}
	<-ctx.Done()
	m.closeDrivers()
	return nil
}

// Ready tells whether the CSIDriver informer has synced.
func (m *Manager) Ready() bool { return m.synced() }

// closeDrivers closes every driver's connection.
func (m *Manager) closeDrivers() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, d := range m.drivers {
		_ = d.conn.Close()
		delete(m.drivers, name)
	}
}

// Validate checks a CSI driver's registration answer: a name, and a
// version of CSI 1.x among its versions (the kubelet's rule: 0.x is no
// longer supported and 2.x need not be compatible).
func (m *Manager) Validate(p plugins.Plugin) error {
	if p.Type != plugins.TypeCSI {
		return fmt.Errorf("plugin %q: type %q is not %q", p.Name, p.Type, plugins.TypeCSI)
	}
	if p.Name == "" {
		return errors.New("CSI driver: empty name")
	}
	if !supportedVersion(p.Versions) {
		return fmt.Errorf("validation failed for CSI Driver %s at endpoint %s: none of the versions specified %q are supported", p.Name, p.Endpoint, p.Versions)
	}
	return nil
}

// supportedVersion tells whether versions has a CSI 1.x version.
func supportedVersion(versions []string) bool {
	for _, v := range versions {
		major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
		if n, err := strconv.Atoi(major); err == nil && n == 1 {
			return true
		}
	}
	return false
}

// Register dials the driver, asks NodeGetInfo and records the driver in the
// CSINode object and on the Node. A driver registering again replaces its
// previous connection.
func (m *Manager) Register(ctx context.Context, p plugins.Plugin) error {
	logger := klog.FromContext(ctx).WithValues("driver", p.Name, "endpoint", p.Endpoint)
	conn, err := dial(p.Endpoint)
	if err != nil {
		return err
	}
	d := &driver{name: p.Name, endpoint: p.Endpoint, conn: conn, node: csipb.NewNodeClient(conn)}
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.CallTimeout)
	defer cancel()
	if err := probe(callCtx, d); err != nil {
		_ = conn.Close()
		return fmt.Errorf("CSI driver %s: %w", p.Name, err)
	}
	if err := m.installDriver(ctx, d); err != nil {
		_ = conn.Close()
		return fmt.Errorf("CSI driver %s: %w", p.Name, err)
	}
	m.mu.Lock()
	old := m.drivers[p.Name]
	m.drivers[p.Name] = d
	m.mu.Unlock()
	if old != nil {
		_ = old.conn.Close()
	}
	logger.Info("Registered CSI driver", "nodeID", d.nodeID, "topology", d.topology, "maxVolumes", d.maxVolumes)
	return nil
}

// Deregister forgets the driver and removes it from the CSINode object and
// the Node's annotation. Its topology labels stay, as with the kubelet.
func (m *Manager) Deregister(ctx context.Context, p plugins.Plugin) {
	logger := klog.FromContext(ctx).WithValues("driver", p.Name)
	m.mu.Lock()
	d := m.drivers[p.Name]
	if d != nil && d.endpoint == p.Endpoint {
		delete(m.drivers, p.Name)
	} else {
		d = nil
	}
	m.mu.Unlock()
	if d == nil {
		return
	}
	_ = d.conn.Close()
	if ctx.Err() != nil {
		// berth stops: the driver stays in the CSINode object, as with a
		// kubelet that stops, for the next start to find.
		return
	}
	if err := m.uninstallDriver(ctx, p.Name); err != nil {
		logger.Error(err, "Removing the CSI driver from the CSINode and the Node failed")
		return
	}
	logger.Info("Deregistered CSI driver")
}

// ErrDriverNotRegistered is the error of a call for a driver that has not
// (yet) registered on the node. It is retriable: the driver may register.
var ErrDriverNotRegistered = errors.New("not found in the list of registered CSI drivers")

// registered returns the registered driver named name.
func (m *Manager) registered(name string) (*driver, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.drivers[name]
	if d == nil {
		return nil, fmt.Errorf("driver name %s %w", name, ErrDriverNotRegistered)
	}
	return d, nil
}

// driverObject returns the CSIDriver object named name, nil when there is
// none. Before the informer has synced, it reads the apiserver.
func (m *Manager) driverObject(ctx context.Context, name string) (*storagev1.CSIDriver, error) {
	var obj *storagev1.CSIDriver
	var err error
	if m.synced() {
		obj, err = m.csiDriver.Get(name)
	} else {
		obj, err = m.cfg.Client.StorageV1().CSIDrivers().Get(ctx, name, metav1GetOptions)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get CSIDriver %s: %w", name, err)
	}
	return obj, nil
}

// keyedLocks is a set of mutexes by key, created on first use.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lock locks key and returns its unlock.
func (k *keyedLocks) lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*sync.Mutex{}
	}
	l := k.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		k.locks[key] = l
	}
	k.mu.Unlock()
	l.Lock()
	return l.Unlock
}
