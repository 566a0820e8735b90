// Package downward renders the downward API's values: a pod's metadata
// fields (fieldRef) and a container's resources (resourceFieldRef), as
// environment variables (kubelet/podruntime) and downwardAPI volume files
// (kubelet/volume) both show them. The kubelet renders both through one
// field-path and one resource resolver too; here they live once, so that
// an env var and a file never disagree on a value's format.
package downward
