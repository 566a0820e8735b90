// Package devices tests device plugins on berth nodes of a real test bed:
// upstream's sample device plugin (k8s.io/kubernetes/test/images/
// sample-device-plugin, resource example.com/resource with devices Dev-1
// and Dev-2, built by test/tools/build-plugins.sh) registers with berth;
// its resource shows on the Node; pods get its devices' mounts; the
// assignments survive restarts of the plugin and of berth (kill -9); the
// pod resources API shows them; and the resource drops when the plugin
// stops. BERTH_PLUGINS_DIR points at the plugin binaries.
package devices
