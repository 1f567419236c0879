"""The `ascbench` command line."""
