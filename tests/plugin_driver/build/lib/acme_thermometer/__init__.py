"""Driver and twin of the ACME TM-2 thermometer: an example of a driver in its own package."""
