package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registration answers the pluginregistration/v1 calls of a node agent.
type registration struct {
	registerapi.UnimplementedRegistrationServer
	cfg    Config
	ctl    *control
	logger klog.Logger
}

// GetInfo describes the driver: a CSI plugin at the endpoint, version 1.0.0.
func (r *registration) GetInfo(ctx context.Context, _ *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	r.logger.Info("GetInfo")
	r.ctl.appendLine("registration.jsonl", map[string]any{"method": "GetInfo"})
	info := &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.cfg.Name,
		Endpoint:          r.cfg.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}
	return info, r.override(info)
}

// infoOverride is the content of GetInfo.json: the fields it sets replace
// those of the answer.
type infoOverride struct {
	Type              *string  `json:"type"`
	Name              *string  `json:"name"`
	Endpoint          *string  `json:"endpoint"`
	SupportedVersions []string `json:"supported_versions"`
}

// override applies <control-dir>/GetInfo.json to info, if it exists.
func (r *registration) override(info *registerapi.PluginInfo) error {
	data, err := os.ReadFile(filepath.Join(r.cfg.ControlDir, "GetInfo.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var o infoOverride
	if err == nil {
		err = json.Unmarshal(data, &o)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "GetInfo.json: %v", err)
	}
	for _, f := range []struct {
		from *string
		to   *string
	}{{o.Type, &info.Type}, {o.Name, &info.Name}, {o.Endpoint, &info.Endpoint}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if o.SupportedVersions != nil {
		info.SupportedVersions = o.SupportedVersions
	}
	return nil
}

// NotifyRegistrationStatus logs and records the node agent's verdict.
func (r *registration) NotifyRegistrationStatus(ctx context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	r.logger.Info("NotifyRegistrationStatus", "registered", st.PluginRegistered, "error", st.Error)
	r.ctl.appendLine("registration.jsonl", map[string]any{
		"method":            "NotifyRegistrationStatus",
		"plugin_registered": st.PluginRegistered,
		"error":             st.Error,
	})
	return &registerapi.RegistrationStatusResponse{}, nil
}
