"""The bottom package every other one uses: the user-facing error, atomic and checked file
I/O, the run lock and the one-line command-line parser. It imports nothing of this project."""
