"""Instrument drivers: the driver contract, serial transport, real protocols and safety limits.

The driver contract arrives with the instruments issue; campaigns run on simulators until then.
"""
