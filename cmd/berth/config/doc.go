// Package config defines berth's own configuration file, a versioned YAML
// document of kind BerthConfiguration, and loads it strictly.
//
// The file says where kubeadm left the node's credentials and kubelet
// settings and which parts of the node berth runs; it deliberately does not
// repeat KubeletConfiguration or KubeProxyConfiguration, which stay in their
// own upstream files. A minimal file names only the API version and kind:
//
//	apiVersion: berth.dev/v1alpha1
//	kind: BerthConfiguration
//
// Every other field has the default returned by [Default]; the annotated
// testdata/example.yaml lists them all. An empty file is an error (apiVersion
// and kind are missing) rather than "all defaults": a truncated or unwritten
// file must not silently start a node.
//
// Loading is strict: unknown fields, duplicate fields and fields whose case
// does not match (nodename for nodeName) are errors naming the field, values
// of the wrong type are never coerced, and a second YAML document is an error
// rather than being ignored. [Config.Validate] reports every
// problem at once, each with its field path.
package config
