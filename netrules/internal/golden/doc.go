// Package golden compares what a test renders with a golden file under the
// test's testdata/ directory, and rewrites the file when the test runs with
// -update: for the renderers and explainers of netrules, whose output is
// read by people and by the kernel, and so is reviewed as text.
package golden
