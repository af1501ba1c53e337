"""The `peirce` command: the app with its shared options, and one module per command group. The top room: it
may import every other room; nothing imports it.
"""
