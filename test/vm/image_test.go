package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testImageConfig() ImageConfig {
	return ImageConfig{
		CacheDir: "/var/cache/berth/vm",
		Suite:    "bookworm",
		Mirror:   "http://deb.debian.org/debian",
		Packages: DefaultPackages(),
		DiskSize: DefaultDiskSize,
	}
}

func TestImageKey(t *testing.T) {
	base, err := imageKey(testImageConfig())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "bookworm-") {
		t.Errorf("key %q: want the suite as prefix", base)
	}
	tests := []struct {
		name    string
		modify  func(*ImageConfig)
		changes bool
	}{
		{name: "same", modify: func(*ImageConfig) {}},
		{name: "packages reordered", modify: func(c *ImageConfig) {
			c.Packages = append([]string{c.Packages[len(c.Packages)-1]}, c.Packages[:len(c.Packages)-1]...)
		}},
		{name: "package repeated", modify: func(c *ImageConfig) { c.Packages = append(c.Packages, c.Packages[0]) }},
		{name: "cache dir", modify: func(c *ImageConfig) { c.CacheDir = "/elsewhere" }},
		{name: "package added", modify: func(c *ImageConfig) { c.Packages = append(c.Packages, "strace") }, changes: true},
		{name: "mirror", modify: func(c *ImageConfig) { c.Mirror = "http://mirror.example/debian" }, changes: true},
		{name: "security mirror", modify: func(c *ImageConfig) { c.SecurityMirror = "http://deb.debian.org/debian-security" }, changes: true},
		{name: "disk size", modify: func(c *ImageConfig) { c.DiskSize *= 2 }, changes: true},
		{name: "suite", modify: func(c *ImageConfig) { c.Suite = "trixie" }, changes: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testImageConfig()
			cfg.Packages = append([]string(nil), cfg.Packages...)
			tc.modify(&cfg)
			key, err := imageKey(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if changed := key != base; changed != tc.changes {
				t.Errorf("key %s, base %s: changed %v, want %v", key, base, changed, tc.changes)
			}
		})
	}
}

func TestImageConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*ImageConfig)
		wantErr string
	}{
		{name: "valid", modify: func(*ImageConfig) {}},
		{name: "relative cache", modify: func(c *ImageConfig) { c.CacheDir = "cache" }, wantErr: "cache dir"},
		{name: "no kernel", modify: func(c *ImageConfig) { c.Packages = []string{"systemd-sysv"} }, wantErr: "linux-image-amd64"},
		{name: "bad package", modify: func(c *ImageConfig) { c.Packages = append(c.Packages, "a b") }, wantErr: `package "a b"`},
		{name: "mirror", modify: func(c *ImageConfig) { c.Mirror = "deb.debian.org" }, wantErr: "mirror"},
		{name: "small disk", modify: func(c *ImageConfig) { c.DiskSize = 1 << 30 }, wantErr: "disk size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testImageConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" && err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate() = %v, want an error about %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteRootfs(t *testing.T) {
	dir := t.TempDir()
	if err := writeRootfs(dir); err != nil {
		t.Fatal(err)
	}
	// What the build script and the boot rely on.
	for _, f := range []string{
		"etc/containerd/config.toml",
		"etc/modules-load.d/berth-vm.conf",
		"etc/initramfs-tools/scripts/init-bottom/berth-vm",
		"etc/initramfs-tools/hooks/berth-vm",
		"etc/systemd/system/berth-vm-agent.service",
		"etc/systemd/system/mnt-seed.mount",
	} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "etc/containerd/config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "restrict_oom_score_adj = true") {
		t.Error("containerd config: restrict_oom_score_adj is not set")
	}
}
