"""The command line: parsing, progress, exit codes. Holds no logic of its own."""
