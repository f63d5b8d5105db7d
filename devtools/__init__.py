"""Developer tools shared by the tests, the demo and the benchmarks: a local glusterd, private mount namespaces."""
