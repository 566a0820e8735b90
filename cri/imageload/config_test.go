package imageload

import (
	"testing"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "default address", cfg: Config{Address: DefaultAddress}},
		{name: "unix scheme", cfg: Config{Address: "unix:///run/containerd/containerd.sock", Namespace: "k8s.io"}},
		{name: "snapshotter", cfg: Config{Address: DefaultAddress, Snapshotter: "native"}},
		{name: "empty address", cfg: Config{}, wantErr: true},
		{name: "relative path", cfg: Config{Address: "run/containerd.sock"}, wantErr: true},
		{name: "relative unix path", cfg: Config{Address: "unix://containerd.sock"}, wantErr: true},
		{name: "tcp", cfg: Config{Address: "tcp://127.0.0.1:1234"}, wantErr: true},
		{name: "bad namespace", cfg: Config{Address: DefaultAddress, Namespace: "k8s io"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Errorf("%+v.Validate() = %v, want error: %v", tc.cfg, err, tc.wantErr)
			}
		})
	}
}

func TestConfigNamespace(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{cfg: Config{}, want: DefaultNamespace},
		{cfg: Config{Namespace: "berth-test"}, want: "berth-test"},
	} {
		if got := tc.cfg.namespace(); got != tc.want {
			t.Errorf("%+v.namespace() = %q, want %q", tc.cfg, got, tc.want)
		}
	}
}
