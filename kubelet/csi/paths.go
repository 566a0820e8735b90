package csi

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	utilstrings "k8s.io/utils/strings"
)

// The kubelet's names for the CSI plugin's files, kept so that drivers and
// node tooling written for the kubelet find what they expect.
const (
	// PluginName is the kubelet's name of the CSI volume plugin.
	PluginName = "kubernetes.io/csi"
	// volDataFile holds what TearDown needs, next to a mount directory.
	volDataFile = "vol_data.json"
	// globalMount is the staging directory's name.
	globalMount = "globalmount"
	// uniqueNameSep separates driver and volume handle in a unique name.
	uniqueNameSep = "^"
)

// The keys of vol_data.json, as the kubelet writes them.
const (
	keySpecVolID     = "specVolID"
	keyVolumeHandle  = "volumeHandle"
	keyDriverName    = "driverName"
	keyNodeName      = "nodeName"
	keyAttachmentID  = "attachmentID"
	keyLifecycleMode = "volumeLifecycleMode"
)

// stagingPath is where the kubelet stages a persistent volume:
// <root>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount.
func stagingPath(root, driverName, handle string) string {
	sum := sha256.Sum256([]byte(handle))
	return filepath.Join(root, "plugins", PluginName, driverName, fmt.Sprintf("%x", sum), globalMount)
}

// podVolumeDir is the per-pod directory of a CSI volume, which holds
// vol_data.json and the mount directory:
// <root>/pods/<uid>/volumes/kubernetes.io~csi/<specName>.
func podVolumeDir(root string, podUID types.UID, specName string) string {
	return filepath.Join(root, "pods", string(podUID), "volumes",
		utilstrings.EscapeQualifiedName(PluginName), utilstrings.EscapeQualifiedName(specName))
}

// publishPath is the directory a volume is published to for a pod.
func publishPath(root string, podUID types.UID, specName string) string {
	return filepath.Join(podVolumeDir(root, podUID, specName), "mount")
}

// AttachmentName is the name the attach/detach controller gives the
// VolumeAttachment of a volume on a node: csi-<sha256(handle+driver+node)>.
func AttachmentName(handle, driverName, nodeName string) string {
	sum := sha256.Sum256([]byte(handle + driverName + nodeName))
	return fmt.Sprintf("csi-%x", sum)
}

// inlineHandle is the volume ID of an inline ephemeral volume:
// csi-<sha256(podUID+volumeName)>, as the kubelet makes it.
func inlineHandle(podUID types.UID, specName string) string {
	sum := sha256.Sum256([]byte(string(podUID) + specName))
	return fmt.Sprintf("csi-%x", sum)
}

// UniqueName is the name under which the kubelet reports a CSI volume in the
// node's volumesInUse and the attach/detach controller in volumesAttached:
// kubernetes.io/csi/<driver>^<handle>.
func UniqueName(driverName, handle string) v1.UniqueVolumeName {
	return v1.UniqueVolumeName(PluginName + "/" + driverName + uniqueNameSep + handle)
}

// volData is the content of a vol_data.json file.
type volData map[string]string

// publishData is what the kubelet records next to a pod's mount directory.
func publishData(specName, handle, driverName, nodeName string, mode storagev1.VolumeLifecycleMode) volData {
	return volData{
		keySpecVolID:     specName,
		keyVolumeHandle:  handle,
		keyDriverName:    driverName,
		keyNodeName:      nodeName,
		keyLifecycleMode: string(mode),
		keyAttachmentID:  AttachmentName(handle, driverName, nodeName),
	}
}

// writeVolData writes data to dir/vol_data.json.
func writeVolData(dir string, data volData) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s: %w", volDataFile, err)
	}
	// The kubelet's encoder ends the file with a newline; so do we.
	b = append(b, '\n')
	if err := os.WriteFile(filepath.Join(dir, volDataFile), b, 0o640); err != nil {
		return fmt.Errorf("save volume data file: %w", err)
	}
	return nil
}

// readVolData reads dir/vol_data.json; the error wraps fs.ErrNotExist when
// there is none.
func readVolData(dir string) (volData, error) {
	b, err := os.ReadFile(filepath.Join(dir, volDataFile))
	if err != nil {
		return nil, fmt.Errorf("read volume data file: %w", err)
	}
	data := volData{}
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, fmt.Errorf("parse volume data file %s: %w", filepath.Join(dir, volDataFile), err)
	}
	if data[keyDriverName] == "" || data[keyVolumeHandle] == "" {
		return nil, fmt.Errorf("volume data file %s: %w", filepath.Join(dir, volDataFile), errNoDriverOrHandle)
	}
	return data, nil
}

// errNoDriverOrHandle is a vol_data.json without the driver or the handle.
var errNoDriverOrHandle = errors.New("driver name or volume handle missing")
