// Package atomicwriter publishes a set of files into a directory so that a
// reader sees either the previous set or the next one, never a mix.
//
// It is the layout the kubelet uses for configMap, secret, downwardAPI and
// projected volumes, which applications (and their file watchers) rely on:
//
//	<dir>/..2026_11_26_10_00_00.123456789/   the real files of one version
//	<dir>/..data -> ..2026_11_26_10_00_00.123456789
//	<dir>/key    -> ..data/key               one symlink per top-level name
//
// A new version is written to a fresh timestamped directory and published
// by renaming a new "..data" symlink over the old one, which rename(2)
// does atomically. Names starting with ".." are reserved for the writer.
package atomicwriter
