"""The minion: the node agent (beacons that watch, executors the master may call)."""
